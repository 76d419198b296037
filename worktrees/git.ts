// Running git on the daemon's repos: through simple-git, in an environment cleaned of everything a
// hook or another git process may have set (GIT_DIR, the quarantine, push options…), so a command
// always acts on the repository it names and nothing else.
//
// Two guards, one rule: `cleanGitEnv` decides what git may see (the daemon's `git receive-pack` gets
// the same environment), and the cleaned environment is handed to simple-git explicitly, whose own
// environment guard then refuses to run if a GIT_* variable it was not told about is in it: a
// regression in the cleaning fails loudly instead of acting on another repository.

import { GitError as SimpleGitError, GitPluginError, simpleGit, type SimpleGit, type SimpleGitOptions } from 'simple-git';

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

type UnsafeFlag = keyof NonNullable<SimpleGitOptions['unsafe']>;

/**
 * Kept variables that simple-git runs with only when told they are meant (its `unsafe` options):
 * they are the user's own git setup — config files, exec path, ssh, password prompt, templates — which
 * git run by hand would read too.
 */
const UNSAFE_FLAG: Record<string, UnsafeFlag> = {
  GIT_CONFIG_GLOBAL: 'allowUnsafeConfigPaths',
  GIT_CONFIG_SYSTEM: 'allowUnsafeConfigPaths',
  GIT_EXEC_PATH: 'allowUnsafeExec',
  GIT_SSH: 'allowUnsafeSshCommand',
  GIT_SSH_COMMAND: 'allowUnsafeSshCommand',
  GIT_ASKPASS: 'allowUnsafeAskPass',
  GIT_TEMPLATE_DIR: 'allowUnsafeTemplateDir',
};

/** Outside GIT_*, what simple-git guards is for editors, pagers and prompts: nothing here opens one. */
const NOT_NEEDED = new Set(['EDITOR', 'VISUAL', 'PAGER', 'SSH_ASKPASS', 'PREFIX']);

export class GitError extends Error {
  constructor(
    message: string,
    readonly stderr: string,
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
  env?: NodeJS.ProcessEnv;
  /** Kill a git that says nothing for this long (default 120 s). */
  timeoutMs?: number;
}

/** A simple-git for the repository or worktree at `dir`, with the clean environment. */
export function gitAt(dir: string, opts: GitOptions = {}): SimpleGit {
  const env = cleanGitEnv(opts.env ?? process.env);
  for (const k of NOT_NEEDED) delete env[k];
  const unsafe: NonNullable<SimpleGitOptions['unsafe']> = {};
  for (const k of Object.keys(env)) if (UNSAFE_FLAG[k]) unsafe[UNSAFE_FLAG[k]!] = true;
  return simpleGit({
    baseDir: dir,
    // Only what cleanGitEnv means to keep: any other GIT_* that got through makes simple-git refuse.
    allowEnvironment: [...KEEP, ...Object.keys(env).filter((k) => k.startsWith('GIT_TRACE'))],
    unsafe,
    timeout: { block: opts.timeoutMs ?? 120_000 },
    // simple-git takes a non-zero exit with nothing on stderr for success (`rev-parse --verify
    // --quiet` of a missing ref); here every non-zero exit is a failure.
    errors: (error, result) => error ?? (result.exitCode !== 0 ? Buffer.from(`git exited with ${result.exitCode}`) : undefined),
  }).env(env as Record<string, string>);
}

/**
 * Runs one git step and turns its failure into a one-line GitError: `git <what> failed: <git's reason>`.
 * (simple-git's own errors carry git's whole stderr.)
 */
export async function gitStep<T>(what: string, run: Promise<T>): Promise<T> {
  try {
    return await run;
  } catch (err) {
    // A refusal of simple-git's own guards is a bug of ours, never "git said no": it passes unchanged.
    if (!(err instanceof SimpleGitError) || err instanceof GitPluginError) throw err;
    const stderr = err.message;
    throw new GitError(`git ${what} failed: ${gitErrorLine(stderr) || 'no message'}`, stderr);
  }
}

/** `git <args>` in `dir` for what simple-git has no method for; resolves with stdout, trimmed of its last newline. */
export async function git(args: string[], dir: string, opts: GitOptions = {}): Promise<string> {
  const out = await gitStep(args[0]!, gitAt(dir, opts).raw(args));
  return out.replace(/\n$/, '');
}
