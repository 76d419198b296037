// The user's own git repository (the one `ralph remote add` and `ralph start` run in): its name, and
// the git remotes that point at ralph remotes. git is run with argument arrays, never a shell string.

import { spawnSync } from 'node:child_process';
import { basename } from 'node:path';

export class GitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GitError';
  }
}

function git(args: string[], cwd: string): { ok: boolean; out: string; err: string } {
  const r = spawnSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.error) throw new GitError(`cannot run git: ${r.error.message}`);
  return { ok: r.status === 0, out: r.stdout.trim(), err: r.stderr.trim() };
}

/** The top-level directory of the git repository around `cwd`, or null when there is none. */
export function repoTop(cwd = process.cwd()): string | null {
  const r = git(['rev-parse', '--show-toplevel'], cwd);
  return r.ok && r.out !== '' ? r.out : null;
}

/** The URL of a ralph remote's repo, as git remotes carry it. */
export function ralphUrl(remote: string, repo: string): string {
  return `ralph://${remote}/${repo}`;
}

/** The default repo name: the top-level directory name of the current repository. */
export function defaultRepoName(cwd = process.cwd()): string | null {
  const top = repoTop(cwd);
  return top === null ? null : basename(top);
}

/** The URL of a git remote, or null when there is no such remote. */
export function gitRemoteUrl(top: string, name: string): string | null {
  const r = git(['remote', 'get-url', name], top);
  return r.ok ? r.out : null;
}

export function addGitRemote(top: string, name: string, url: string): void {
  const r = git(['remote', 'add', name, url], top);
  if (!r.ok) throw new GitError(`git remote add ${name} ${url} failed: ${r.err.split('\n')[0] ?? ''}`);
}

export function removeGitRemote(top: string, name: string): void {
  const r = git(['remote', 'remove', name], top);
  if (!r.ok) throw new GitError(`git remote remove ${name} failed: ${r.err.split('\n')[0] ?? ''}`);
}

/** Every git remote of the repository whose URL starts with `prefix`. */
export function gitRemotesWithUrlPrefix(top: string, prefix: string): string[] {
  const r = git(['config', '--get-regexp', '^remote\\..*\\.url$'], top);
  if (!r.ok) return [];
  const names: string[] = [];
  for (const line of r.out.split('\n')) {
    const m = /^remote\.(.+)\.url (.*)$/.exec(line);
    if (m && m[2]!.startsWith(prefix)) names.push(m[1]!);
  }
  return names;
}
