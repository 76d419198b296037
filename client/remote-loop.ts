// Reaching a loop that runs on a remote box: dial its daemon, `hello {channel: loop}`, and hand back
// the stream positioned after the daemon's reply. From there it speaks loop/protocol.ts byte for byte,
// exactly as a local runner's unix socket does.

import type { Duplex } from 'node:stream';
import { ControlMethods, PROTOCOL_VERSION, type LoopLogsResult } from '../daemon/protocol.js';
import { readConfig } from '../store/config.js';
import type { LoopRow } from '../store/loops.js';
import { controlRequest, dialDaemon, openControl, remoteForRow, type ControlConnection } from './daemon.js';

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

/**
 * The output of a remote loop from byte `fromSeq` to its end, read from the daemon's copy of its log
 * (`loop.logs`, page by page) — for a loop whose runner is gone, where the loop channel has nothing
 * to replay. Same shape as a local loop's `readRest` (LoopFeed).
 */
export async function readRemoteLog(row: LoopRow, fromSeq: number, opts: RemoteDialOptions = {}): Promise<Buffer> {
  if (row.location !== 'remote' || row.remoteLoopId === null) {
    throw new Error(`loop ${row.id} is not a remote loop`);
  }
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const conn = await openControl(remoteForRow(row, readConfig()), { timeoutMs });
  try {
    return await readLogPages(conn, row.remoteLoopId, fromSeq, timeoutMs);
  } finally {
    conn.peer.close('done');
  }
}

/**
 * The last `maxBytes` (or fewer) of a remote loop's stored output, and the offset they start at:
 * one small `loop.logs` to learn the log's size, then the pages from there, on one connection.
 */
export async function readRemoteLogTail(row: LoopRow, maxBytes: number, opts: RemoteDialOptions = {}): Promise<{ seq: number; data: Buffer }> {
  if (row.location !== 'remote' || row.remoteLoopId === null) {
    throw new Error(`loop ${row.id} is not a remote loop`);
  }
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const conn = await openControl(remoteForRow(row, readConfig()), { timeoutMs });
  try {
    const probe = await controlRequest<LoopLogsResult>(conn, ControlMethods.loopLogs, { loopId: row.remoteLoopId, fromSeq: 0, maxBytes: 1 }, { timeoutMs });
    if (typeof probe?.endSeq !== 'number') throw new Error(`remote ${conn.remote.name}: malformed loop.logs answer for loop ${row.remoteLoopId}`);
    const seq = Math.max(0, probe.endSeq - maxBytes);
    return { seq, data: await readLogPages(conn, row.remoteLoopId, seq, timeoutMs) };
  } finally {
    conn.peer.close('done');
  }
}

/**
 * A remote loop's stored output from byte `fromSeq`, one `loop.logs` page at a time, as it is read
 * (for a pager: nothing held but the page in hand). Stopping early closes the connection.
 */
export async function* readRemoteLogPages(row: LoopRow, fromSeq: number, opts: RemoteDialOptions = {}): AsyncGenerator<Buffer> {
  if (row.location !== 'remote' || row.remoteLoopId === null) {
    throw new Error(`loop ${row.id} is not a remote loop`);
  }
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const conn = await openControl(remoteForRow(row, readConfig()), { timeoutMs });
  try {
    yield* logPages(conn, row.remoteLoopId, fromSeq, timeoutMs);
  } finally {
    conn.peer.close('done');
  }
}

/** `loop.logs` page by page from `fromSeq` to the end of the log as the daemon sees it. */
async function* logPages(conn: ControlConnection, loopId: string, fromSeq: number, timeoutMs: number): AsyncGenerator<Buffer> {
  let seq = fromSeq;
  for (;;) {
    const r = await controlRequest<LoopLogsResult>(conn, ControlMethods.loopLogs, { loopId, fromSeq: seq }, { timeoutMs });
    if (typeof r?.data !== 'string' || typeof r.endSeq !== 'number' || typeof r.seq !== 'number') {
      throw new Error(`remote ${conn.remote.name}: malformed loop.logs answer for loop ${loopId}`);
    }
    const bytes = Buffer.from(r.data, 'utf8');
    if (bytes.length > 0) yield bytes;
    seq = r.seq + bytes.length;
    if (bytes.length === 0 || seq >= r.endSeq) break;
  }
}

async function readLogPages(conn: ControlConnection, loopId: string, fromSeq: number, timeoutMs: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const bytes of logPages(conn, loopId, fromSeq, timeoutMs)) chunks.push(bytes);
  return Buffer.concat(chunks);
}
