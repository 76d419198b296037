// Stopping a loop: now (wait until the runner says it has stopped) or after its current iteration.

import { LoopMethods, type StateEvent } from '../loop/protocol.js';
import type { LoopRow, LoopStore } from '../store/loops.js';
import { connectToLoop } from './connect.js';
import { endOf, freshRow, loopAccess } from './loop-access.js';
import { LoopFeed, type LoopEnd } from './loop-feed.js';

export type StopOutcome =
  | { kind: 'already-ended'; end: LoopEnd }
  | { kind: 'stopped'; end: LoopEnd }
  | { kind: 'will-stop-after-iteration'; iteration: number }
  | { kind: 'still-stopping' };

export async function stopLoop(
  store: LoopStore,
  loop: LoopRow,
  opts: { when: 'now' | 'after-iteration'; waitMs?: number },
): Promise<StopOutcome> {
  const row = await freshRow(store, loop);
  const endedAlready = endOf(row);
  if (endedAlready) return { kind: 'already-ended', end: endedAlready };

  if (opts.when === 'after-iteration') {
    const peer = await connectToLoop(row);
    try {
      const state = await peer.request<StateEvent>(LoopMethods.stop, { when: 'after-iteration' });
      return { kind: 'will-stop-after-iteration', iteration: state.iteration };
    } finally {
      peer.close('done');
    }
  }

  // Stop now, and follow the loop (without its output) until it reports the end.
  let asked = false;
  const feed = new LoopFeed({
    ...loopAccess(store, row),
    replay: 'none',
    onOutput: () => {},
    onSubscribed: async (_result, peer) => {
      if (asked) return;
      asked = true;
      await peer.request(LoopMethods.stop, { when: 'now' });
    },
  });
  await feed.start();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), opts.waitMs ?? 15_000)));
  const end = await Promise.race([feed.ended, timedOut]);
  clearTimeout(timer);
  feed.close();
  // A remote loop's end reached us over its loop channel; the local row learns it from the daemon.
  if (row.location === 'remote') await freshRow(store, row);
  if (end === 'timeout') return { kind: 'still-stopping' };
  return asked ? { kind: 'stopped', end } : { kind: 'already-ended', end };
}
