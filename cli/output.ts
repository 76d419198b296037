// How the CLI reports errors: one line on stderr, no stack trace, non-zero exit.

import { closeSync } from 'node:fs';
import { isatty } from 'node:tty';
import { DbFaultError, dbFaultMessage, isDbFault } from '../store/db-fault.js';
import { homePaths } from '../store/paths.js';

export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'UserError';
  }
}

export function errorMessage(err: unknown): string {
  // SQLite's own words ("database disk image is malformed") name no file and no remedy.
  if (isDbFault(err) && !(err instanceof DbFaultError)) return dbFaultMessage(homePaths().db, err);
  if (err instanceof Error) return err.message;
  return String(err);
}

export function fail(err: unknown, exitCode?: number): never {
  const code = exitCode ?? (err instanceof UserError ? err.exitCode : 1);
  process.stderr.write(`ralph: ${errorMessage(err)}\n`);
  if (process.env.RALPH_DEBUG && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
  process.exit(code);
}

/**
 * What a command does when its own output fails for good (EIO after a hang-up, a full disk): by
 * default one line where it can still go and exit 1. A command that owns the terminal (attach, tui)
 * sets endAsOnHangUp instead. A closed pipe on stdout (`ralph status | head`) always ends quietly, 0.
 */
let outputLost: (err: NodeJS.ErrnoException, stream: 'stdout' | 'stderr') => void = (err, stream) => {
  if (stream === 'stderr') return; // nowhere left to say anything; the exit code still tells
  try {
    process.stderr.write(`ralph: cannot write the output: ${err.message}\n`);
  } catch {
    /* stderr is gone too */
  }
  process.exit(1);
};

let closedPipeEndsQuietly = true;

/**
 * `closedPipe`: a closed pipe on stdout goes to `handler` too, for a command that must not just
 * vanish when its reader does (`ralph run --foreground | head` hosts a loop).
 */
export function whenOutputLost(handler: typeof outputLost, opts: { closedPipe?: boolean } = {}): void {
  outputLost = handler;
  closedPipeEndsQuietly = !opts.closedPipe;
}

/** The one 'error' listener of process.stdout and process.stderr (set in ralph.ts). */
export function outputError(stream: 'stdout' | 'stderr', err: NodeJS.ErrnoException): void {
  if (stream === 'stdout' && err.code === 'EPIPE' && closedPipeEndsQuietly) process.exit(0);
  outputLost(err, stream);
}

let hungUp = false;
/** The terminal is gone: end the way SIGHUP ends this command (its SIGHUP listener runs), once. */
export function endAsOnHangUp(): void {
  if (hungUp) return;
  hungUp = true;
  if (process.listenerCount('SIGHUP') > 0) process.emit('SIGHUP', 'SIGHUP');
  else process.exit(129);
}

/**
 * Node 20 (fixed upstream by nodejs/node#58200, not in 20.x) restores each standard stream
 * that was a terminal when it exits, and aborts with an assertion and a native stack trace when
 * tcsetattr fails with EIO: the terminal hung up (an SSH session closed under `ralph tui` or
 * `attach`). A terminal that has hung up answers isatty() false; such a descriptor is closed as the
 * process exits, which Node's restore skips. A live terminal is left to Node, raw mode undone as usual.
 */
export function skipRestoreOfHungUpTerminal(): void {
  const wasTerminal = [0, 1, 2].filter((fd) => isatty(fd));
  if (wasTerminal.length === 0) return;
  process.once('exit', () => {
    for (const fd of wasTerminal) {
      if (isatty(fd)) continue;
      try {
        closeSync(fd);
      } catch {
        /* already closed */
      }
    }
  });
}
