// A loop's output for `ralph logs`: a local loop's log file is complete (seq == byte offset), so it
// is printed as it is and, with follow, continued from its size through the runner's `subscribe`.
// A remote loop's output comes from its runner alone.

import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { once } from 'node:events';
import type { LoopRow, LoopStore } from '../store/loops.js';
import { endOf, freshRow, logPathOf, loopAccess } from './loop-access.js';
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
 * Prints the loop's output to `out`. Without follow: what there is now. With follow: then the
 * rest as it comes, until the loop ends; resolves with how it ended (undefined without follow).
 */
export async function printLoopOutput(
  store: LoopStore,
  row: LoopRow,
  opts: { follow: boolean; out: NodeJS.WritableStream },
): Promise<LoopEnd | undefined> {
  const logPath = logPathOf(row);
  let fromSeq = 0;
  if (logPath) {
    fromSeq = await fileSize(logPath);
    await copyRange(logPath, 0, fromSeq, opts.out);
    if (!opts.follow) return undefined;
    const ended = endOf(await freshRow(store, row));
    if (ended) {
      // Its runner is gone; whatever it wrote after we measured the file is still to print.
      await copyRange(logPath, fromSeq, await fileSize(logPath), opts.out);
      return ended;
    }
  }
  // Follow through the runner (local: from the end of the file; remote: from the beginning).
  let caughtUp: (() => void) | undefined;
  const upToNow = new Promise<void>((resolve) => (caughtUp = resolve));
  let endSeq = Number.MAX_SAFE_INTEGER;
  const feed: LoopFeed = new LoopFeed({
    ...loopAccess(store, row),
    fromSeq,
    onOutput: (data, seq) => {
      if (!opts.out.write(data)) {
        feed.pause();
        opts.out.once('drain', () => feed.resume());
      }
      if (seq + Buffer.byteLength(data) >= endSeq) caughtUp?.();
    },
    onSubscribed: (result) => {
      if (!opts.follow && result.endSeq <= (feed.nextSeq ?? 0)) caughtUp?.();
      endSeq = result.endSeq;
    },
  });
  await feed.start();
  if (opts.follow) return feed.ended;
  await Promise.race([upToNow, feed.ended]);
  feed.close();
  return undefined;
}
