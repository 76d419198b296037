// One worktree per loop: `worktrees/<loop-id>`, added detached at the pushed commit and then put on a
// new branch `ralph/<loop-id>`, so the user's branch stays pushable (a branch checked out in a
// worktree cannot be pushed to) and the agent's commits come home with `git fetch`.
// Every add/remove/prune of one repo runs under that repo's lock.

import { existsSync, readFileSync, rmSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import type { HomePaths } from '../store/paths.js';
import { git, gitAt, GitError, gitStep } from './git.js';
import { withRepoLock } from './lock.js';
import { checkLoopId, checkRepoName, loopBranch, repoDir, worktreeDir } from './names.js';

const COMMIT = /^[0-9a-f]{40}([0-9a-f]{24})?$/;

/** The commit `branch` points at in the bare repo, or null when there is no such branch. */
export async function resolveBranchCommit(paths: HomePaths, repo: string, branch: string): Promise<string | null> {
  const dir = repoDir(paths, repo);
  if (!existsSync(dir)) return null;
  if (branch.startsWith('-')) return null;
  try {
    return await gitStep('rev-parse', gitAt(dir).revparse(['--verify', '--quiet', `refs/heads/${branch}^{commit}`]));
  } catch (err) {
    if (err instanceof GitError) return null;
    throw err;
  }
}

/**
 * Adds `worktrees/<loopId>` for a loop: detached at `commit`, then switched to the new branch
 * `ralph/<loopId>`. Returns the worktree's path. Nothing is left behind when a step fails.
 */
export async function createLoopWorktree(paths: HomePaths, repo: string, commit: string, loopId: string): Promise<string> {
  const name = checkRepoName(repo);
  const dir = repoDir(paths, name);
  const wt = worktreeDir(paths, checkLoopId(loopId));
  if (!COMMIT.test(commit)) throw new Error(`bad commit ${JSON.stringify(commit)}: expected a full hex object id`);
  if (!existsSync(dir)) throw new Error(`no repo ${name} on this daemon (push it first)`);
  return withRepoLock(paths, name, async () => {
    if (existsSync(wt)) throw new Error(`worktree ${wt} already exists`);
    // simple-git has no worktree commands: these two are raw.
    await git(['worktree', 'add', '--quiet', '--detach', wt, commit], dir);
    try {
      await gitStep('checkout', gitAt(wt).checkoutLocalBranch(loopBranch(loopId)));
    } catch (err) {
      await git(['worktree', 'remove', '--force', wt], dir).catch(() => rmSync(wt, { recursive: true, force: true }));
      throw err;
    }
    return wt;
  });
}

/** The bare repo a worktree belongs to, read from its `.git` file (`gitdir: <repo>/worktrees/<id>`). */
function bareRepoOf(wt: string): string | null {
  try {
    const m = /^gitdir: (.+)$/m.exec(readFileSync(join(wt, '.git'), 'utf8'));
    return m ? join(m[1]!.trim(), '..', '..') : null;
  } catch {
    return null;
  }
}

/** The repo name of a bare repo dir under $RALPH_HOME/repos, or null for one elsewhere. */
function repoNameOf(paths: HomePaths, dir: string | null): string | null {
  if (!dir) return null;
  const rel = relative(paths.repos, dir);
  if (rel.startsWith('..') || isAbsolute(rel) || !rel.endsWith('.git')) return null;
  try {
    return checkRepoName(rel);
  } catch {
    return null;
  }
}

/**
 * Removes a loop's worktree (modified or untracked files included). Its branch `ralph/<loopId>` is
 * kept: the agent's commits stay fetchable after the worktree is gone.
 */
export async function removeLoopWorktree(paths: HomePaths, repo: string | null, loopId: string): Promise<boolean> {
  const wt = worktreeDir(paths, loopId);
  const name = repo ? checkRepoName(repo) : repoNameOf(paths, bareRepoOf(wt));
  const dir = name ? repoDir(paths, name) : null;
  if (!existsSync(wt)) {
    if (name && dir && existsSync(dir)) await pruneWorktrees(paths, name);
    return false;
  }
  return withRepoLock(paths, name ?? `worktree-${loopId}`, async () => {
    if (dir && existsSync(dir)) {
      try {
        await git(['worktree', 'remove', '--force', '--force', wt], dir);
      } catch (err) {
        if (!(err instanceof GitError)) throw err;
      }
    }
    // A worktree git does not know (its repo gone, or a half-made one) is just a directory.
    rmSync(wt, { recursive: true, force: true });
    if (dir && existsSync(dir)) await git(['worktree', 'prune'], dir);
    return true;
  });
}

/**
 * Deletes the branch ralph/<loopId> of a loop whose runner never ran, if it still points at `commit`
 * (the pushed commit: no agent's work on it). Returns whether it did.
 */
export async function removeUnusedLoopBranch(paths: HomePaths, repo: string, loopId: string, commit: string): Promise<boolean> {
  const name = checkRepoName(repo);
  const dir = repoDir(paths, name);
  if (!existsSync(dir) || !COMMIT.test(commit)) return false;
  return withRepoLock(paths, name, async () => {
    try {
      // Given the old value, git deletes it only if it still points there, in one step.
      await git(['update-ref', '-d', `refs/heads/${loopBranch(checkLoopId(loopId))}`, commit], dir);
      return true;
    } catch (err) {
      if (err instanceof GitError) return false; // gone already, or moved: kept
      throw err;
    }
  });
}

/** `git worktree prune` on a repo: forgets worktrees whose directories are gone. */
export async function pruneWorktrees(paths: HomePaths, repo: string): Promise<void> {
  const dir = repoDir(paths, repo);
  if (!existsSync(dir)) return;
  await withRepoLock(paths, checkRepoName(repo), () => git(['worktree', 'prune'], dir));
}
