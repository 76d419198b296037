// `npm run soak -- --loops 32 --clients 64 --minutes N`: many loops and many clients at once, for a
// while, with every byte checked. A `ralph daemon` (tcp on loopback, and OpenZiti when a ziti CLI is
// found) and `--loops` local loops started with the real `ralph run`, each running the fixture agent,
// which floods `--flood-mb` MB per iteration for `--iterations` iterations and then completes. As a
// loop ends, a new one takes its place until `--minutes` have passed (0: one round). `--clients`
// clients are spread over the loops and over the ways in (the runner's unix socket; the daemon's loop
// channel over tcp; over OpenZiti), each subscribed from byte 0 through client/loop-feed.ts as
// `ralph attach` is. At each loop's end every client of it must have received exactly the loop's log,
// byte for byte and in order, over its own connections (nothing read from the log file).
// Prints throughput, per-process CPU and peak RSS; exits 1 if any client missed or doubled a byte.
//
// Options: --loops N (32) --clients N (64) --minutes X (0) --flood-mb X (1.6) --iterations N (1)
//          --ziti auto|off (auto) --keep (keep the temp home) --quiet
// The fixture agent of each loop waits (its `wait` step) until the loop's clients are subscribed.

import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { dialDaemon } from '../client/daemon.js';
import type { RemoteConfig } from '../store/config.js';
import { connectToLoop } from '../client/connect.js';
import { endOf, freshRow } from '../client/loop-access.js';
import { LoopFeed } from '../client/loop-feed.js';
import { PROTOCOL_VERSION } from '../daemon/protocol.js';
import { RpcPeer } from '../rpc/peer.js';
import { openDb } from '../store/db.js';
import { LoopStore, type LoopRow } from '../store/loops.js';
import { killRunners, startDaemon, type DaemonHandle } from '../test/helpers/daemon.js';
import { makeTempHome, ralph, type TempHome } from '../test/helpers/env.js';
import { fixtureAgentCmd } from '../test/helpers/loop.js';
import { findZiti, startZitiNetwork, type ZitiNetwork } from '../test/helpers/ziti-network.js';
import { stopProxy } from '../transport/ziti/proxy.js';
import { ProcessSampler, type RoleReport } from './proc-sampler.js';

type Way = 'unix' | 'tcp' | 'ziti';

const { values: args } = parseArgs({
  options: {
    loops: { type: 'string', default: '32' },
    clients: { type: 'string', default: '64' },
    minutes: { type: 'string', default: '0' },
    'flood-mb': { type: 'string', default: '1.6' },
    iterations: { type: 'string', default: '1' },
    ziti: { type: 'string', default: 'auto' },
    keep: { type: 'boolean', default: false },
    quiet: { type: 'boolean', default: false },
  },
});

function num(name: keyof typeof args, min: number): number {
  const v = Number(args[name]);
  if (!Number.isFinite(v) || v < min) {
    process.stderr.write(`soak: --${name} must be a number >= ${min}, got ${JSON.stringify(args[name])}\n`);
    process.exit(2);
  }
  return v;
}

const LOOPS = Math.floor(num('loops', 1));
const CLIENTS = Math.floor(num('clients', 0));
const MINUTES = num('minutes', 0);
const FLOOD_MB = num('flood-mb', 0.01);
const ITERATIONS = Math.floor(num('iterations', 1));
/** A loop whose clients have not all finished this long after it started is reported as stuck. */
const LOOP_DEADLINE_MS = 5 * 60_000 + ITERATIONS * FLOOD_MB * 20_000;

const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
const say = (line: string) => {
  if (!args.quiet) console.log(line);
};

/** One client of one loop: its bytes, hashed as they come, and what went wrong. */
interface ClientResult {
  way: Way;
  loopId: string;
  bytes: number;
  ok: boolean;
  problem: string | null;
  reconnects: number;
}

interface Totals {
  loops: number;
  loopsCompleted: number;
  outputBytes: number;
  clients: ClientResult[];
}

