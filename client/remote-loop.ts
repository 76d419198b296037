// Reaching a loop that runs on a remote box: dial its daemon, `hello {channel: loop}`, and hand back
// the stream positioned after the daemon's reply. From there it speaks loop/protocol.ts byte for byte,
// exactly as a local runner's unix socket does.

import type { Duplex } from 'node:stream';
import { PROTOCOL_VERSION } from '../daemon/protocol.js';
import { readConfig } from '../store/config.js';
import type { LoopRow } from '../store/loops.js';
import { dialDaemon, remoteForRow } from './daemon.js';

export interface RemoteDialOptions {
  timeoutMs?: number;
}

/**
 * Opens a byte stream that speaks the loop's own RPC (loop/protocol.ts), i.e. positioned after the
 * daemon handshake, so the caller wraps it in an RpcPeer exactly as it does a local unix socket.
 * Rejects with a one-line RemoteError naming the remote (unreachable, refused, timed out, unknown).
 */
export async function dialRemoteLoop(row: LoopRow, opts: RemoteDialOptions = {}): Promise<Duplex> {
  if (row.location !== 'remote' || row.remoteLoopId === null) {
    throw new Error(`loop ${row.id} is not a remote loop`);
  }
  const remote = remoteForRow(row, readConfig());
  const { stream } = await dialDaemon(
    remote,
    { version: PROTOCOL_VERSION, channel: 'loop', loop: row.remoteLoopId },
    opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs },
  );
  return stream;
}
