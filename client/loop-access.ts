// Everything a LoopFeed needs to know about one loop of the session DB: how to connect, how to tell
// that it ended while we could not reach it, and (local loops) where the rest of its output is.

import { Buffer } from 'node:buffer';
import { createReadStream } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { isFinal, type LoopRow, type LoopStore } from '../store/loops.js';
import { homePaths } from '../store/paths.js';
import { connectToLoop } from './connect.js';
import { settleIfRunnerGone } from './liveness.js';
import type { LoopEnd, LoopFeedOptions } from './loop-feed.js';
import { reconcileRow } from './reconcile.js';
import { readRemoteLog, readRemoteLogPages, readRemoteLogTail } from './remote-loop.js';

/** How long a remote daemon may take to say how a loop stands. */
const RECONCILE_TIMEOUT_MS = 3000;

export function logPathOf(row: LoopRow): string | null {
  if (row.location !== 'local') return null;
  return row.logPath ?? homePaths().logFor(row.id);
}

/** The bytes of a file from `offset` to its end (empty when it does not exist). */
export async function readFileFrom(path: string, offset: number): Promise<Buffer> {
  let file;
  try {
    file = await open(path, 'r');
  } catch {
    return Buffer.alloc(0);
  }
  try {
    const { size } = await file.stat();
    if (size <= offset) return Buffer.alloc(0);
    const buf = Buffer.alloc(size - offset);
    const { bytesRead } = await file.read(buf, 0, buf.length, offset);
    return buf.subarray(0, bytesRead);
  } finally {
    await file.close();
  }
}

export function endOf(row: LoopRow): LoopEnd | undefined {
  return isFinal(row.status) ? { status: row.status, reason: row.reason, iteration: row.iteration } : undefined;
}

/** The row as it stands now: a local one whose runner died is marked failed, a remote one reconciled. */
export async function freshRow(store: LoopStore, row: LoopRow): Promise<LoopRow> {
  const now = store.get(row.id) ?? row;
  if (now.location === 'local') return settleIfRunnerGone(store, now);
  return (await reconcileRow(store, now, { timeoutMs: RECONCILE_TIMEOUT_MS })).row;
}

/**
 * The loop's output from byte `fromSeq` to its end as stored, without its runner: a local loop's
 * log file, or the remote daemon's copy of it.
 */
export function readStoredOutput(row: LoopRow, fromSeq: number): Promise<Buffer> {
  const logPath = logPathOf(row);
  return logPath ? readFileFrom(logPath, fromSeq) : readRemoteLog(row, fromSeq);
}

/**
 * The loop's whole stored output, a piece at a time as it is read (a pager takes what it shows):
 * a local loop's log file, or the remote daemon's copy of it page by page. Stopping early lets go
 * of the file or the connection.
 */
export async function* storedOutputPages(row: LoopRow): AsyncGenerator<Buffer> {
  const logPath = logPathOf(row);
  if (logPath) yield* createReadStream(logPath) as AsyncIterable<Buffer>;
  else yield* readRemoteLogPages(row, 0);
}

/**
 * The last `maxBytes` (or fewer) of the loop's stored output and the offset they start at: a local
 * loop's log file, or the remote daemon's copy of it.
 */
export async function readStoredTail(row: LoopRow, maxBytes: number): Promise<{ seq: number; data: Buffer }> {
  const logPath = logPathOf(row);
  if (!logPath) return readRemoteLogTail(row, maxBytes);
  const size = await stat(logPath).then((s) => s.size, () => 0);
  const seq = Math.max(0, size - maxBytes);
  return { seq, data: await readFileFrom(logPath, seq) };
}

export function loopAccess(
  store: LoopStore,
  row: LoopRow,
): Pick<LoopFeedOptions, 'connect' | 'endedWhileAway' | 'readRest'> {
  return {
    connect: () => connectToLoop(row),
    endedWhileAway: async () => endOf(await freshRow(store, row)),
    // Filling a gap is best effort: an unreachable daemon leaves it unfilled rather than failing.
    readRest: (fromSeq: number) => readStoredOutput(row, fromSeq).catch(() => Buffer.alloc(0)),
  };
}