class Soak {
  readonly totals: Totals = { loops: 0, loopsCompleted: 0, outputBytes: 0, clients: [] };
  readonly store: LoopStore;
  private readonly runnerPids = new Set<number>();
  private seq = 0;

  constructor(
    private readonly t: TempHome,
    private readonly ways: Array<{ way: Way; open: (loopId: string) => Promise<RpcPeer> }>,
  ) {
    this.store = new LoopStore(openDb(join(t.home, 'ralph.db')));
  }

  get runners(): number[] {
    return [...this.runnerPids];
  }

  /** Starts one loop with `ralph run`, attaches its clients, resolves when all of them are done. */
  async runOne(slot: number, clientsHere: number): Promise<void> {
    const n = this.seq++;
    const dir = join(this.t.home, 'work', `loop-${n}`);
    mkdirSync(dir, { recursive: true });
    const stories = Array.from({ length: ITERATIONS }, (_, i) => ({ id: `S-${i + 1}`, title: `story ${i + 1}`, priority: i + 1, passes: false }));
    writeFileSync(join(dir, 'prd.json'), JSON.stringify({ project: `soak ${n}`, userStories: stories }, null, 2));
    // The agent floods only once this loop's clients are subscribed (the gate file), so every client
    // is there from the first byte to the last.
    const gate = join(dir, 'clients-ready');
    const r = await ralph(['run', dir, '--agent-cmd', fixtureAgentCmd('wait,flood,work'), '--max-iterations', String(ITERATIONS), '--name', `soak-${n}`], {
      env: { ...this.t.env, FIXTURE_FLOOD_MB: String(FLOOD_MB), FIXTURE_GATE: gate },
      timeoutMs: 120_000,
    });
    if (r.code !== 0) throw new Error(`ralph run failed (${r.code}): ${r.stderr.trim()}`);
    const id = r.stdout.trim();
    const row = this.store.get(id)!;
    if (row.pid) this.runnerPids.add(row.pid);
    this.totals.loops += 1;

    const clients = Array.from({ length: clientsHere }, (_, j) => this.ways[(slot * clientsHere + j) % this.ways.length]!);
    const subscribed: Array<Promise<void>> = [];
    const following = clients.map((w) => this.follow(row, w.way, w.open, (p) => subscribed.push(p)));
    await Promise.allSettled(subscribed);
    writeFileSync(gate, '');
    const results = await Promise.all(following);
    const end = this.store.get(id)!;
    if (end.status === 'completed') this.totals.loopsCompleted += 1;
    else say(`  loop ${id} ended ${end.status}: ${end.reason}`);
    const log = readFileSync(end.logPath!);
    this.totals.outputBytes += log.length;
    const floods = log.toString('utf8').match(/flood done: \d+ bytes/g)?.length ?? 0;
    if (floods !== ITERATIONS) say(`  loop ${id}: its log holds ${floods} of ${ITERATIONS} floods`);
    const want = createHash('sha256').update(log).digest('hex');
    for (const c of results) {
      if (c.problem === null && (c.bytes !== log.length || c.hash !== want)) {
        c.problem = `received ${c.bytes} bytes, the log holds ${log.length}${c.bytes === log.length ? ' (content differs)' : ''}`;
      }
      const result: ClientResult = { way: c.way, loopId: id, bytes: c.bytes, ok: c.problem === null, problem: c.problem, reconnects: c.reconnects };
      if (!result.ok) say(`  client (${c.way}) of ${id}: ${c.problem}`);
      this.totals.clients.push(result);
    }
  }

