// `npm run bench`: the local path's figures.
//  1. keystroke echo round trip: `write` → agent PTY → `output` event, over the loop's unix socket;
//  2. output throughput from the agent's PTY to an attached client, with the runner's peak memory;
//  3. `ralph status` wall time with 10,000 rows in the session DB.
// Targets (2-core machine): echo p50 <= 1 ms, p99 <= 3 ms; >= 50 MB/s; status <= 200 ms.

import { spawnSync } from 'node:child_process';
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
import { bareSocketEcho, rawPtyEcho, rawPtyFlood } from './baselines.js';
import { cpuSeconds, fmtMs, measureEcho, measureFlood, OutputWatch, percentiles, rssKiB } from './measure.js';

const KEYSTROKES = Number(process.env.BENCH_KEYSTROKES || 2000);
const FLOOD_MB = Number(process.env.BENCH_FLOOD_MB || 64);
const STATUS_ROWS = 10_000;
/** Which parts to run (comma-separated): loop, baselines, status. Default: all. */
const PARTS = new Set((process.env.BENCH_PARTS || 'loop,baselines,status').split(','));

async function echoAndThroughput(): Promise<void> {
  const t = makeTempHome('ralph-bench');
  const task = makeTaskRepo({ stories: 1, label: 'ralph-bench-task' });
  process.env.RALPH_HOME = t.home;
  const paths = homePaths(t.home);
  const store = new LoopStore(openDb(paths.db));
  try {
    const row = prepareLoop(store, paths, { dir: task.dir, agentCmd: fixtureAgentCmd('echo,flood'), maxIterations: 1 });
    const { pid } = await launchRunner(paths, row.id, { env: { ...t.env, FIXTURE_FLOOD_MB: String(FLOOD_MB) } });
    const peer = new RpcPeer(await dial(`unix:${paths.socketFor(row.id)}`));
    const watch = new OutputWatch(peer);
    await watch.subscribe({ fromSeq: 0 });
    const echo = await measureEcho(watch, KEYSTROKES);
    console.log(`echo (unix socket):   ${fmtMs(echo)}`);
    const runnerCpu0 = cpuSeconds(pid);
    const clientCpu0 = process.cpuUsage();
    const flood = await measureFlood(watch, () => rssKiB(pid));
    const runnerCpu = cpuSeconds(pid) - runnerCpu0;
    const clientCpu = process.cpuUsage(clientCpu0);
    console.log(
      `throughput (unix):    ${flood.mbPerS.toFixed(1)} MB/s  (${flood.mb.toFixed(1)} MB in ${flood.seconds.toFixed(2)} s, ${flood.events} events of ${((flood.mb * 1024) / flood.events).toFixed(1)} KiB on average; runner peak RSS ${flood.maxRssMb.toFixed(0)} MB)`,
    );
    console.log(
      `  CPU during the flood: runner ${runnerCpu.toFixed(2)} s, this client ${((clientCpu.user + clientCpu.system) / 1e6).toFixed(2)} s (of ${flood.seconds.toFixed(2)} s wall, 2 cores shared with the agent)`,
    );
    peer.close();
    // BENCH_RUNNER_LOG=path: keep the runner's own log (e.g. with RALPH_RUNNER_NODE_ARGS=--trace-gc).
    if (process.env.BENCH_RUNNER_LOG) {
      await new Promise((r) => setTimeout(r, 2500)); // the runner lingers, then exits
      copyFileSync(runnerLogPath(paths, row.id), process.env.BENCH_RUNNER_LOG);
    }
  } finally {
    store.db.close();
    task.cleanup();
    t.cleanup();
  }
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

async function baselines(): Promise<void> {
  const echo = await rawPtyEcho(KEYSTROKES);
  console.log(`  baseline echo, node-pty alone (no ralph):    ${fmtMs(echo)}`);
  const bare = await bareSocketEcho(KEYSTROKES);
  console.log(`  baseline echo, bare node over a unix socket: ${fmtMs(bare)}`);
  const flood = await rawPtyFlood(FLOOD_MB);
  console.log(`  baseline throughput, node-pty alone:         ${flood.mbPerS.toFixed(1)} MB/s  (${flood.chunks} chunks, ${((flood.mb * 1024) / flood.chunks).toFixed(1)} KiB each)`);
}

function loadAverage(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

console.log(`ralph local benchmark — ${new Date().toISOString()}, node ${process.version}, ${cpus().length} CPUs, load average ${loadAverage()}`);
if (PARTS.has('loop')) await echoAndThroughput();
if (PARTS.has('baselines')) await baselines();
if (PARTS.has('status')) statusWallTime();
console.log(`(load average at the end: ${loadAverage()})`);
