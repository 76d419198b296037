// What `ralph demo` started, and how it all ends: the demo writes each thing it starts into
// DIR/demo-state.json as it starts it, and `cleanUpDemo(DIR)` ends them in order — loops still running
// on the box, the daemon (which ends its own `ziti tunnel host`), the laptop's OpenZiti proxy, the
// throwaway OpenZiti network — and removes DIR. The demo calls it on every way out; a small detached
// watchdog calls it (`node dist/demo/cleanup.js DIR`) if the demo itself is killed outright.

import { execa } from 'execa';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { openDb } from '../store/db.js';
import { isFinal, LoopStore } from '../store/loops.js';
import { runnerAlive } from '../store/process.js';

export interface DemoState {
  /** The package root (where dist/, install/ and demo/ are). */
  root: string;
  boxHome: string;
  daemonPid?: number;
  /** The OpenZiti dev network's directory, once started. */
  zitiDir?: string;
  /** Environment of the laptop's ralph commands (for `ralph remote disconnect`). */
  laptopEnv?: Record<string, string>;
  /** The remote whose OpenZiti proxy the laptop may have started. */
  zitiRemote?: string;
}

const stateFile = (dir: string) => join(dir, 'demo-state.json');

export function writeDemoState(dir: string, state: DemoState): void {
  writeFileSync(stateFile(dir), JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
}

function readDemoState(dir: string): DemoState | null {
  try {
    return JSON.parse(readFileSync(stateFile(dir), 'utf8')) as DemoState;
  } catch {
    return null;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
async function end(pid: number, graceMs: number): Promise<void> {
  if (!alive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (alive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {}
    while (alive(pid)) await new Promise((r) => setTimeout(r, 20));
  }
}

/** Runners of loops on the box that have not ended. */
function openRunners(boxHome: string): number[] {
  const path = join(boxHome, 'ralph.db');
  if (!existsSync(path)) return [];
  const db = openDb(path);
  try {
    return new LoopStore(db)
      .list()
      // Only a pid that is still that loop's runner: a reused one may be anybody's process.
      .filter((l) => !isFinal(l.status) && l.pid !== null && runnerAlive(l.pid, l.id))
      .map((l) => l.pid!);
  } finally {
    db.close();
  }
}

/** Ends everything the demo in `dir` started and removes `dir`. Returns what it did, one line each. */
export async function cleanUpDemo(dir: string): Promise<string[]> {
  const done: string[] = [];
  const state = readDemoState(dir);
  if (state) {
    const runners = openRunners(state.boxHome);
    for (const pid of runners) await end(pid, 3000);
    if (runners.length) done.push(`stopped ${runners.length} loop runner${runners.length === 1 ? '' : 's'}`);
    if (state.daemonPid && alive(state.daemonPid)) {
      await end(state.daemonPid, 10_000);
      done.push('stopped the daemon');
    }
    if (state.zitiRemote && state.laptopEnv) {
      const r = await execa(process.execPath, [join(state.root, 'dist', 'cli', 'ralph.js'), 'remote', 'disconnect', state.zitiRemote], {
        env: state.laptopEnv,
        extendEnv: false,
        reject: false,
        timeout: 20_000,
      });
      if (/^stopped/.test(r.stdout)) done.push("stopped the laptop's OpenZiti proxy");
    }
    if (state.zitiDir) {
      await execa('bash', [join(state.root, 'install', 'ziti-dev-network.sh'), 'stop', state.zitiDir], { reject: false, timeout: 30_000 });
      done.push('stopped the OpenZiti controller and edge router');
    }
  }
  rmSync(dir, { recursive: true, force: true });
  done.push(`removed ${dir}`);
  return done;
}

// The watchdog's entry point: `node dist/demo/cleanup.js DIR`.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1] && process.argv[2]) {
  await cleanUpDemo(process.argv[2]);
}
