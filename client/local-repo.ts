// The user's own git repository (the one `ralph remote add` and `ralph start` run in): its name, and
// the git remotes that point at ralph remotes. git runs through simple-git, which parses `git remote`
// for us; argument arrays only, never a shell string.
//
// Unlike the daemon's repos (worktrees/git.ts), this is the user's checkout as the user's git sees it:
// their whole environment is passed on, GIT_DIR and the like included (simple-git would strip those).

import { basename } from 'node:path';
import { GitError as SimpleGitError, simpleGit, type SimpleGit } from 'simple-git';

export class GitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'GitError';
  }
}

function gitIn(dir: string): SimpleGit {
  return simpleGit({ baseDir: dir, allowEnvironment: Object.keys(process.env) });
}

/** git's own reason, first line, for a one-line error (or why git did not run at all). */
function reason(err: unknown): string {
  if (!(err instanceof SimpleGitError)) throw err;
  const first = err.message.trim().split('\n')[0]!;
  // simple-git hands a failed spawn on as a GitError too: "Error: spawn git ENOENT".
  const spawnFailed = /^Error: spawn \S+ (\S+)/.exec(first);
  if (spawnFailed) return `cannot run git (${spawnFailed[1]}); is git installed and on PATH?`;
  return first.replace(/^(fatal|error): /, '');
}

/**
 * The top-level directory of the git repository around `cwd`, or null when there is none. Any
 * other failure (git missing, a repository git refuses) is a GitError saying so.
 */
export async function repoTop(cwd = process.cwd()): Promise<string | null> {
  try {
    const top = await gitIn(cwd).revparse(['--show-toplevel']);
    return top !== '' ? top : null;
  } catch (err) {
    const why = reason(err);
    if (/^not a git repository/.test(why)) return null;
    throw new GitError(`cannot find the git repository around ${cwd}: ${why}`);
  }
}

/** The URL of a ralph remote's repo, as git remotes carry it. */
export function ralphUrl(remote: string, repo: string): string {
  return `ralph://${remote}/${repo}`;
}

/** The default repo name: the top-level directory name of the current repository. */
export async function defaultRepoName(cwd = process.cwd()): Promise<string | null> {
  const top = await repoTop(cwd);
  return top === null ? null : basename(top);
}

/** Every git remote of the repository, with its (fetch) URL. */
async function remotes(top: string): Promise<Array<{ name: string; url: string }>> {
  const list = await gitIn(top).getRemotes(true);
  return list.map((r) => ({ name: r.name, url: r.refs.fetch }));
}

/** The URL of a git remote, or null when there is no such remote. */
export async function gitRemoteUrl(top: string, name: string): Promise<string | null> {
  return (await remotes(top)).find((r) => r.name === name)?.url ?? null;
}

export async function addGitRemote(top: string, name: string, url: string): Promise<void> {
  try {
    await gitIn(top).addRemote(name, url);
  } catch (err) {
    throw new GitError(`git remote add ${name} ${url} failed: ${reason(err)}`);
  }
}

export async function removeGitRemote(top: string, name: string): Promise<void> {
  try {
    await gitIn(top).removeRemote(name);
  } catch (err) {
    throw new GitError(`git remote remove ${name} failed: ${reason(err)}`);
  }
}

/** Every git remote of the repository whose URL starts with `prefix`. */
export async function gitRemotesWithUrlPrefix(top: string, prefix: string): Promise<string[]> {
  return (await remotes(top)).filter((r) => r.url.startsWith(prefix)).map((r) => r.name);
}
