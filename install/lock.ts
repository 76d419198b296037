// A lock that works across processes on one machine: a directory created with mkdir (atomic), with an
// `owner` file naming the holder's pid. A lock whose holder is gone (crashed, killed) is taken over.

import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { processAlive } from '../store/process.js';
import { INSTALL_LOCK_TIMEOUT_MS } from './limits.js';

export interface LockOptions {
  /** Give up waiting after this long (default INSTALL_LOCK_TIMEOUT_MS: an npm install can be slow). */
  timeoutMs?: number;
  /** Called once, when the lock is held by someone else and we start waiting. */
  onWait?: (holderPid: number | null) => void;
}

export class LockTimeoutError extends Error {
  constructor(path: string, timeoutMs: number) {
    super(`${path}: still held by another process after ${Math.round(timeoutMs / 1000)}s; if no ralph process holds it, remove it`);
    this.name = 'LockTimeoutError';
  }
}

interface Owner {
  pid: number;
  host: string;
  /** The holder's start time as the kernel counts it, so a reused pid is not mistaken for the holder. */
  start: string | null;
}

/** A freshly made lock dir without an owner file yet is given this long before it counts as stale. */
const OWNERLESS_GRACE_MS = 5_000;

function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime); the command name (field 2) may hold spaces, so count after its ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function readOwner(dir: string): Owner | null {
  try {
    const v = JSON.parse(readFileSync(join(dir, 'owner'), 'utf8')) as Owner;
    return typeof v.pid === 'number' ? v : null;
  } catch {
    return null;
  }
}

/** Is the lock at `dir` abandoned: its holder is dead, or it never got an owner and is old? */
function isStale(dir: string): boolean {
  const owner = readOwner(dir);
  if (!owner) {
    try {
      return Date.now() - statSync(dir).mtimeMs > OWNERLESS_GRACE_MS;
    } catch {
      return false; // gone already: the next mkdir will tell
    }
  }
  if (owner.host !== hostname()) return false; // cannot judge another machine's process
  if (!processAlive(owner.pid)) return true;
  const start = processStart(owner.pid);
  return owner.start !== null && start !== null && start !== owner.start;
}

/**
 * Removes a stale lock. Only one process at a time may do it (a `.break` dir, itself short-lived),
 * and it re-checks under that guard, so a waiter can never remove a lock someone has just taken.
 */
function breakStale(dir: string): void {
  const guard = `${dir}.break`;
  try {
    mkdirSync(guard, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    try {
      if (Date.now() - statSync(guard).mtimeMs > OWNERLESS_GRACE_MS) rmSync(guard, { recursive: true, force: true });
    } catch {
      /* gone already */
    }
    return;
  }
  try {
    if (isStale(dir)) rmSync(dir, { recursive: true, force: true });
  } finally {
    rmSync(guard, { recursive: true, force: true });
  }
}

function tryAcquire(dir: string): boolean {
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  }
  const owner: Owner = { pid: process.pid, host: hostname(), start: processStart(process.pid) };
  writeFileSync(join(dir, 'owner'), JSON.stringify(owner) + '\n');
  return true;
}

/**
 * Runs `fn` while holding the lock at `dir` (a path that must not exist otherwise), waiting for the
 * current holder when there is one. The lock is released when `fn` settles.
 */
export async function withLock<T>(dir: string, fn: () => Promise<T>, opts: LockOptions = {}): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? INSTALL_LOCK_TIMEOUT_MS;
  mkdirSync(dirname(dir), { recursive: true, mode: 0o700 });
  const deadline = Date.now() + timeoutMs;
  let delay = 20;
  let waited = false;
  while (!tryAcquire(dir)) {
    if (isStale(dir)) {
      breakStale(dir);
      continue;
    }
    if (!waited) {
      waited = true;
      opts.onWait?.(readOwner(dir)?.pid ?? null);
    }
    if (Date.now() > deadline) throw new LockTimeoutError(dir, timeoutMs);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 500);
  }
  try {
    return await fn();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
