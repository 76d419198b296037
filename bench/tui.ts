// `npm run bench:tui`: `ralph tui` in a real PTY (node-pty, 120x40), driven as a user would.
//  1. time to the first full frame with 1,000 loops in the session DB and 3 remotes (two daemons on
//     loopback tcp, one address nothing answers), beside `node -e 0` and `ralph status` on the same DB;
//  2. keystroke-to-screen latency (a digit typed at the `+` prompt until that prompt is redrawn with
//     it), with the selected loop idle and while it floods output; beside each, the floor measured
//     right after it the same way (same keys, same pace): node-pty alone typing into a PTY running
//     `stty raw -echo; cat` (bench/terminals.ts), under the same load;
//  3. the TUI's RSS with 50 loops streaming, while its selection walks over all of them twice,
//     beside a bare idle `node` process measured in the same run.
// Targets (2-core machine): first frame <= 500 ms; keystroke p99 <= 50 ms while flooding; RSS bounded.

import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import pty from 'node-pty';
import { launchRunner } from '../loop/launch.js';
import { prepareLoop } from '../loop/prepare.js';
import { openDb } from '../store/db.js';
import { LoopStore } from '../store/loops.js';
import { homePaths } from '../store/paths.js';
import { startDaemon, killRunners, type DaemonHandle } from '../test/helpers/daemon.js';
import { makeTempHome, RALPH_BIN, type TempHome } from '../test/helpers/env.js';
import { fixtureAgentCmd } from '../test/helpers/loop.js';
import { makeTaskRepo } from '../test/helpers/task.js';
import { cpuSeconds, percentiles, rssKiB } from './measure.js';
import { CAT_COMMAND, PtyClient } from './terminals.js';

const LOOPS = 1000;
const FRAME_RUNS = Number(process.env.BENCH_TUI_RUNS || 7);
const KEYSTROKES = Number(process.env.BENCH_TUI_KEYSTROKES || 200);
const STREAMING_LOOPS = Number(process.env.BENCH_TUI_STREAMING || 50);
/** Which parts to run (comma-separated): frame, keys, rss. Default: all. */
const PARTS = new Set((process.env.BENCH_PARTS || 'frame,keys,rss').split(','));
/** The key bar's first words: the last line of a full frame. */
const KEY_BAR = '↑↓/jk select';

/** `ralph tui` in a PTY, its output kept as a rolling tail to search in. */
class TuiProcess {
  readonly proc: pty.IPty;
  private tail = '';
  private total = 0;
  private waiters: Array<{ needle: string; from: number; resolve: () => void }> = [];

  constructor(env: NodeJS.ProcessEnv, cols = 120, rows = 40) {
    // BENCH_TUI_NODE_ARGS: node flags for the TUI (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
    const nodeArgs = (process.env.BENCH_TUI_NODE_ARGS ?? '').split(' ').filter(Boolean);
    this.proc = pty.spawn(process.execPath, [...nodeArgs, RALPH_BIN, 'tui'], { cols, rows, env: env as Record<string, string>, name: 'xterm-256color' });
    this.proc.onData((d) => {
      this.tail += d;
      this.total += d.length;
      if (this.tail.length > 1 << 17) this.tail = this.tail.slice(-(1 << 16));
      for (const w of [...this.waiters]) {
        if (this.seen(w.needle, w.from)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve();
        }
      }
    });
  }

  get pid(): number {
    return this.proc.pid;
  }

  private seen(needle: string, from: number): boolean {
    const start = Math.max(0, this.tail.length - (this.total - from));
    return this.tail.indexOf(needle, start) !== -1;
  }

