// `ralph resume`: a loop that ended failed or stopped goes on as a new loop on the same task — same
// directory, agent and settings, linked to the old row (`resumed_from`). The rule of what may be
// resumed is shared with the daemon, which resumes its loops from their branch ralph/<id>.

import { isFinal, type LoopRow, type LoopStore } from '../store/loops.js';
import type { HomePaths } from '../store/paths.js';
import type { AgentName } from '../agents/registry.js';
import { MAX_ITERATIONS } from '../store/iteration-limit.js';
import { alreadyResumedMessage, prepareLoop, LoopSetupError } from './prepare.js';

/**
 * Why `row` cannot be resumed (one line), or null when it can. With `store`, a loop another loop
 * already goes on from is refused too (prepareLoop checks that again as it inserts the new row).
 */
export function resumeRefusal(row: LoopRow, store?: LoopStore): string | null {
  if (!isFinal(row.status)) {
    return `loop ${row.id} is still ${row.status}: nothing to resume (ralph extend ${row.id} N gives it more iterations)`;
  }
  if (row.status === 'completed') return `loop ${row.id} completed: every story passed; start a new loop for new work`;
  const by = store?.resumedBy(row.id);
  if (by) return alreadyResumedMessage(row.id, by);
  return null;
}

/** Prepares the new loop of a local one (its row, status `starting`); the caller launches its runner. */
export function prepareResumedLoop(
  store: LoopStore,
  paths: HomePaths,
  row: LoopRow,
  opts: { maxIterations?: number; agentSearchDirs?: string[] },
): LoopRow {
  const refusal = resumeRefusal(row, store);
  if (refusal) throw new LoopSetupError(refusal);
  return prepareLoop(store, paths, {
    dir: row.workDir,
    ...(row.taskDir !== null ? { task: row.taskDir } : {}),
    ...(row.agentCmd !== null ? { agentCmd: row.agentCmd } : { agent: row.agent as AgentName }),
    // A loop extended before extends were bounded may hold more than a new loop may have.
    maxIterations: opts.maxIterations ?? Math.min(row.maxIterations, MAX_ITERATIONS),
    ...(row.iterationTimeoutMs !== null ? { iterationTimeoutMs: row.iterationTimeoutMs } : {}),
    ...(row.stallTimeoutMs !== null ? { stallTimeoutMs: row.stallTimeoutMs } : {}),
    ...(row.fallbackAgent !== null ? { fallbackAgent: row.fallbackAgent as AgentName } : {}),
    ...(opts.agentSearchDirs ? { agentSearchDirs: opts.agentSearchDirs } : {}),
    row: { resumedFrom: row.id },
  });
}
