// A loop's output for `ralph logs`: the stored log (a local loop's file, a remote daemon's copy) is
// complete (seq == byte offset), so it is printed as it is and, with follow, continued from its size
// through the runner's `subscribe`.

import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { PlainLines } from '../loop/escapes.js';
import type { LoopRow, LoopStore } from '../store/loops.js';
import { endOf, freshRow, logPathOf, loopAccess, readStoredOutput } from './loop-access.js';
import { LoopFeed, type LoopEnd } from './loop-feed.js';

async function fileSize(path: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch {
    return 0;
  }
}

/** Copies bytes [start, end) of a file to `out`, honouring its backpressure. */
async function copyRange(path: string, start: number, end: number, out: NodeJS.WritableStream): Promise<void> {
  if (end <= start) return;
  const input = createReadStream(path, { start, end: end - 1 });
  for await (const chunk of input) {
    if (!out.write(chunk as Buffer)) await once(out, 'drain');
  }
}

/**
 * `out` as plain text: what is written to the result goes to `out` without terminal escape sequences,
 * a line at a time (see PlainLines); `end()` writes an unfinished last line.
 */
export function plainTextTo(out: NodeJS.WritableStream): NodeJS.WritableStream & { end(): void } {
  const lines = new PlainLines();
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      const text = lines.push(chunk);
      if (text.length === 0 || out.write(text)) done();
      else out.once('drain', () => done());
    },
    final(done) {
      const rest = lines.end();
      if (rest.length > 0) out.write(Buffer.concat([rest, Buffer.from('\n')]));
      done();
    },
  });
  return sink;
}

/**
 * Prints the loop's output to `out`. Without follow: what is stored now. With follow: then the
 * rest as it comes, until the loop ends; resolves with how it ended (undefined without follow).
 */
export async function printLoopOutput(
  store: LoopStore,
  row: LoopRow,
  opts: { follow: boolean; out: NodeJS.WritableStream },
): Promise<LoopEnd | undefined> {
  const logPath = logPathOf(row);
  let fromSeq: number;
  if (logPath) {
    fromSeq = await fileSize(logPath);
    await copyRange(logPath, 0, fromSeq, opts.out);
  } else {
    const stored = await readStoredOutput(row, 0);
    fromSeq = stored.length;
    if (!opts.out.write(stored)) await once(opts.out, 'drain');
  }
  if (!opts.follow) return undefined;
  const ended = endOf(await freshRow(store, row));
  if (ended) {
    // Its runner is gone; whatever it wrote after we began is still to print.
    const rest = await readStoredOutput(row, fromSeq);
    if (!opts.out.write(rest)) await once(opts.out, 'drain');
    return ended;
  }
  // Follow through the runner, from where the stored output ended.
  const feed: LoopFeed = new LoopFeed({
    ...loopAccess(store, row),
    fromSeq,
    onOutput: (data) => {
      if (!opts.out.write(data)) feed.holdUntilDrained(opts.out);
    },
  });
  await feed.start();
  return feed.ended;
}
