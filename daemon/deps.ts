// What the daemon's loop start needs from the rest of ralph (worktrees/, install/, loop/), as one
// object: the server wires the real modules in, and nothing in daemon/ reaches past this seam.

import type { LoopRow, LoopStore } from '../store/loops.js';
import type { Config } from '../store/config.js';
import type { HomePaths } from '../store/paths.js';

export interface PrepareRequest {
  dir: string;
  task?: string;
  agent?: string;
  agentCmd?: string;
  maxIterations?: number;
  name?: string;
  agentSearchDirs?: string[];
  row?: Partial<LoopRow>;
}

export interface LoopDeps {
  /** The commit a branch of a bare repo points at, or null when there is no such branch. */
  resolveBranchCommit(paths: HomePaths, repo: string, branch: string): Promise<string | null>;
  /** worktrees/<loopId>, detached at `commit`, then on branch ralph/<loopId>. */
  createLoopWorktree(paths: HomePaths, repo: string, commit: string, loopId: string): Promise<string>;
  removeLoopWorktree(paths: HomePaths, repo: string | null, loopId: string): Promise<boolean>;
  /** Throws with a one-line reason when the repo name is not acceptable. */
  checkRepoName(repo: string): string;
  ensureAgentInstalled(agent: string, paths: HomePaths, config: Config, progress: (line: string) => void): Promise<string[]>;
  /** Validates the task and writes the loop's row (status starting); throws a one-line error. */
  prepareLoop(store: LoopStore, paths: HomePaths, req: PrepareRequest): LoopRow;
  /** Spawns the detached runner; resolves once its socket listens. */
  launchRunner(paths: HomePaths, loopId: string, opts?: { env?: NodeJS.ProcessEnv }): Promise<{ pid: number }>;
}

/** The real modules. Loaded on first use, so `ralph daemon --help` stays light. */
export async function loadDeps(): Promise<LoopDeps> {
  const [worktrees, agents, prepare, launch] = await Promise.all([
    import('../worktrees/index.js'),
    import('../install/agents.js'),
    importLate('../loop/prepare.js'),
    importLate('../loop/launch.js'),
  ]);
  return {
    resolveBranchCommit: worktrees.resolveBranchCommit,
    createLoopWorktree: worktrees.createLoopWorktree,
    removeLoopWorktree: worktrees.removeLoopWorktree,
    checkRepoName: worktrees.checkRepoName,
    ensureAgentInstalled: agents.ensureAgentInstalled,
    prepareLoop: prepare.prepareLoop as LoopDeps['prepareLoop'],
    launchRunner: launch.launchRunner,
  };
}

// Modules other engineers are still writing: imported by a computed name so this file compiles before
// they land. Replaced by plain imports once they are committed.
// A module that is not there yet turns into functions that say so when called.
function importLate(path: string): Promise<any> {
  return import(new URL(path, import.meta.url).href).catch(
    (err: Error) =>
      new Proxy(
        {},
        {
          get: () => () => {
            throw new Error(`${path} is not available in this build (${err.message})`);
          },
        },
      ),
  );
}