  /** Resolves when `needle` appears in output that arrives after this call (or within `timeoutMs`, rejects). */
  next(needle: string, timeoutMs = 20_000): Promise<void> {
    const from = this.total;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the tui did not show ${JSON.stringify(needle)} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        needle,
        from,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  write(keys: string): void {
    this.proc.write(keys);
  }

  async quit(): Promise<number> {
    const exited = new Promise<number>((resolve) => this.proc.onExit(({ exitCode }) => resolve(exitCode)));
    this.proc.write('q');
    return exited;
  }
}

function loadAverage(): string {
  return loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');
}

function time(cmd: string, args: string[], env: NodeJS.ProcessEnv): number {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${args.join(' ')} failed: ${r.stderr}`);
  return performance.now() - t0;
}

// ---- 1. first frame ----

async function firstFrame(): Promise<void> {
  const t = makeTempHome('ralph-bench-tui');
  const boxes: TempHome[] = [makeTempHome('ralph-bench-box1'), makeTempHome('ralph-bench-box2')];
  const daemons: DaemonHandle[] = [];
  try {
    for (const b of boxes) daemons.push(await startDaemon(b, { listen: ['tcp://127.0.0.1:0'] }));
    const remotes = {
      box1: { address: daemons[0]!.tcp!, token: daemons[0]!.token, repo: 'app' },
      box2: { address: daemons[1]!.tcp!, token: daemons[1]!.token, repo: 'app' },
      gone: { address: 'tcp://127.0.0.1:9', token: 'none', repo: 'app' },
    };
    writeFileSync(t.env.RALPH_CONFIG!, JSON.stringify({ remotes }));
    const template = join(t.home, 'template.db');
    const store = new LoopStore(openDb(template));
    const names = Object.keys(remotes);
    store.db.transaction(() => {
      for (let i = 0; i < LOOPS; i++) {
        const id = `bench-${i.toString(16).padStart(4, '0')}`;
        const remote = i % 4 === 0 ? names[(i / 4) % names.length]! : null;
        store.insert({
          id,
          name: id,
          location: remote ? 'remote' : 'local',
          remote,
          remoteLoopId: remote ? id : null,
          workDir: `/home/user/src/project-${i % 37}`,
          branch: `feature-${i}`,
          agent: 'claude',
          maxIterations: 10,
          iteration: i % 10,
          // The newest 30 are open (remote ones get reconciled in the background), the rest ended.
          status: i < 30 ? 'running' : (['completed', 'failed', 'stopped'] as const)[i % 3]!,
          pid: null,
          reason: i % 3 === 1 ? 'reached the iteration limit' : null,
          startedAt: new Date(Date.now() - i * 60_000).toISOString(),
        });
      }
    })();
    store.db.close();

    const db = homePaths(t.home).db;
    const frames: number[] = [];
    const bare: number[] = [];
    const status: number[] = [];
    for (let run = 0; run < FRAME_RUNS + 1; run++) {
      copyFileSync(template, db);
      const b = time(process.execPath, ['-e', '0'], t.env);
      copyFileSync(template, db);
      const s = time(process.execPath, [RALPH_BIN, 'status', '--timeout', '3000'], t.env);
      copyFileSync(template, db);
      const t0 = performance.now();
      const tui = new TuiProcess(t.env);
      await tui.next(KEY_BAR);
      const ms = performance.now() - t0;
      await tui.quit();
      if (run === 0) continue; // warms the page cache
      frames.push(ms);
      bare.push(b);
      status.push(s);
    }
    const f = percentiles(frames);
    console.log(`first full frame, ${LOOPS} loops, 3 remotes (one unreachable): p50 ${f.p50.toFixed(0)} ms  max ${f.max.toFixed(0)} ms  (n=${f.n}; target <= 500 ms)`);
    console.log(`  beside it: bare \`node -e 0\` p50 ${percentiles(bare).p50.toFixed(0)} ms; \`ralph status\` on the same DB (reconciles the remotes before printing) p50 ${percentiles(status).p50.toFixed(0)} ms`);
  } finally {
    for (const d of daemons) await d.stop();
    for (const b of boxes) {
      killRunners(b.home);
      b.cleanup();
    }
    t.cleanup();
  }
}

// ---- 2. keystrokes ----

