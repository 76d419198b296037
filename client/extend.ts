// Giving a running loop more iterations (`addIterations` on its RPC, local or through its daemon).

import { LoopMethods, type AddIterationsResult } from '../loop/protocol.js';
import type { LoopRow, LoopStore } from '../store/loops.js';
import { connectToLoop } from './connect.js';
import { describeEnd } from './describe.js';
import { endOf, freshRow } from './loop-access.js';

export class LoopEndedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LoopEndedError';
  }
}

/** Adds `n` iterations to the loop's limit; resolves with the new limit. A loop that has ended is refused. */
export async function extendLoop(store: LoopStore, loop: LoopRow, n: number): Promise<AddIterationsResult> {
  const row = await freshRow(store, loop);
  const ended = endOf(row);
  if (ended) throw new LoopEndedError(`cannot extend: ${describeEnd(row.id, ended)}`);
  const peer = await connectToLoop(row);
  try {
    const result = await peer.request<AddIterationsResult>(LoopMethods.addIterations, { n });
    // A local runner writes its own row; a remote row learns the new limit from its daemon.
    if (row.location === 'remote') await freshRow(store, row);
    return result;
  } finally {
    peer.close('done');
  }
}
