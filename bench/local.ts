// `npm run bench`: the local path's figures, each beside a baseline measured in the same run, and
// printed as a ratio to it (a loaded machine moves both alike; the ratio is what to compare):
//  1. keystroke echo as a user feels it: the real `ralph attach --interactive` in a PTY vs `tmux
//     attach` in a PTY, same far end (`stty raw -echo; cat`), interleaved; also node-pty alone with
//     that far end (the floor) and the bench's own RPC client (the protocol without the attach client);
//  2. the idle runner's memory (RSS, PSS, private) vs a bare idle `node` process;
//  3. output throughput from the agent's PTY to an attached client vs node-pty alone reading the
//     same flood (rounds alternate), and through the real `ralph attach` with stdout a pipe;
//  4. `ralph status` wall time with 10,000 rows in the session DB vs a bare `node -e 0`.
// BENCH_ECHO_WARMUP=N: untimed keys through every client before the echo figures (default 50): the
// figures of a warm client and runner, after V8 has compiled their hot paths.
// Targets (issue 11): echo p50 and p99 <= tmux; throughput >= 0.8x node-pty alone; idle runner RSS <= 40 MB.

import { spawn, spawnSync } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { copyFileSync } from 'node:fs';
import { launchRunner, runnerLogPath } from '../loop/launch.js';
import { prepareLoop } from '../loop/prepare.js';
import { RpcPeer } from '../rpc/peer.js';
import { openDb } from '../store/db.js';
import { LoopStore } from '../store/loops.js';
import { homePaths } from '../store/paths.js';
import { dial } from '../transport/index.js';
import { makeTempHome, RALPH_BIN } from '../test/helpers/env.js';
import { fixtureAgentCmd } from '../test/helpers/loop.js';
import { makeTaskRepo } from '../test/helpers/task.js';
import { bareSocketEcho, rawPtyFlood } from './baselines.js';
import { cpuSeconds, FloodWindow, fmtMs, measureEcho, measureFlood, memoryOf, OutputWatch, percentiles, rssKiB, type Memory } from './measure.js';
import { CAT_COMMAND, interleavedEcho, PtyClient, TmuxSession } from './terminals.js';

const KEYSTROKES = Number(process.env.BENCH_KEYSTROKES || 2000);
const FLOOD_MB = Number(process.env.BENCH_FLOOD_MB || 64);
const FLOOD_ROUNDS = Number(process.env.BENCH_FLOOD_ROUNDS || 3);
const STATUS_ROWS = 10_000;
/** Which parts to run (comma-separated): echo, memory, flood, status. Default: all. */
const PARTS = new Set((process.env.BENCH_PARTS || 'echo,memory,flood,status').split(','));
const IDLE_SETTLE_MS = 2000;

const ratio = (a: number, b: number) => `${(a / b).toFixed(2)}x`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A loop of this bench: a temp RALPH_HOME, a task repo, a runner with `agentCmd`, a client. */
async function startLoop(label: string, agentCmd: string, env: NodeJS.ProcessEnv = {}) {
  const t = makeTempHome(label);
  const task = makeTaskRepo({ stories: 1, label: `${label}-task` });
  const paths = homePaths(t.home);
  const store = new LoopStore(openDb(paths.db));
  const row = prepareLoop(store, paths, { dir: task.dir, agentCmd, maxIterations: 1 });
  const { pid } = await launchRunner(paths, row.id, { env: { ...t.env, ...env } });
  const peer = new RpcPeer(await dial(`unix:${paths.socketFor(row.id)}`));
  const watch = new OutputWatch(peer);
  await watch.subscribe({ fromSeq: 0 });
  return {
    t,
    paths,
    id: row.id,
    pid,
    watch,
    cleanup(): void {
      peer.close();
      try {
        process.kill(pid, 'SIGTERM');
      } catch {
        /* it has ended */
      }
      store.db.close();
      task.cleanup();
      t.cleanup();
    },
  };
}

function fmtMemory(m: Memory): string {
  return `RSS ${(m.rss / 1024).toFixed(1)} MB, PSS ${(m.pss / 1024).toFixed(1)} MB, private ${(m.private / 1024).toFixed(1)} MB`;
}

