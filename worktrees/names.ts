// Repo names and loop ids as they may appear on disk: validated at the edge, before any path is built.

import { join } from 'node:path';
import type { HomePaths } from '../store/paths.js';

export class RepoNameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RepoNameError';
  }
}

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
export const MAX_REPO_NAME = 100;

/**
 * Checks a repo name from the network (`ralph://box/<repo>`) and returns it normalized (a trailing
 * `.git` dropped). Letters, digits, `.`, `_`, `-`; at most one `/`; no `..`; no leading `-` or `.`.
 */
export function checkRepoName(raw: string): string {
  const bad = (why: string) =>
    new RepoNameError(`bad repo name ${JSON.stringify(raw)}: ${why} (use letters, digits, '.', '_', '-' and at most one '/')`);
  if (typeof raw !== 'string' || raw === '') throw bad('it is empty');
  const name = raw.endsWith('.git') ? raw.slice(0, -'.git'.length) : raw;
  if (name.length > MAX_REPO_NAME) throw bad(`longer than ${MAX_REPO_NAME} characters`);
  if (name.includes('..')) throw bad("'..' is not allowed");
  const segments = name.split('/');
  if (segments.length > 2) throw bad('more than one level of folders');
  for (const s of segments) {
    if (s === '') throw bad('an empty path segment');
    if (s.startsWith('-') || s.startsWith('.')) throw bad("a part starts with '-' or '.'");
    if (!SEGMENT.test(s)) throw bad('a character that is not allowed');
    if (s.endsWith('.lock')) throw bad("a part ends with '.lock'");
  }
  return name;
}

/** `$RALPH_HOME/repos/<name>.git` of an already checked name. */
export function repoDir(paths: HomePaths, repo: string): string {
  return join(paths.repos, `${checkRepoName(repo)}.git`);
}

const LOOP_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export function checkLoopId(id: string): string {
  if (!LOOP_ID.test(id) || id.includes('..') || id.endsWith('.lock')) throw new Error(`bad loop id ${JSON.stringify(id)}`);
  return id;
}

/** `$RALPH_HOME/worktrees/<loop-id>`. */
export function worktreeDir(paths: HomePaths, loopId: string): string {
  return join(paths.worktrees, checkLoopId(loopId));
}

/** The branch a loop's commits live on. */
export function loopBranch(loopId: string): string {
  return `ralph/${checkLoopId(loopId)}`;
}
