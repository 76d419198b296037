// The laptop side's way to a loop's RPC: local rows dial the runner's unix socket, remote rows go
// through the remote's daemon. Either way the caller gets an RpcPeer speaking loop/protocol.ts.

import type { Duplex } from 'node:stream';
import { RpcPeer } from '../rpc/peer.js';
import type { LoopRow } from '../store/loops.js';
import { homePaths } from '../store/paths.js';
import { dial } from '../transport/index.js';
import { dialRemoteLoop } from './remote-loop.js';

export interface ConnectOptions {
  timeoutMs?: number;
}

/** The loop's runner cannot be reached right now (not listening, refused, timed out). */
export class LoopUnreachableError extends Error {
  constructor(
    readonly loopId: string,
    why: string,
  ) {
    super(`loop ${loopId} is not answering (${why})`);
    this.name = 'LoopUnreachableError';
  }
}

export function socketPathOf(row: LoopRow): string {
  return row.socketPath ?? homePaths().socketFor(row.id);
}

export async function connectToLoop(row: LoopRow, opts: ConnectOptions = {}): Promise<RpcPeer> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  let stream: Duplex;
  if (row.location === 'remote') {
    stream = await dialRemoteLoop(row, { timeoutMs });
  } else {
    try {
      stream = await dial({ kind: 'unix', path: socketPathOf(row) }, { timeoutMs });
    } catch (err) {
      throw new LoopUnreachableError(row.id, (err as Error).message);
    }
  }
  return new RpcPeer(stream);
}