  /** One client: from byte 0 to the end, as `ralph attach` follows a loop, minus the log-file fallback. */
  private async follow(row: LoopRow, way: Way, open: (loopId: string) => Promise<RpcPeer>, started: (p: Promise<void>) => void) {
    const hash = createHash('sha256');
    const out = { way, bytes: 0, hash: '', problem: null as string | null, reconnects: 0 };
    let expected = 0;
    const feed = new LoopFeed({
      connect: () => open(row.id),
      fromSeq: 0,
      endedWhileAway: async () => endOf(await freshRow(this.store, row)),
      // No readRest: a client that was cut off must show as one, not be filled from the log.
      onOutput: (data, seq) => {
        const b = data;
        if (seq !== expected && out.problem === null) out.problem = `output at ${seq}, expected ${expected}`;
        expected = seq + b.length;
        out.bytes += b.length;
        hash.update(b);
      },
      onDisconnected: () => void (out.reconnects += 1),
      // A first dial over Ziti on a loaded machine (dozens of clients starting the shared proxy at
      // once) can take longer than one hello timeout: try again rather than count it as lost.
      firstConnectTimeoutMs: 120_000,
    });
    let timer: NodeJS.Timeout | undefined;
    try {
      const start = feed.start();
      started(start);
      await start;
      await Promise.race([
        feed.ended,
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`not finished after ${LOOP_DEADLINE_MS / 1000} s`)), LOOP_DEADLINE_MS))),
      ]);
    } catch (err) {
      out.problem = (err as Error).message;
      feed.close();
    } finally {
      clearTimeout(timer);
    }
    if (out.problem === null && out.reconnects > 0) out.problem = `its connection dropped ${out.reconnects} time(s)`;
    out.hash = hash.digest('hex');
    return out;
  }

  close(): void {
    this.store.db.close();
  }
}

function table(roles: RoleReport[], seconds: number): string[] {
  const lines = ['  | process | count | CPU s | avg % of a core | peak RSS, one | peak RSS, all |', '  |---|---|---|---|---|---|'];
  for (const r of roles) {
    lines.push(
      `  | ${r.role} | ${r.processes} | ${r.cpuSeconds.toFixed(1)} | ${((100 * r.cpuSeconds) / seconds).toFixed(1)} | ${r.peakMiB.toFixed(0)} MiB | ${r.peakTotalMiB.toFixed(0)} MiB |`,
    );
  }
  return lines;
}

