// Bringing remote rows of the session DB up to date by asking each remote's daemon (`loop.list`),
// all remotes in parallel, each bounded by the timeout. An unreachable daemon changes nothing: its
// rows keep their last known state and the caller shows it as unreachable.
// `ralph status` imports this on every run: the network code is loaded only when there is a remote row.

import { isFinal, nowIso, type LoopRow, type LoopStore } from '../store/loops.js';

export type RemoteReachability = 'ok' | 'unreachable';

/** Why a remote row was closed by reconciliation: its daemon answered but knows no such loop. */
export const UNKNOWN_TO_DAEMON_REASON = 'the remote daemon no longer knows this loop';

/**
 * Reconciles every remote that has loops not yet final; returns how each remote answered.
 * `reasons`, when given, receives why each unreachable remote was (one line naming it).
 */
export async function reconcileRemoteRows(
  store: LoopStore,
  opts: { timeoutMs: number; reasons?: Map<string, string> },
): Promise<Map<string, RemoteReachability>> {
  const byRemote = new Map<string, LoopRow[]>();
  for (const row of store.listOpen()) {
    if (row.location !== 'remote' || row.remote === null || row.remoteLoopId === null) continue;
    byRemote.set(row.remote, [...(byRemote.get(row.remote) ?? []), row]);
  }
  const result = new Map<string, RemoteReachability>();
  if (byRemote.size === 0) return result;
  await Promise.all(
    [...byRemote].map(async ([remote, rows]) => {
      result.set(remote, await reconcileRemote(store, rows, opts.timeoutMs, (why) => opts.reasons?.set(remote, why)));
    }),
  );
  return result;
}

/**
 * Reconciles one row with its daemon (what `attach` does before it dials a remote loop).
 * Returns the row as it now stands and whether the daemon answered. Local and final rows are
 * returned as they are.
 */
export async function reconcileRow(
  store: LoopStore,
  row: LoopRow,
  opts: { timeoutMs: number },
): Promise<{ row: LoopRow; reachability: RemoteReachability | null }> {
  if (row.location !== 'remote' || row.remote === null || row.remoteLoopId === null || isFinal(row.status)) {
    return { row, reachability: null };
  }
  const reachability = await reconcileRemote(store, [row], opts.timeoutMs);
  return { row: store.get(row.id) ?? row, reachability };
}

/** Asks one daemon for its loops and applies the answer to `rows` (all of that remote). */
async function reconcileRemote(
  store: LoopStore,
  rows: LoopRow[],
  timeoutMs: number,
  unreachableBecause: (why: string) => void = () => {},
): Promise<RemoteReachability> {
  const [{ openControl, listLoops, remoteForRow }, { readConfig }, { applyDaemonLoop }] = await Promise.all([
    import('./daemon.js'),
    import('../store/config.js'),
    import('./record.js'),
  ]);
  const deadline = Date.now() + timeoutMs;
  let conn: Awaited<ReturnType<typeof openControl>> | undefined;
  let gaveUp = false;
  let timer: NodeJS.Timeout | undefined;
  // Belt and braces: whatever a transport does, this remote's answer is awaited no longer than timeoutMs.
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  try {
    const remote = remoteForRow(rows[0]!, readConfig());
    const ask = (async () => {
      const c = await openControl(remote, { timeoutMs });
      if (gaveUp) {
        // it connected after we stopped waiting: nobody will use it
        c.peer.close('gave up');
        throw new Error('gave up');
      }
      conn = c;
      return listLoops(conn, { timeoutMs: Math.max(1, deadline - Date.now()) });
    })();
    ask.catch(() => {}); // a late failure after the timeout has nobody to tell
    const answer = await Promise.race([ask, timedOut]);
    if (answer === 'timeout') {
      unreachableBecause(`remote ${remote.name} (${remote.address}): no answer within ${timeoutMs} ms (ralph status --timeout MS waits longer)`);
      return 'unreachable';
    }
    const seenAt = nowIso();
    const known = new Map(answer.map((l) => [l.loopId, l]));
    store.db.transaction(() => {
      for (const row of rows) {
        const loop = known.get(row.remoteLoopId!);
        if (loop) applyDaemonLoop(store, row.remote!, loop, seenAt);
        else store.finish(row.id, 'failed', UNKNOWN_TO_DAEMON_REASON, { lastSeenAt: seenAt });
      }
    }).immediate();
    return 'ok';
  } catch (err) {
    unreachableBecause((err as Error).message);
    return 'unreachable';
  } finally {
    gaveUp = true;
    clearTimeout(timer);
    conn?.peer.close('done');
  }
}