/** A bare `node` process doing nothing, for what any node process costs on this machine. */
async function bareNodeMemory(): Promise<Memory> {
  const child = spawn(process.execPath, ['-e', "process.stdout.write('ready\\n'); setInterval(() => {}, 1e6)"], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((r) => child.stdout!.once('data', () => r()));
  await sleep(IDLE_SETTLE_MS);
  const m = memoryOf(child.pid!);
  child.kill();
  return m;
}

async function echoAndMemory(): Promise<void> {
  const loop = await startLoop('ralph-bench-echo', CAT_COMMAND);
  let tmux: TmuxSession | undefined;
  const clients: PtyClient[] = [];
  try {
    await loop.watch.seen('ECHO READY');
    if (PARTS.has('memory')) {
      await sleep(IDLE_SETTLE_MS);
      const runner = memoryOf(loop.pid);
      const bare = await bareNodeMemory();
      console.log(`idle runner:          ${fmtMemory(runner)}`);
      console.log(`  baseline, bare idle node: ${fmtMemory(bare)}`);
      console.log(`  runner / bare node: RSS ${ratio(runner.rss, bare.rss)} (+${((runner.rss - bare.rss) / 1024).toFixed(1)} MB), private ${ratio(runner.private, bare.private)} (+${((runner.private - bare.private) / 1024).toFixed(1)} MB)   target: RSS <= 40 MB`);
    }
    if (!PARTS.has('echo')) return;
    const rpc = await measureEcho(loop.watch, KEYSTROKES);
    await loop.watch.peer.request('interactive', { on: false });
    console.log(`echo, bench RPC client over the unix socket: ${fmtMs(rpc)}`);
    const bare = await bareSocketEcho(KEYSTROKES);
    console.log(`  baseline, bare node JSON echo over a unix socket: ${fmtMs(bare)}`);

    const floor = new PtyClient('sh', ['-c', CAT_COMMAND], process.env);
    clients.push(floor);
    // BENCH_ATTACH_NODE_ARGS: node flags for the attach client (profiling: "--cpu-prof --cpu-prof-dir=/tmp/p").
    const attachArgs = (process.env.BENCH_ATTACH_NODE_ARGS ?? '').split(' ').filter(Boolean);
    const attach = new PtyClient(process.execPath, [...attachArgs, RALPH_BIN, 'attach', '--interactive', loop.id], loop.t.env);
    clients.push(attach);
    await floor.seen('ECHO READY');
    await attach.seen('keys go to the agent');
    let tmuxClient: PtyClient | undefined;
    if (TmuxSession.available()) {
      tmux = new TmuxSession(loop.t.env);
      tmux.start(CAT_COMMAND);
      tmuxClient = tmux.attach();
      clients.push(tmuxClient);
      await tmuxClient.seen('ECHO READY');
    } else {
      console.log('  (tmux is not installed: no tmux baseline)');
    }
    const [f, a, x] = await interleavedEcho(clients, KEYSTROKES);
    if (process.env.BENCH_ECHO_WARMUP) console.log(`(after ${process.env.BENCH_ECHO_WARMUP} untimed keys through each client)`);
    console.log(`echo, \`ralph attach --interactive\` in a PTY: ${fmtMs(a!)}`);
    if (x) console.log(`  baseline, \`tmux attach\` in a PTY:          ${fmtMs(x)}`);
    console.log(`  floor, node-pty alone with the same far end: ${fmtMs(f!)}`);
    if (x) console.log(`  ralph attach / tmux attach: p50 ${ratio(a!.p50, x.p50)}, p99 ${ratio(a!.p99, x.p99)}   target: <= 1.00x`);
    if (PARTS.has('memory')) console.log(`idle runner after the echo runs: ${fmtMemory(memoryOf(loop.pid))}`);
  } finally {
    for (const c of clients) c.kill();
    tmux?.stop();
    loop.cleanup();
  }
}

interface FloodResult {
  mbPerS: number;
  /** CPU time per MB of output: the runner's and the client's. */
  runnerMsPerMb: number;
  clientMsPerMb: number;
  line: string;
}

/** One flood to the bench's RPC client; the runner's CPU and peak RSS beside it. */
async function floodToClient(): Promise<FloodResult> {
  const loop = await startLoop('ralph-bench-flood', fixtureAgentCmd('echo,flood'), { FIXTURE_FLOOD_MB: String(FLOOD_MB) });
  try {
    await loop.watch.seen('ECHO READY');
    await loop.watch.peer.request('interactive', { on: true });
    const runnerCpu0 = cpuSeconds(loop.pid);
    const clientCpu0 = process.cpuUsage();
    const flood = await measureFlood(loop.watch, () => rssKiB(loop.pid));
    const runnerCpu = cpuSeconds(loop.pid) - runnerCpu0;
    const clientUsage = process.cpuUsage(clientCpu0);
    const clientCpu = (clientUsage.user + clientUsage.system) / 1e6;
    // BENCH_RUNNER_LOG=path: keep the runner's own log (e.g. with RALPH_RUNNER_NODE_ARGS=--trace-gc).
    if (process.env.BENCH_RUNNER_LOG) {
      await sleep(2500); // the runner lingers, then exits
      copyFileSync(runnerLogPath(loop.paths, loop.id), process.env.BENCH_RUNNER_LOG);
    }
    const runnerMsPerMb = (runnerCpu * 1000) / flood.mb;
    const clientMsPerMb = (clientCpu * 1000) / flood.mb;
    return {
      mbPerS: flood.mbPerS,
      runnerMsPerMb,
      clientMsPerMb,
      line:
        `${flood.mbPerS.toFixed(1)} MB/s (${flood.mb.toFixed(1)} MB in ${flood.seconds.toFixed(2)} s, ${flood.events} events of ${((flood.mb * 1024) / flood.events).toFixed(1)} KiB; ` +
        `runner peak RSS ${flood.maxRssMb.toFixed(0)} MB; CPU per MB: runner ${runnerMsPerMb.toFixed(1)} ms, client ${clientMsPerMb.toFixed(1)} ms)`,
    };
  } finally {
    loop.cleanup();
  }
}

/** One flood through the real `ralph attach --no-replay`, its stdout a pipe that this process reads. */
async function floodThroughAttach(): Promise<number> {
  const loop = await startLoop('ralph-bench-attach', fixtureAgentCmd('echo,flood'), { FIXTURE_FLOOD_MB: String(FLOOD_MB) });
  try {
    await loop.watch.seen('ECHO READY');
    // Only the attach client reads the flood: the bench's own client stops listening.
    await loop.watch.peer.request('unsubscribe');
    const attach = spawn(process.execPath, [RALPH_BIN, 'attach', '--no-replay', loop.id], { env: loop.t.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    attach.stderr!.on('data', (d) => (stderr += d));
    // Timed over the FloodWindow (first flood chunk to the end marker), as the baseline is.
    const window = new FloodWindow();
    attach.stdout!.on('data', (d: Buffer) => void window.add(d));
    await new Promise<void>((resolve, reject) => {
      const check = () => (stderr.includes('attached to loop') ? resolve() : undefined);
      attach.stderr!.on('data', check);
      attach.once('exit', () => reject(new Error(`ralph attach exited early: ${stderr}`)));
    });
    await loop.watch.peer.request('interactive', { on: true });
    await loop.watch.peer.request('write', { data: '\rq\r' });
    await loop.watch.peer.request('interactive', { on: false });
    const code = await new Promise<number | null>((r) => attach.once('exit', r));
    if (code !== 0) throw new Error(`ralph attach exited with ${code}: ${stderr}`);
    if (!window.result) throw new Error(`ralph attach showed no flood end marker: ${stderr}`);
    return window.result.mbPerS;
  } finally {
    loop.cleanup();
  }
}

// Every flood figure (node-pty alone, the bench's RPC client, `ralph attach`) is timed over the same
// window: from the first chunk holding a flood line to the chunk that completes the fixture's
// "flood done:" marker, raw bytes counted alike (bench/measure.ts FloodWindow).
async function throughput(): Promise<void> {
  const ratios: number[] = [];
  const cpuRatios: number[] = [];
  for (let r = 0; r < FLOOD_ROUNDS; r++) {
    const cpu0 = process.cpuUsage();
    const b = await rawPtyFlood(FLOOD_MB);
    const cpu = process.cpuUsage(cpu0);
    const baseMsPerMb = (cpu.user + cpu.system) / 1000 / b.mb;
    console.log(
      `  round ${r + 1}: baseline, node-pty alone reading the flood: ${b.mbPerS.toFixed(1)} MB/s (${b.chunks} reads of ${((b.mb * 1024) / b.chunks).toFixed(1)} KiB; CPU per MB ${baseMsPerMb.toFixed(1)} ms)   [load ${loadAverage()}]`,
    );
    const o = await floodToClient();
    console.log(`  round ${r + 1}: ralph, PTY -> runner -> bench RPC client: ${o.line}`);
    ratios.push(o.mbPerS / b.mbPerS);
    cpuRatios.push(o.runnerMsPerMb / baseMsPerMb);
  }
  const attach = await floodThroughAttach();
  const base = await rawPtyFlood(FLOOD_MB);
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
  console.log(
    `throughput (${FLOOD_MB} MB flood), ralph / node-pty alone in the same round: ${ratios.map((x) => x.toFixed(2)).join(', ')}; median ${med(ratios).toFixed(2)}x   target: >= 0.80x`,
  );
  console.log(`  runner CPU per MB / node-pty alone's: ${cpuRatios.map((x) => x.toFixed(2)).join(', ')} (what the runner adds to reading the PTY)`);
  console.log(`  through \`ralph attach --no-replay\` (stdout a pipe): ${attach.toFixed(1)} MB/s, node-pty alone right after: ${base.mbPerS.toFixed(1)} MB/s: ${ratio(attach, base.mbPerS)}`);
}

function statusWallTime(): void {
  const t = makeTempHome('ralph-bench-status');
  const paths = homePaths(t.home);
  const db = openDb(paths.db);
  const store = new LoopStore(db);
  const statuses = ['completed', 'failed', 'stopped'] as const;
  db.transaction(() => {
    for (let i = 0; i < STATUS_ROWS; i++) {
      const id = `bench-${i.toString(16).padStart(4, '0')}`;
      store.insert({
        id,
        name: id,
        location: i % 5 === 0 ? 'remote' : 'local',
        remote: i % 5 === 0 ? 'vps' : null,
        workDir: `/home/user/src/project-${i % 37}`,
        branch: `feature-${i}`,
        agent: 'claude',
        maxIterations: 10,
        iteration: i % 10,
        status: statuses[i % 3]!,
        reason: i % 3 === 1 ? 'max iterations reached' : null,
        startedAt: new Date(Date.now() - i * 60_000).toISOString(),
        endedAt: new Date(Date.now() - i * 60_000 + 30_000).toISOString(),
      });
    }
  })();
  db.close();
  // Interleaved with a bare `node -e 0`, so each figure can be read against node's own start-up
  // at the same moment (on a loaded box that alone can take several hundred ms).
  const variants = [['status'], ['status', '--all'], ['status', '--json']];
  const samples = variants.map(() => [] as number[]);
  const bare: number[] = [];
  const time = (args: string[]): number => {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(process.execPath, args, { env: t.env, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (r.status !== 0) throw new Error(`${args.join(' ')} failed: ${r.stderr}`);
    return ms;
  };
  for (let i = 0; i < 12; i++) {
    const b = time(['-e', '0']);
    const ms = variants.map((args) => time([RALPH_BIN, ...args]));
    if (i < 2) continue; // warm the page cache
    bare.push(b);
    ms.forEach((m, k) => samples[k]!.push(m));
  }
  const bareP50 = percentiles(bare).p50;
  variants.forEach((args, k) => {
    const p = percentiles(samples[k]!);
    console.log(
      `ralph ${args.join(' ').padEnd(13)} (${STATUS_ROWS} rows): p50 ${p.p50.toFixed(0)} ms  max ${p.max.toFixed(0)} ms  (n=${p.n}, wall time incl. node start; ${(p.p50 - bareP50).toFixed(0)} ms over bare node)`,
    );
  });
  console.log(`(bare \`node -e 0\` on this machine, interleaved: p50 ${bareP50.toFixed(0)} ms)`);
  t.cleanup();
}

function loadAverage(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

console.log(`ralph local benchmark — ${new Date().toISOString()}, node ${process.version}, ${cpus().length} CPUs, load average ${loadAverage()}`);
if (PARTS.has('echo') || PARTS.has('memory')) await echoAndMemory();
if (PARTS.has('flood')) await throughput();
if (PARTS.has('status')) statusWallTime();
console.log(`(load average at the end: ${loadAverage()})`);
