// How the CLI reports errors: one line on stderr, no stack trace, non-zero exit.

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
