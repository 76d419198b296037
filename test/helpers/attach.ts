// Shared test helper: `ralph attach` as a user runs it, keys written to its stdin, its output
// collected; the waits name what they waited for and show what had arrived by then.
//
//   const a = attachProcess(id, env);
//   await a.stdout('ready>'); a.keys('i'); await a.stderr('interactive —');

import { spawn, type ChildProcess } from 'node:child_process';
import { RALPH_BIN, waitUntil } from './env.js';

export interface AttachProcess {
  child: ChildProcess;
  keys(data: string): void;
  /** Resolves once stdout holds `text` (or matches it). */
  stdout(text: string | RegExp, timeoutMs?: number): Promise<unknown>;
  stderr(text: string | RegExp, timeoutMs?: number): Promise<unknown>;
  /** Everything it printed so far. */
  output(): string;
  errors(): string;
}

export function attachProcess(id: string, env: NodeJS.ProcessEnv, opts: { cwd?: string; args?: string[] } = {}): AttachProcess {
  const child = spawn(process.execPath, [RALPH_BIN, 'attach', id, ...(opts.args ?? [])], { env, cwd: opts.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (x) => (out += x));
  child.stderr!.on('data', (x) => (err += x));
  child.stdin!.on('error', () => {});
  const seen = (where: () => string, text: string | RegExp, timeoutMs = 20_000) =>
    waitUntil(() => (typeof text === 'string' ? where().includes(text) : text.test(where())), { timeoutMs, what: String(text) }).catch((e: Error) => {
      throw new Error(`${e.message} from ralph attach; stdout ${JSON.stringify(out.slice(-2000))} stderr ${JSON.stringify(err.slice(-2000))}`);
    });
  return {
    child,
    keys: (data) => void child.stdin!.write(data),
    stdout: (text, timeoutMs) => seen(() => out, text, timeoutMs),
    stderr: (text, timeoutMs) => seen(() => err, text, timeoutMs),
    output: () => out,
    errors: () => err,
  };
}
