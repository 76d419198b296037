// `ralph extend`: more iterations for a loop that is still going, local or remote (the runner's
// `addIterations`, through the daemon's loop channel for a remote loop).

import { LoopMethods, type AddIterationsResult } from '../loop/protocol.js';
import type { LoopRow, LoopStore } from '../store/loops.js';
import { connectToLoop } from './connect.js';
import { endOf, freshRow } from './loop-access.js';

export class LoopEndedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LoopEndedError';
  }
}

/** Adds `n` iterations; resolves with the loop's new limit. Throws LoopEndedError for a loop that ended. */
export async function extendLoop(store: LoopStore, loop: LoopRow, n: number): Promise<number> {
  const row = await freshRow(store, loop);
  const end = endOf(row);
  if (end) throw new LoopEndedError(`loop ${row.id} has ended (${end.status}); ralph resume ${row.id} starts a new loop where it left off`);
  const peer = await connectToLoop(row);
  try {
    const { maxIterations } = await peer.request<AddIterationsResult>(LoopMethods.addIterations, { n });
    // A local runner writes its own row; a remote loop's local row learns it here.
    if (row.location === 'remote') store.update(row.id, { maxIterations });
    return maxIterations;
  } catch (err) {
    const now = await freshRow(store, row);
    const ended = endOf(now);
    if (ended) throw new LoopEndedError(`loop ${row.id} ended (${ended.status}) before it could be extended`);
    throw err;
  } finally {
    peer.close('done');
  }
}
