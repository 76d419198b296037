// Starts a loop runner as its own detached process (own session, output to its runner.log) and
// resolves once it says it is ready, so the caller (the CLI, the daemon) may exit and the loop lives on.

import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { openDb } from '../store/db.js';
import { LoopStore } from '../store/loops.js';
import { ensurePrivateDir, type HomePaths } from '../store/paths.js';
import { LoopSetupError } from './errors.js';

const RUNNER_MAIN = join(dirname(fileURLToPath(import.meta.url)), 'main.js');
const READY_FD = 3;
/**
 * Node flags of every runner. A flood grows V8's young generation (up to 16 MiB a semi-space by
 * default), and an idle process never gives it back: with 2 MiB a runner idles at ~29 MB private
 * memory after a 32 MB flood instead of ~43 MB, for a few more scavenges during the flood (measured:
 * 11 → ~20 per 32 MB, about 1% of the runner's CPU).
 */
const RUNNER_NODE_FLAGS = ['--max-semi-space-size=2'];
const READY_TIMEOUT_MS = 30_000;

export function runnerLogPath(paths: HomePaths, loopId: string): string {
  return join(paths.logs, `${loopId}.runner.log`);
}

/** The last few telling lines of a runner log: stack frames and node's version banner left out. */
function lastLines(path: string, n: number): string {
  try {
    return readFileSync(path, 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('at ') && !l.startsWith('Node.js v') && l !== '^')
      .slice(-n)
      .join(' | ');
  } catch {
    return '';
  }
}

/**
 * Marks a loop failed when its runner never came up — only while it is still `starting`: a runner
 * that refused because the loop already runs elsewhere must not end that loop.
 */
function recordFailure(paths: HomePaths, loopId: string, reason: string): void {
  const db = openDb(paths.db);
  try {
    const store = new LoopStore(db);
    if (store.get(loopId)?.status === 'starting') store.finish(loopId, 'failed', reason);
  } finally {
    db.close();
  }
}

/**
 * Spawns the runner of a prepared loop (status `starting`) and resolves with its pid once its
 * socket listens. Rejects with a one-line LoopSetupError (and the row finished as failed) when it
 * cannot start.
 */
export function launchRunner(paths: HomePaths, loopId: string, opts: { env?: NodeJS.ProcessEnv } = {}): Promise<{ pid: number }> {
  ensurePrivateDir(paths.logs);
  const logPath = runnerLogPath(paths, loopId);
  const logFd = openSync(logPath, 'a', 0o600);
  let child;
  try {
    // RALPH_RUNNER_NODE_ARGS: extra node flags for the runner (profiling: "--cpu-prof --cpu-prof-dir=/tmp/p").
    const nodeArgs = (process.env.RALPH_RUNNER_NODE_ARGS ?? '').split(' ').filter(Boolean);
    child = spawn(process.execPath, [...RUNNER_NODE_FLAGS, ...nodeArgs, RUNNER_MAIN, loopId], {
      detached: true,
      cwd: paths.home,
      stdio: ['ignore', logFd, logFd, 'pipe'],
      env: { ...(opts.env ?? process.env), RALPH_HOME: paths.home, RALPH_READY_FD: String(READY_FD) },
    });
  } finally {
    closeSync(logFd);
  }
  const readyPipe = child.stdio[READY_FD] as Readable;
  return new Promise((resolve, reject) => {
    let text = '';
    let settled = false;
    const settle = (err: Error | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      readyPipe.destroy();
      child.removeListener('exit', onExit);
      if (err) {
        reject(err);
      } else {
        // From here on the runner is on its own: nothing of ours keeps this process alive for it.
        child.unref();
        resolve({ pid: child.pid! });
      }
    };
    const fail = (reason: string) => {
      recordFailure(paths, loopId, reason);
      settle(new LoopSetupError(`loop ${loopId}: ${reason}`));
    };
    readyPipe.setEncoding('utf8');
    readyPipe.on('data', (d: string) => {
      text += d;
      const nl = text.indexOf('\n');
      if (nl === -1) return;
      const line = text.slice(0, nl);
      if (line === 'ready') settle(null);
      else fail(line.startsWith('error ') ? line.slice('error '.length) : `unexpected word from the runner: ${line}`);
    });
    readyPipe.on('error', () => {});
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
      const tail = lastLines(logPath, 3);
      fail(`the runner exited before it was ready (${signal ?? `exit code ${code}`})${tail ? `: ${tail}` : ''}; see ${logPath}`);
    };
    child.once('exit', onExit);
    child.once('error', (err) => fail(`cannot start the runner: ${err.message}`));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(`the runner did not get ready within ${READY_TIMEOUT_MS / 1000} s; see ${logPath}`);
    }, READY_TIMEOUT_MS);
  });
}
