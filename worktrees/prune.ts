// `ralph prune`: removes the worktrees of finished loops on this box. A loop that is starting or
// running is never touched. Branches `ralph/<id>` stay, so `git fetch` still brings the agent's work,
// except the branch of a loop whose runner never ran (a failed start, or one its daemon died in):
// nothing was done on it, and nothing else would ever remove it.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { isFinal, type LoopRow, type LoopStore } from '../store/loops.js';
import type { HomePaths } from '../store/paths.js';
import { removeLoopWorktree, removeUnusedLoopBranch } from './worktree.js';

export interface PrunedWorktree {
  loop: LoopRow;
  path: string;
}

export interface PruneResult {
  removed: PrunedWorktree[];
  /** Loops whose runner never ran, whose branch ralph/<id> was removed. */
  removedBranches: LoopRow[];
  /** Loops whose worktree stays because they are not finished. */
  keptRunning: LoopRow[];
  /** Finished loops that ended too recently for --older-than. */
  keptRecent: LoopRow[];
  failed: Array<{ loop: LoopRow; error: string }>;
}

export async function pruneLoopWorktrees(
  paths: HomePaths,
  store: LoopStore,
  opts: { olderThanMs?: number; now?: number } = {},
): Promise<PruneResult> {
  const now = opts.now ?? Date.now();
  const result: PruneResult = { removed: [], removedBranches: [], keptRunning: [], keptRecent: [], failed: [] };
  for (const loop of store.list()) {
    // Only what this box made for its loops: worktrees/<loop-id> and ralph/<loop-id>.
    if (loop.location !== 'local') continue;
    const path = join(paths.worktrees, loop.id);
    if (loop.workDir !== path) continue;
    const neverRan = loop.pid === null && loop.repo !== null && loop.baseCommit !== null;
    const hasWorktree = existsSync(path);
    if (!hasWorktree && !(neverRan && isFinal(loop.status))) continue;
    if (!isFinal(loop.status)) {
      result.keptRunning.push(loop);
      continue;
    }
    const ended = Date.parse(loop.endedAt ?? loop.updatedAt);
    if (opts.olderThanMs !== undefined && !(now - ended >= opts.olderThanMs)) {
      if (hasWorktree) result.keptRecent.push(loop);
      continue;
    }
    try {
      if (hasWorktree) {
        await removeLoopWorktree(paths, loop.repo, loop.id);
        result.removed.push({ loop, path });
      }
      if (neverRan && (await removeUnusedLoopBranch(paths, loop.repo!, loop.id, loop.baseCommit!))) result.removedBranches.push(loop);
    } catch (err) {
      result.failed.push({ loop, error: (err as Error).message });
    }
  }
  return result;
}
