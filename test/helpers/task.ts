// A throwaway task: a git repo holding a prd.json of N stories, as a user's checkout would.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TaskRepo {
  /** The checkout (work dir). */
  dir: string;
  /** Where prd.json lives (dir itself, or dir/tasks/<name>). */
  taskDir: string;
  prdPath: string;
  progressPath: string;
  readPrd(): { userStories: Array<{ id: string; title: string; passes: boolean; priority?: number }> } & Record<string, unknown>;
  /** Commit subjects, newest first. */
  commits(): string[];
  cleanup(): void;
}

export interface TaskRepoOptions {
  stories?: number;
  git?: boolean;
  /** Put the task under tasks/<name>/ instead of the repo root. */
  tasksSubdir?: string;
  branchName?: string;
  label?: string;
  /** Overrides the generated prd.json entirely. */
  prd?: unknown;
}

const GIT_ENV = {
  ...process.env,
  GIT_AUTHOR_NAME: 'ralph test',
  GIT_AUTHOR_EMAIL: 'test@ralph.invalid',
  GIT_COMMITTER_NAME: 'ralph test',
  GIT_COMMITTER_EMAIL: 'test@ralph.invalid',
};

export function git(dir: string, args: string[]): string {
  return execFileSync('git', args, { cwd: dir, env: GIT_ENV, stdio: ['ignore', 'pipe', 'pipe'] }).toString();
}

export function storiesPrd(n: number, branchName = 'ralph/test-feature'): unknown {
  return {
    project: 'Test project',
    branchName,
    description: 'A task for the loop tests',
    userStories: Array.from({ length: n }, (_, i) => ({
      id: `US-${String(i + 1).padStart(3, '0')}`,
      title: `Story number ${i + 1}`,
      description: `As a tester I want story ${i + 1}`,
      acceptanceCriteria: [`story ${i + 1} works`, { description: 'typecheck passes', passes: false }],
      priority: i + 1,
      passes: false,
      notes: '',
    })),
  };
}

export function makeTaskRepo(opts: TaskRepoOptions = {}): TaskRepo {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), `${opts.label ?? 'ralph-task'}-`)));
  const taskDir = opts.tasksSubdir ? join(dir, 'tasks', opts.tasksSubdir) : dir;
  mkdirSync(taskDir, { recursive: true });
  const prdPath = join(taskDir, 'prd.json');
  writeFileSync(prdPath, JSON.stringify(opts.prd ?? storiesPrd(opts.stories ?? 3, opts.branchName), null, 2) + '\n');
  writeFileSync(join(dir, 'README.md'), '# test project\n');
  if (opts.git ?? true) {
    git(dir, ['init', '-q', '-b', 'main']);
    git(dir, ['add', '-A']);
    git(dir, ['commit', '-q', '-m', 'initial']);
  }
  return {
    dir,
    taskDir,
    prdPath,
    progressPath: join(taskDir, 'progress.txt'),
    readPrd: () => JSON.parse(readFileSync(prdPath, 'utf8')),
    commits: () => git(dir, ['log', '--format=%s']).trim().split('\n'),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