async function main(): Promise<number> {
  console.log(
    `ralph soak — ${new Date().toISOString()}, node ${process.version}, load ${load()}: ${LOOPS} loops, ${CLIENTS} clients, ` +
      `${MINUTES} min, ${FLOOD_MB} MB x ${ITERATIONS} iteration(s) per loop`,
  );
  const t = makeTempHome('ralph-soak');
  process.env.RALPH_HOME = t.home;
  process.env.RALPH_CONFIG = t.env.RALPH_CONFIG;
  process.env.RALPH_ZITI_PROXY_DIR = t.env.RALPH_ZITI_PROXY_DIR = join(t.home, 'zp');
  let net: ZitiNetwork | undefined;
  let d: DaemonHandle | undefined;
  let soak: Soak | undefined;
  try {
    const found = args.ziti === 'off' ? { skip: 'OpenZiti left out (--ziti off)' } : findZiti();
    if ('skip' in found) console.log(`  ${found.skip}`);
    else net = await startZitiNetwork(found.bin, 'ralph-soak');
    d = await startDaemon(t, {
      listen: ['tcp://127.0.0.1:0'],
      ...(net
        ? {
            args: ['--ziti-service', net.service, '--ziti-identity', net.identities.daemon, '--ziti-backend', 'tunnel'],
            env: { ...net.env, RALPH_ZITI_HOST_PORT: String(net.hostPort) },
            readyTimeoutMs: 60_000,
          }
        : {}),
    });
    // The laptop side on the tunnel backend too (`auto` would take the Node SDK where it is built).
    if (net) Object.assign(process.env, net.env, { RALPH_ZITI_BACKEND: 'tunnel' });
    const viaDaemon = (remote: RemoteConfig) => async (loopId: string) =>
      new RpcPeer((await dialDaemon(remote, { version: PROTOCOL_VERSION, channel: 'loop', loop: loopId }, { timeoutMs: 30_000 })).stream);
    const ways: Array<{ way: Way; open: (loopId: string) => Promise<RpcPeer> }> = [
      { way: 'unix', open: async (loopId) => connectToLoop(soak!.store.get(loopId)!) },
      { way: 'tcp', open: viaDaemon({ name: 'soak-tcp', address: d.tcp!, token: d.token }) },
    ];
    if (net) ways.push({ way: 'ziti', open: viaDaemon({ name: 'soak-ziti', address: `ziti:${net.service}`, zitiIdentity: net.identities.client }) });
    console.log(`  ways in: ${ways.map((w) => w.way).join(', ')}; daemon ${d.tcp}`);
    soak = new Soak(t, ways);

    const sampler = new ProcessSampler(
      () => [process.pid, d!.pid, ...soak!.runners],
      () => (net ? [net.home] : []),
    );
    sampler.start();
    const t0 = Date.now();
    const until = t0 + MINUTES * 60_000;
    const perLoop = (slot: number) => Math.floor(CLIENTS / LOOPS) + (slot < CLIENTS % LOOPS ? 1 : 0);
    let failures = 0;
    const slot = async (i: number) => {
      // Stagger the first round a little: 32 `ralph run`s at once would only queue for the CPUs.
      await new Promise((r) => setTimeout(r, i * 50));
      do {
        try {
          await soak!.runOne(i, perLoop(i));
        } catch (err) {
          failures += 1;
          say(`  slot ${i}: ${(err as Error).message}`);
          return;
        }
      } while (Date.now() < until);
    };
    const progress = setInterval(() => {
      const s = soak!.totals;
      say(`  ${((Date.now() - t0) / 1000).toFixed(0)} s: ${s.loops} loops started, ${s.clients.length} clients done, ${(s.outputBytes / 2 ** 20).toFixed(0)} MB of output, load ${load()}`);
    }, 30_000);
    await Promise.all(Array.from({ length: LOOPS }, (_, i) => slot(i)));
    clearInterval(progress);
    const seconds = (Date.now() - t0) / 1000;
    const roles = sampler.stop();

    const s = soak.totals;
    const bad = s.clients.filter((c) => !c.ok);
    const delivered = s.clients.reduce((a, c) => a + c.bytes, 0);
    const byWay = (w: Way) => s.clients.filter((c) => c.way === w);
    console.log(`\nresult after ${seconds.toFixed(1)} s (load ${load()}):`);
    console.log(`  loops: ${s.loops} run, ${s.loopsCompleted} completed; agent output ${(s.outputBytes / 2 ** 20).toFixed(1)} MB`);
    for (const w of ['unix', 'tcp', 'ziti'] as const) {
      const cs = byWay(w);
      if (cs.length > 0) console.log(`  clients via ${w}: ${cs.length}, ${cs.filter((c) => c.ok).length} got every byte once and in order`);
    }
    console.log(`  throughput: agents → runners ${(s.outputBytes / 2 ** 20 / seconds).toFixed(1)} MB/s; runners → clients ${(delivered / 2 ** 20 / seconds).toFixed(1)} MB/s`);
    console.log('  per process (CPU over the whole run; peak RSS from VmHWM):');
    for (const line of table(roles, seconds)) console.log(line);
    const ok = bad.length === 0 && failures === 0 && s.loopsCompleted === s.loops;
    console.log(
      ok
        ? `PASS: ${s.clients.length} clients of ${s.loops} loops each got every byte once and in order`
        : `FAIL: ${bad.length} of ${s.clients.length} clients missed output, ${failures} slot(s) failed, ${s.loops - s.loopsCompleted} loop(s) did not complete`,
    );
    return ok ? 0 : 1;
  } finally {
    soak?.close();
    if (net) await stopProxy(net.service, net.identities.client).catch(() => null);
    await d?.stop().catch(() => null);
    killRunners(t.home);
    await net?.stop().catch(() => null);
    if (args.keep) console.log(`  kept ${t.home}`);
    else t.cleanup();
  }
}

process.exit(await main());
