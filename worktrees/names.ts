// Where repo names and loop ids appear on disk and in refs, each validated before any path is built.

import { join } from 'node:path';
import { checkLoopId, checkRepoName } from '../store/names.js';
import type { HomePaths } from '../store/paths.js';

// The rules themselves live in store/names.ts (the CLI and the loop runner check names too).
export { checkLoopId, checkRepoName, MAX_REPO_NAME, RepoNameError } from '../store/names.js';

/** `$RALPH_HOME/repos/<name>.git` of an already checked name. */
export function repoDir(paths: HomePaths, repo: string): string {
  return join(paths.repos, `${checkRepoName(repo)}.git`);
}

/** `$RALPH_HOME/worktrees/<loop-id>`. */
export function worktreeDir(paths: HomePaths, loopId: string): string {
  return join(paths.worktrees, checkLoopId(loopId));
}

/** The branch a loop's commits live on. */
export function loopBranch(loopId: string): string {
  return `ralph/${checkLoopId(loopId)}`;
}