async function keystrokes(): Promise<void> {
  const t = makeTempHome('ralph-bench-keys');
  const task = makeTaskRepo({ stories: 1, label: 'ralph-bench-keys' });
  const paths = homePaths(t.home);
  process.env.RALPH_HOME = t.home;
  const store = new LoopStore(openDb(paths.db));
  try {
    // One loop that waits (echo), one that floods (1 GB at whatever rate the PTY takes it). Each is
    // started when its part begins: a flood started with the first would be over (and its loop ended,
    // refusing `+`) by the time the idle part and its floor are done.
    const startLoop = async (name: string, agent: string, env: NodeJS.ProcessEnv) => {
      const row = prepareLoop(store, paths, { dir: task.dir, agentCmd: fixtureAgentCmd(agent), maxIterations: 1, name });
      await launchRunner(paths, row.id, { env });
      return row.id;
    };
    for (const [label, start] of [
      ['idle loop selected', () => startLoop('idle', 'echo', t.env)],
      ['flooding loop selected', () => startLoop('flood', 'flood', { ...t.env, FIXTURE_FLOOD_MB: '1024' })],
    ] as const) {
      const id = await start();
      const stats = join(t.home, `stats-${id}.json`);
      const tui = new TuiProcess({ ...t.env, RALPH_TUI_STATS: stats });
      await tui.next(KEY_BAR);
      tui.write('/');
      tui.write(id);
      tui.write('\r');
      await tui.next(`─ ${id} · `);
      const samples: number[] = [];
      const cpu0 = cpuSeconds(tui.pid);
      const wall0 = performance.now();
      let digits = '';
      const prompt = () => `(Enter: 5): ${digits}`;
      tui.write('+');
      await tui.next(prompt());
      for (let i = 0; i < KEYSTROKES; i++) {
        if (digits.length === 5) {
          digits = '';
          tui.write('\x1b');
          await new Promise((r) => setTimeout(r, 30)); // Esc alone, not Alt+
          tui.write('+');
          await tui.next(prompt());
        }
        digits += String((i % 9) + 1);
        const shown = tui.next(prompt());
        const t0 = performance.now();
        tui.write(digits.slice(-1));
        await shown;
        samples.push(performance.now() - t0);
        await new Promise((r) => setTimeout(r, 20 + (i % 7) * 5)); // a typist's pace, not in step with frames
      }
      const busy = (cpuSeconds(tui.pid) - cpu0) / ((performance.now() - wall0) / 1000);
      tui.write('\x1b');
      await new Promise((r) => setTimeout(r, 30));
      await tui.quit();
      // The floor, right after, the same way: as many keys at the same pace, through node-pty alone
      // to `stty raw -echo; cat` (the loops, flooding or not, still running as they were).
      const cat = new PtyClient('/bin/sh', ['-c', CAT_COMMAND], t.env);
      let floor;
      try {
        await cat.seen('ECHO READY');
        floor = percentiles(await cat.echo(KEYSTROKES, 0, (i) => 20 + (i % 7) * 5));
      } finally {
        cat.kill();
      }
      const p = percentiles(samples);
      const loop = JSON.parse(readFileSync(stats, 'utf8')) as { p50: number; p99: number; max: number };
      console.log(
        `keystroke to screen, ${label.padEnd(22)}: p50 ${p.p50.toFixed(1)} ms  p95 ${p.p95.toFixed(1)} ms  p99 ${p.p99.toFixed(1)} ms  max ${p.max.toFixed(1)} ms  (n=${p.n}${label.startsWith('flood') ? '; target p99 <= 50 ms' : ''})`,
      );
      console.log(
        `  floor, node-pty alone to \`stty raw -echo; cat\`: p50 ${floor.p50.toFixed(1)} ms  p95 ${floor.p95.toFixed(1)} ms  p99 ${floor.p99.toFixed(1)} ms  max ${floor.max.toFixed(1)} ms (n=${floor.n}); tui p99 / floor p99 ${(p.p99 / floor.p99).toFixed(2)}x`,
      );
      console.log(`  the tui meanwhile: ${(busy * 100).toFixed(0)} % of a core; its event loop delayed p50 ${loop.p50} ms, p99 ${loop.p99} ms, max ${loop.max} ms`);
    }
  } finally {
    store.db.close();
    killRunners(t.home);
    task.cleanup();
    t.cleanup();
  }
}

