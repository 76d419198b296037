// Shared test helpers: a temp RALPH_HOME, running the real `ralph` CLI, awaiting conditions.
// Every test file uses these; none copies them.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (holds package.json, schema.sql, dist/). */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const RALPH_BIN = join(ROOT, 'dist', 'cli', 'ralph.js');
export const FIXTURES = join(ROOT, 'test', 'fixtures');

export interface TempHome {
  home: string;
  /** Environment for child processes: RALPH_HOME and RALPH_CONFIG point into the temp dir. */
  env: NodeJS.ProcessEnv;
  cleanup(): void;
}

export function makeTempHome(label = 'ralph-test'): TempHome {
  // Short paths: unix socket paths are limited to ~107 bytes.
  const home = realpathSync(mkdtempSync(join(tmpdir(), `${label}-`)));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    RALPH_HOME: home,
    RALPH_CONFIG: join(home, 'config.json'),
    GIT_AUTHOR_NAME: 'ralph test',
    GIT_AUTHOR_EMAIL: 'test@ralph.invalid',
    GIT_COMMITTER_NAME: 'ralph test',
    GIT_COMMITTER_EMAIL: 'test@ralph.invalid',
  };
  return {
    home,
    env,
    cleanup: () => rmSync(home, { recursive: true, force: true }),
  };
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the real `ralph` CLI to completion. */
export function ralph(args: string[], opts: { env: NodeJS.ProcessEnv; cwd?: string; input?: string; timeoutMs?: number }): Promise<RunResult> {
  return runCommand(process.execPath, [RALPH_BIN, ...args], opts);
}

export function runCommand(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; cwd?: string; input?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')} did not finish within ${opts.timeoutMs ?? 60_000} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    // A command that exits without reading its stdin (tmux new-session -d) must not fail the caller.
    child.stdin.on('error', () => {});
    // A child that exits before reading its input (a push refused at once) must not crash the test.
    child.stdin.on('error', () => {});
    child.stdin.end(opts.input ?? '');
  });
}

/**
 * Waits until `check` returns a truthy value. For state that has no event to await (a row in
 * another process's DB, a file another process writes): polls briefly, bounded by a deadline.
 */
export async function waitUntil<T>(
  check: () => T | Promise<T>,
  opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  for (;;) {
    const v = await check();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${opts.what ?? 'condition'}`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 25));
  }
}

/** Resolves when a child exits. */
export function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** The promise's value, or an error naming what did not happen within `ms` (for awaits with no bound of their own). */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * What a test prints when it returns early because something it needs is not here (a CLI, sshd, the
 * ziti CLI or SDK build, root): test/run.mjs counts each as skipped, not passed. Under RALPH_REQUIRE_*
 * the helpers that find those things throw instead, so nothing is skipped there.
 */
export const SKIP_MARK = 'RALPH_TEST_SKIPPED:';

/** Marks the running test as skipped (see SKIP_MARK); `return skipped('why')` ends it. */
export function skipped(why: string): void {
  console.log(`\n${SKIP_MARK} ${why}`);
}

/** Is a process with this pid alive? */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
