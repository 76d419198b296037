// Where a loop's task files live: prd.json (required), prompt.md (optional), progress.txt.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { LoopSetupError } from './errors.js';

export interface TaskFiles {
  taskDir: string;
  prdPath: string;
  /** null: the built-in prompt is used. */
  promptPath: string | null;
  progressPath: string;
}

export function taskFiles(taskDir: string): TaskFiles {
  const promptPath = join(taskDir, 'prompt.md');
  return {
    taskDir,
    prdPath: join(taskDir, 'prd.json'),
    promptPath: existsSync(promptPath) ? promptPath : null,
    progressPath: join(taskDir, 'progress.txt'),
  };
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

const hasPrd = (dir: string) => existsSync(join(dir, 'prd.json'));

/**
 * Finds the task directory: `task` when given (relative to `workDir`; may name the prd.json itself),
 * else `workDir` when it holds prd.json, else the one `workDir/tasks/<name>/` holding prd.json.
 */
export function findTaskDir(workDir: string, task?: string): string {
  if (task !== undefined) {
    const path = resolve(workDir, task);
    if (!existsSync(path)) throw new LoopSetupError(`task ${path} does not exist; --task takes the directory holding prd.json`);
    const dir = isDir(path) ? path : basename(path) === 'prd.json' ? dirname(path) : null;
    if (dir === null) throw new LoopSetupError(`task ${path} is not a directory; --task takes the directory holding prd.json`);
    if (!hasPrd(dir)) throw new LoopSetupError(`no prd.json in ${dir}; write one there (see the README) or point --task at the right directory`);
    return dir;
  }
  if (hasPrd(workDir)) return workDir;
  const tasksDir = join(workDir, 'tasks');
  const candidates = isDir(tasksDir)
    ? readdirSync(tasksDir)
        .map((name) => join(tasksDir, name))
        .filter((d) => isDir(d) && hasPrd(d))
        .sort()
    : [];
  if (candidates.length === 1) return candidates[0]!;
  if (candidates.length > 1) {
    throw new LoopSetupError(
      `several tasks in ${tasksDir} (${candidates.map((c) => basename(c)).join(', ')}); pick one with --task`,
    );
  }
  throw new LoopSetupError(
    `no prd.json in ${workDir} nor in ${join(tasksDir, '*')}/; write a prd.json there (see the README) or pass --task DIR`,
  );
}
