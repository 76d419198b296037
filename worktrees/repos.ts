// Bare repos under $RALPH_HOME/repos: created on the first push, with ralph's hooks and push options on.

import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { installHooks } from '../hooks/install.js';
import type { HomePaths } from '../store/paths.js';
import { git } from './git.js';
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
  const advertised = await git(['config', '--get', 'receive.advertisePushOptions'], { cwd: repo.dir }).catch(() => '');
  if (advertised !== 'true') await git(['config', 'receive.advertisePushOptions', 'true'], { cwd: repo.dir });
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
      await git(['init', '--quiet', '--bare', tmp]);
      await git(['config', 'receive.advertisePushOptions', 'true'], { cwd: tmp });
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
  try {
    await git(['rev-parse', '--verify', '--quiet', 'HEAD'], { cwd: dir });
    return; // HEAD is fine
  } catch {
    /* unborn */
  }
  const branches = (await git(['for-each-ref', '--format=%(refname)', 'refs/heads/'], { cwd: dir }))
    .split('\n')
    .filter((r) => r !== '' && !r.startsWith('refs/heads/ralph/'));
  const pick = ['refs/heads/main', 'refs/heads/master'].find((r) => branches.includes(r)) ?? branches[0];
  if (pick) await git(['symbolic-ref', 'HEAD', pick], { cwd: dir });
}
