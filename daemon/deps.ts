// What the daemon's loop start needs from the rest of ralph (worktrees/, install/, loop/), as one
// object: the server wires the real modules in, and nothing in daemon/ reaches past this seam.

import type { PrepareRequest } from '../loop/prepare.js';
import type { LoopRow, LoopStore } from '../store/loops.js';
import type { Config } from '../store/config.js';
import type { HomePaths } from '../store/paths.js';

export type { PrepareRequest };

export interface LoopDeps {
  /** The commit a branch of a bare repo points at, or null when there is no such branch. */
  resolveBranchCommit(paths: HomePaths, repo: string, branch: string): Promise<string | null>;
  /** worktrees/<loopId>, detached at `commit`, then on branch ralph/<loopId>. */
  createLoopWorktree(paths: HomePaths, repo: string, commit: string, loopId: string): Promise<string>;
  removeLoopWorktree(paths: HomePaths, repo: string | null, loopId: string): Promise<boolean>;
  /** Throws with a one-line reason when the repo name is not acceptable. */
  checkRepoName(repo: string): string;
  ensureAgentInstalled(agent: string, paths: HomePaths, config: Config, progress: (line: string) => void): Promise<string[]>;
  /** Validates the task and writes the loop's row (status starting), or completes it (`reserved`); throws a one-line error. */
  prepareLoop(store: LoopStore, paths: HomePaths, req: PrepareRequest): LoopRow;
  /** Spawns the detached runner; resolves once its socket listens. */
  launchRunner(paths: HomePaths, loopId: string, opts?: { env?: NodeJS.ProcessEnv }): Promise<{ pid: number }>;
}

/** The real modules. Loaded on first use, so `ralph daemon --help` stays light. */
export async function loadDeps(): Promise<LoopDeps> {
  const [worktrees, agents, prepare, launch] = await Promise.all([
    import('../worktrees/index.js'),
    import('../install/agents.js'),
    import('../loop/prepare.js'),
    import('../loop/launch.js'),
  ]);
  return {
    resolveBranchCommit: worktrees.resolveBranchCommit,
    createLoopWorktree: worktrees.createLoopWorktree,
    removeLoopWorktree: worktrees.removeLoopWorktree,
    checkRepoName: worktrees.checkRepoName,
    ensureAgentInstalled: agents.ensureAgentInstalled,
    prepareLoop: prepare.prepareLoop,
    launchRunner: launch.launchRunner,
  };
}