// ---- 3. RSS ----

async function rss(): Promise<void> {
  const t = makeTempHome('ralph-bench-rss');
  const task = makeTaskRepo({ stories: 1, label: 'ralph-bench-rss' });
  const paths = homePaths(t.home);
  process.env.RALPH_HOME = t.home;
  const store = new LoopStore(openDb(paths.db));
  const stream = `i=0; while :; do i=$((i+1)); echo "stream line $i of loop $RALPH_LOOP_ID"; sleep 0.05; done`;
  try {
    mkdirSync(paths.logs, { recursive: true });
    for (let i = 0; i < STREAMING_LOOPS; i++) {
      const row = prepareLoop(store, paths, { dir: task.dir, agentCmd: stream, maxIterations: 1, name: `stream-${i}` });
      await launchRunner(paths, row.id, { env: t.env });
    }
    const tui = new TuiProcess(t.env);
    await tui.next(KEY_BAR);
    await tui.next('stream line');
    const samples: Array<{ at: string; kib: number }> = [{ at: 'first frame', kib: rssKiB(tui.pid) }];
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, rssKiB(tui.pid))), 100);
    // The list's order: newest first (all are open).
    const ids = store.list().map((r) => r.id);
    for (let round = 1; round <= 2; round++) {
      for (let i = 0; i < STREAMING_LOOPS; i++) {
        const next = ids[(i + 1) % ids.length]!;
        const header = tui.next(`─ ${next} · `, 10_000);
        tui.write(i === STREAMING_LOOPS - 1 ? 'g' : 'j');
        await header;
        await tui.next(`of loop ${next}`, 10_000); // its output is in the pane
      }
      samples.push({ at: `after walking all ${STREAMING_LOOPS} (round ${round})`, kib: rssKiB(tui.pid) });
    }
    // The baseline in the same run: a bare idle node process, settled over the same 5 s.
    const bare = spawn(process.execPath, ['-e', "process.stdout.write('ready\\n'); setInterval(() => {}, 1e6)"], { stdio: ['ignore', 'pipe', 'inherit'] });
    let bareKib = 0;
    try {
      await new Promise<void>((r) => bare.stdout!.once('data', () => r()));
      await new Promise((r) => setTimeout(r, 5000));
      bareKib = rssKiB(bare.pid!);
    } finally {
      bare.kill();
    }
    samples.push({ at: '5 s later, one selected', kib: rssKiB(tui.pid) });
    clearInterval(sampler);
    await tui.quit();
    const mb = (k: number) => `${(k / 1024).toFixed(0)} MB`;
    console.log(`tui RSS with ${STREAMING_LOOPS} loops streaming: ${samples.map((s) => `${s.at} ${mb(s.kib)}`).join('; ')}; peak ${mb(peak)}`);
    console.log(`  baseline, a bare idle node in the same run: RSS ${mb(bareKib)}; the tui at the end / bare node: ${(samples.at(-1)!.kib / bareKib).toFixed(2)}x`);
  } finally {
    store.db.close();
    killRunners(t.home);
    task.cleanup();
    t.cleanup();
  }
}

console.log(`ralph tui benchmark — ${new Date().toISOString()}, node ${process.version}, ${cpus().length} CPUs, load average ${loadAverage()}`);
if (PARTS.has('frame')) await firstFrame();
if (PARTS.has('keys')) await keystrokes();
if (PARTS.has('rss')) await rss();
console.log(`(load average at the end: ${loadAverage()})`);
process.exit(0);
