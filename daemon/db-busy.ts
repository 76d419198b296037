// The daemon's session DB under another writer's lock. better-sqlite3 waits for a lock synchronously,
// so every client of the daemon waits with it: the daemon opens the DB with a short busy timeout and
// a request that still finds it locked is answered with one line, while the daemon serves everyone else.

import { ErrorCodes, RpcError } from '../rpc/messages.js';
import type { RequestHandler } from '../rpc/peer.js';
import { sqliteCode } from '../store/db-fault.js';

/** How long one daemon statement waits for another process's write lock (the CLIs' default is 30 s). */
export const DAEMON_BUSY_TIMEOUT_MS = 1_500;

/** A daemon write a locked DB refused (a loop's end, a failed start's record) is tried again this much later. */
export const BUSY_RETRY_MS = 1000;

/** What a locked DB is, in the user's terms; DB_BUSY_MESSAGE adds what to do. */
export const DB_BUSY = 'the session DB is busy (locked by another process)';
export const DB_BUSY_MESSAGE = `${DB_BUSY}; try again`;

/** SQLITE_BUSY / SQLITE_LOCKED: another process holds the DB's write lock. */
export function isDbBusy(err: unknown): boolean {
  return /^SQLITE_(BUSY|LOCKED)/.test(sqliteCode(err) ?? '');
}

/** `err` as the error a client should get: a locked DB becomes a Busy error in the user's terms. */
export function busyAsRpcError(err: unknown): unknown {
  return isDbBusy(err) ? new RpcError(ErrorCodes.Busy, DB_BUSY_MESSAGE) : err;
}

/** The handler, with a locked DB answered as DB_BUSY_MESSAGE; a synchronous answer stays synchronous. */
export function answeringDbBusy(handler: RequestHandler): RequestHandler {
  return (params, peer) => {
    let result: unknown;
    try {
      result = handler(params, peer);
    } catch (err) {
      throw busyAsRpcError(err);
    }
    return result instanceof Promise ? result.catch((err: unknown) => Promise.reject(busyAsRpcError(err))) : result;
  };
}
