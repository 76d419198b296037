// `l` in `ralph tui`: the loop's whole log in the user's pager. $PAGER split into a program and its
// arguments (no shell); the stored output (a local file, or a remote log page by page) piped into it.
// The terminal is lent to it by the caller (lend.ts).

import { spawn, type ChildProcess } from 'node:child_process';
import { Readable, pipeline } from 'node:stream';
import { storedOutputPages } from '../client/loop-access.js';
import type { LoopRow } from '../store/loops.js';

/** $PAGER split into a program and its arguments (no shell), else less showing colours from the end. */
export function pagerCommand(env: NodeJS.ProcessEnv): string[] {
  const words = (env.PAGER ?? '').trim().split(/\s+/).filter(Boolean);
  return words.length > 0 ? words : ['less', '-R', '+G'];
}

/**
 * Pipes the loop's stored output into the pager, a piece at a time (a remote log page by page);
 * resolves with a one-line problem, or null. A pager quit early stops the reading.
 */
export async function showInPager(row: LoopRow, argv: string[], started: (child: ChildProcess) => void): Promise<string | null> {
  const pages = storedOutputPages(row);
  // The first piece before the pager: a remote daemon that does not answer is said, and nothing opened.
  let first: IteratorResult<Buffer>;
  try {
    first = await pages.next();
  } catch (err) {
    return `cannot read the log of loop ${row.id}: ${(err as Error).message}`;
  }
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'inherit', 'inherit'] });
    started(child);
    child.on('error', (err) => resolve(`cannot run the pager ${JSON.stringify(argv[0])}: ${err.message} (set PAGER)`));
    child.on('close', () => resolve(null));
    async function* all(): AsyncGenerator<Buffer> {
      if (!first.done) yield first.value;
      yield* pages;
    }
    // The user quitting before the end closes the pipe (EPIPE): the reading stops there, nothing to say.
    pipeline(Readable.from(all()), child.stdin!, () => void pages.return(undefined));
  });
}
