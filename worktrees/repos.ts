// Bare repos under $RALPH_HOME/repos: created on the first push, with ralph's hooks and push options on.

import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { GitConfigScope } from 'simple-git';
import { installHooks } from '../hooks/install.js';
import type { HomePaths } from '../store/paths.js';
import { git, gitAt, gitStep } from './git.js';
import { withRepoLock } from './lock.js';
import { checkRepoName, repoDir } from './names.js';

export interface BareRepo {
  name: string;
  dir: string;
  created: boolean;
}

/** The bare repo of `repo` if it exists (name checked), else null. */
export function findBareRepo(paths: HomePaths, repo: string): BareRepo | null {
  const name = checkRepoName(repo);
  const dir = repoDir(paths, name);
  return existsSync(join(dir, 'HEAD')) ? { name, dir, created: false } : null;
}

/** A repo made some other way (by hand, by an older ralph) gets what ralph's pushes rely on. */
async function prepared(repo: BareRepo): Promise<BareRepo> {
  installHooks(repo.dir);
  const g = gitAt(repo.dir);
  // Not set at all is an exit status of 1: as good as "not true".
  const advertised = await gitStep('config', g.getConfig('receive.advertisePushOptions', GitConfigScope.local)).catch(() => null);
  if (advertised?.value !== 'true') await gitStep('config', g.addConfig('receive.advertisePushOptions', 'true', false, GitConfigScope.local));
  return repo;
}

/**
 * Returns the bare repo of `repo`, creating it on first use: `git init --bare` in a temp dir renamed
 * into place (nobody ever sees half a repo), `receive.advertisePushOptions=true`, hooks installed.
 * The hooks of an existing repo are refreshed too, so they always run the current ralph.
 */
export async function ensureBareRepo(paths: HomePaths, repo: string): Promise<BareRepo> {
  const name = checkRepoName(repo);
  const existing = findBareRepo(paths, name);
  if (existing) return prepared(existing);
  return withRepoLock(paths, name, async () => {
    const again = findBareRepo(paths, name);
    if (again) return prepared(again);
    const dir = repoDir(paths, name);
    mkdirSync(dirname(dir), { recursive: true });
    // A leading '.' can never be a valid repo name, so the temp dir never collides with a repo.
    const tmp = join(dirname(dir), `.new-${randomBytes(4).toString('hex')}.git`);
    try {
      mkdirSync(tmp);
      const g = gitAt(tmp);
      await gitStep('init', g.init(true, ['--quiet']));
      await gitStep('config', g.addConfig('receive.advertisePushOptions', 'true', false, GitConfigScope.local));
      installHooks(tmp);
      renameSync(tmp, dir);
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      throw err;
    }
    return { name, dir, created: true };
  });
}

/**
 * After a push: a bare repo whose HEAD names a branch that does not exist (the first push was not of
 * `master`) gets HEAD pointed at a pushed branch (main, master, else the first user branch), so a
 * `git clone` checks something out.
 */
export async function fixUnbornHead(dir: string): Promise<void> {
  const g = gitAt(dir);
  try {
    await g.revparse(['--verify', '--quiet', 'HEAD']);
    return; // HEAD is fine
  } catch {
    /* unborn */
  }
  const branches = (await gitStep('branch', g.branchLocal())).all.filter((b) => !b.startsWith('ralph/'));
  const pick = ['main', 'master'].find((b) => branches.includes(b)) ?? branches[0];
  if (pick) await git(['symbolic-ref', 'HEAD', `refs/heads/${pick}`], dir);
}
