// Noticing local loops whose runner died without writing its final status (SIGKILL, OOM, reboot).
// Kept cheap on purpose: one kill(pid, 0) and one /proc read per open local row, no socket probes,
// so `ralph status` stays fast however many loops are open.

import { isFinal, type LoopRow, type LoopStore } from '../store/loops.js';
import { runnerAlive, RUNNER_GONE_REASON } from '../store/process.js';

export { RUNNER_GONE_REASON };
export const RUNNER_NEVER_STARTED_REASON = 'runner never started';

/** A row still `starting` with no runner pid after this long was left by a `ralph run` that died. */
const NEVER_STARTED_AFTER_MS = 2 * 60_000;

/** Why this local, non-final row has no runner any more; undefined while it may still be running. */
export function whyRunnerGone(row: LoopRow, now = Date.now()): string | undefined {
  if (row.location !== 'local' || isFinal(row.status)) return undefined;
  if (row.pid !== null) return runnerAlive(row.pid, row.id) ? undefined : RUNNER_GONE_REASON;
  // A daemon's start (it has a repo) may install the agent for many minutes before any runner
  // exists; the daemon fails it if it fails, or when it next starts if it died meanwhile.
  if (row.repo !== null) return undefined;
  const since = Date.parse(row.updatedAt);
  return now - since > NEVER_STARTED_AFTER_MS ? RUNNER_NEVER_STARTED_REASON : undefined;
}

/**
 * Marks the row failed if its runner is gone (unless the runner got to finish it first) and returns
 * the row as it now stands in the DB.
 */
export function settleIfRunnerGone(store: LoopStore, row: LoopRow): LoopRow {
  const why = whyRunnerGone(row);
  if (why === undefined) return row;
  store.finish(row.id, 'failed', why);
  return store.get(row.id) ?? row;
}

/** Settles every open local row; returns the ids it marked failed. */
export function settleDeadRunners(store: LoopStore): string[] {
  const marked: string[] = [];
  for (const row of store.listOpen()) {
    if (row.location !== 'local') continue;
    const why = whyRunnerGone(row);
    if (why !== undefined && store.finish(row.id, 'failed', why)) marked.push(row.id);
  }
  return marked;
}
