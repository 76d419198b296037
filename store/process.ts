// Is a process still there? The one pid-liveness check for lock owners (worktrees/, install/), and
// under runnerAlive for runner rows (client status, the daemon's supervisor, doctor). Pure apart from
// the signal-0 probe and /proc.

import { existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';

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

/**
 * True while `pid` is loop `loopId`'s runner. After a reboot (or once pids wrap) a dead runner's pid
 * may name some other process, which kill(pid, 0) cannot tell from the runner: that loop would stay
 * `running` for good, holding a slot and its branch. So on Linux the process must also be node running
 * loop/main.js with this loop id (as launch.ts starts runners), or `ralph run --foreground` (the CLI
 * hosts that runner itself). Without /proc to ask, kill(pid, 0) is all there is.
 */
export function runnerAlive(pid: number, loopId: string): boolean {
  if (!processAlive(pid)) return false;
  const argv = commandLine(pid);
  if (argv === undefined) return true;
  return argv !== null && isRunnerCommand(argv, loopId);
}

/** Is this command line (argv, as /proc/<pid>/cmdline holds it) loop `loopId`'s runner? */
export function isRunnerCommand(argv: string[], loopId: string): boolean {
  if (!/node/i.test(basename(argv[0] ?? ''))) return false;
  // node [flags] <dist>/loop/main.js <loopId>: the first operand ending so is the script.
  const main = argv.findIndex((a, i) => i > 0 && /(^|\/)loop\/main\.js$/.test(a));
  if (main !== -1) return argv[main + 1] === loopId;
  return argv.includes('run') && argv.includes('--foreground');
}

/** The process's argv; null when it has gone; undefined when this system cannot say (no /proc, hidepid). */
function commandLine(pid: number): string[] | null | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return (raw.endsWith('\0') ? raw.slice(0, -1) : raw).split('\0');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT' && existsSync('/proc/self/cmdline') ? null : undefined;
  }
}
