// Running git: argument arrays only, and an environment cleaned of everything a hook or another git
// process may have set (GIT_DIR, the quarantine, push options…), so a command always acts on the
// repository it names and nothing else.

import { execFile } from 'node:child_process';

/** GIT_* variables that are about who the user is or how git talks, not about which repo: kept. */
const KEEP = new Set([
  'GIT_AUTHOR_NAME',
  'GIT_AUTHOR_EMAIL',
  'GIT_AUTHOR_DATE',
  'GIT_COMMITTER_NAME',
  'GIT_COMMITTER_EMAIL',
  'GIT_COMMITTER_DATE',
  'GIT_CONFIG_NOSYSTEM',
  'GIT_CONFIG_GLOBAL',
  'GIT_CONFIG_SYSTEM',
  'GIT_TERMINAL_PROMPT',
  'GIT_SSH',
  'GIT_SSH_COMMAND',
  'GIT_ASKPASS',
  'GIT_EXEC_PATH',
  'GIT_TEMPLATE_DIR',
]);

/**
 * A copy of `env` without the GIT_* variables that point git at a repository, an object store, an
 * index or a work tree (GIT_DIR, GIT_QUARANTINE_PATH, GIT_OBJECT_DIRECTORY,
 * GIT_ALTERNATE_OBJECT_DIRECTORIES, GIT_INDEX_FILE, GIT_WORK_TREE, GIT_PUSH_OPTION_*, GIT_CONFIG_*
 * parameters, …). Tracing variables stay.
 */
export function cleanGitEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(env)) {
    if (k.startsWith('GIT_') && !KEEP.has(k) && !k.startsWith('GIT_TRACE')) continue;
    out[k] = v;
  }
  return out;
}

export class GitError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
    readonly code: number | string | null,
  ) {
    super(message);
    this.name = 'GitError';
  }
}

/** The last meaningful line of git's stderr, for a one-line error. */
export function gitErrorLine(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('hint:'));
  const fatal = lines.find((l) => l.startsWith('fatal:') || l.startsWith('error:'));
  return (fatal ?? lines.at(-1) ?? '').replace(/^(fatal|error): /, '');
}

export interface GitOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** Runs `git <args>`; resolves with stdout (trimmed of the final newline), rejects with a GitError. */
export function git(args: string[], opts: GitOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      'git',
      args,
      {
        cwd: opts.cwd,
        env: cleanGitEnv(opts.env ?? process.env),
        timeout: opts.timeoutMs ?? 120_000,
        maxBuffer: 16 * 1024 * 1024,
        encoding: 'utf8',
      },
      (err, stdout, stderr) => {
        if (err) {
          const code = (err as NodeJS.ErrnoException & { code?: number | string }).code ?? null;
          const why = gitErrorLine(stderr) || err.message;
          reject(new GitError(`git ${args[0]} failed: ${why}`, stderr, code));
          return;
        }
        resolve(stdout.replace(/\n$/, ''));
      },
    );
  });
}
