// Is a process still there? The one pid-liveness check for runner rows (client status, the daemon's
// supervisor) and lock owners (worktrees/, install/). Pure apart from the signal-0 probe and /proc.

import { readFileSync } from 'node:fs';

/** The final reason of a loop whose runner vanished without writing its own end (SIGKILL, OOM, reboot). */
export const RUNNER_GONE_REASON = 'runner exited unexpectedly';

/**
 * True while a process with this pid exists: kill(pid, 0) succeeds, or fails with EPERM (it exists
 * but belongs to someone else). A pid that is not a positive integer names no single process
 * (0 and negatives address process groups), so it is never alive.
 */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  return !isZombie(pid);
}

/**
 * A process that has exited but not been reaped yet still answers kill(pid, 0). A killed runner is
 * reparented to init, which may take its time (or, in some containers, never reap it): it runs no
 * more code all the same. Linux only; elsewhere nothing is a zombie.
 */
function isZombie(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.charAt(stat.lastIndexOf(')') + 2) === 'Z';
  } catch {
    return false;
  }
}
