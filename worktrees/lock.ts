// Per-repo serialization of worktree add/remove/prune: an in-process queue (one daemon, many pushes)
// plus a lock file under $RALPH_HOME/locks (the daemon and `ralph prune` are separate processes), so
// two of them never race on git's own index.lock / worktree lock files.

import { closeSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { ensurePrivateDir, type HomePaths } from '../store/paths.js';
import { processAlive } from '../store/process.js';

const queues = new Map<string, Promise<unknown>>();

/** A lock file older than this whose owner cannot be checked is taken as abandoned. */
const STALE_MS = 10 * 60_000;

function lockPath(paths: HomePaths, repo: string): string {
  // Repo names hold at most one '/', and never '+': "team/app" → "repo-team+app.lock".
  return join(paths.locks, `repo-${repo.replace('/', '+')}.lock`);
}

/** Tries once to create the lock file; removes an abandoned one. */
function tryAcquire(path: string): boolean {
  try {
    const fd = openSync(path, 'wx', 0o600);
    writeSync(fd, `${process.pid}\n`);
    closeSync(fd);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  let owner: number;
  let age: number;
  try {
    owner = Number(readFileSync(path, 'utf8').trim());
    age = Date.now() - statSync(path).mtimeMs;
  } catch {
    return false; // released meanwhile: try again on the next round
  }
  // An empty file is a lock being written this instant, unless it has been empty for long.
  const abandoned = owner ? !processAlive(owner) : age > 5_000;
  if (abandoned || age > STALE_MS) {
    try {
      if (Number(readFileSync(path, 'utf8').trim()) === owner) unlinkSync(path);
    } catch {
      /* someone else cleaned it up */
    }
  }
  return false;
}

async function acquireFile(path: string, repo: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let wait = 10;
  while (!tryAcquire(path)) {
    if (Date.now() > deadline) {
      let owner = '?';
      try {
        owner = readFileSync(path, 'utf8').trim();
      } catch {}
      throw new Error(`repo ${repo} is busy: ${path} is held by process ${owner}; try again, or remove the file if that process is gone`);
    }
    await new Promise((r) => setTimeout(r, wait));
    wait = Math.min(wait * 2, 200);
  }
}

/** Runs `fn` while holding the repo's lock: one at a time per repo, across processes. */
export function withRepoLock<T>(paths: HomePaths, repo: string, fn: () => Promise<T>, opts: { timeoutMs?: number } = {}): Promise<T> {
  const path = lockPath(paths, repo);
  const key = path;
  const prev = queues.get(key) ?? Promise.resolve();
  const run = prev.then(async () => {
    ensurePrivateDir(paths.locks);
    await acquireFile(path, repo, opts.timeoutMs ?? 120_000);
    try {
      return await fn();
    } finally {
      try {
        unlinkSync(path);
      } catch {}
    }
  });
  const tail = run.catch(() => {});
  queues.set(key, tail);
  void tail.then(() => {
    if (queues.get(key) === tail) queues.delete(key);
  });
  return run;
}
