// Completion events from a connected daemon: while a client is connected anyway (attach, logs -f),
// it also listens on the daemon's control channel and writes loop.completed / failed / stopped into
// the local session DB at once, so the row is final without waiting for the next `ralph status`.

import { ControlEvents, ControlMethods, type DaemonLoop } from '../daemon/protocol.js';
import type { RemoteConfig } from '../store/config.js';
import { readConfig } from '../store/config.js';
import type { LoopRow, LoopStore } from '../store/loops.js';
import { checkDaemonLoop, controlRequest, openControl, remoteForRow } from './daemon.js';
import { applyDaemonLoop } from './record.js';

export type DaemonEventName = (typeof ControlEvents)[keyof typeof ControlEvents];

export interface CompletionWatch {
  /** Stops listening (closes the control connection). */
  close(): void;
  /** Resolves when the control connection ends, with why. */
  readonly closed: Promise<string>;
}

export interface WatchOptions {
  timeoutMs?: number;
  /** Called after each event was applied, with the local row as it now stands (if we have one). */
  onEvent?: (event: DaemonEventName, loop: DaemonLoop, row: LoopRow | undefined) => void;
}

/**
 * Subscribes to a remote daemon's loop events and applies each to the local DB. Resolves once the
 * subscription is in place; rejects (one line naming the remote) when the daemon cannot be reached.
 */
export async function watchRemoteCompletions(store: LoopStore, remote: RemoteConfig, opts: WatchOptions = {}): Promise<CompletionWatch> {
  const conn = await openControl(remote, opts);
  const on = (event: DaemonEventName) => (params: unknown) => {
    let loop: DaemonLoop;
    try {
      loop = checkDaemonLoop(params, remote);
    } catch {
      return; // a malformed event changes nothing
    }
    const row = applyDaemonLoop(store, remote.name, loop);
    opts.onEvent?.(event, loop, row);
  };
  for (const event of Object.values(ControlEvents)) conn.peer.onNotification(event, on(event));
  try {
    await controlRequest(conn, ControlMethods.subscribe, {}, opts);
  } catch (err) {
    conn.peer.close('subscribe failed');
    throw err;
  }
  return { close: () => conn.peer.close('done'), closed: conn.peer.whenClosed() };
}

/**
 * The same for the daemon a remote row runs on; null for a local row (its runner writes the DB itself).
 */
export async function watchCompletionsForRow(store: LoopStore, row: LoopRow, opts: WatchOptions = {}): Promise<CompletionWatch | null> {
  if (row.location !== 'remote') return null;
  return watchRemoteCompletions(store, remoteForRow(row, readConfig()), opts);
}
