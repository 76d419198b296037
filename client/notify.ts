// The user's own notification command (`notify.command` in the config), run when a loop ends or
// pauses. It gets the loop in its environment, never on a command line: the program and its
// arguments come from the config as an array, so nothing a loop printed or was named can reach a shell.

import { spawn, type ChildProcess } from 'node:child_process';
import type { Config } from '../store/config.js';

/** What a notification says about a loop (the fields of `ralph status --json` it needs). */
export interface NotifiedLoop {
  id: string;
  name: string;
  status: string;
  reason: string | null;
  iteration: number;
  maxIterations: number;
  location: string;
  remote: string | null;
  /** While paused: when it goes on by itself. */
  pausedUntil?: string | null;
}

/** A notify command that runs longer than this is left to run on its own (it is not waited for). */
const NOTIFY_WAIT_MS = 10_000;

/** An environment value cannot hold a NUL byte (spawn refuses it); an agent's reason text may. */
const envValue = (text: string) => text.replaceAll('\0', '');

/** The environment a notify command sees for this loop. */
export function notifyEnv(loop: NotifiedLoop, base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return {
    ...base,
    RALPH_LOOP_ID: envValue(loop.id),
    RALPH_LOOP_NAME: envValue(loop.name),
    RALPH_LOOP_STATUS: envValue(loop.status),
    RALPH_LOOP_REASON: envValue(loop.reason ?? ''),
    RALPH_LOOP_ITERATION: String(loop.iteration),
    RALPH_LOOP_MAX_ITERATIONS: String(loop.maxIterations),
    RALPH_LOOP_LOCATION: envValue(loop.location === 'remote' ? (loop.remote ?? 'remote') : 'local'),
    RALPH_LOOP_PAUSED_UNTIL: envValue(loop.pausedUntil ?? ''),
  };
}

/**
 * Runs `notify.command` for a loop, if one is configured. Resolves with null when it ran and
 * exited 0 (or there is none), else with one line saying what went wrong; never rejects.
 */
export function runNotifyCommand(config: Pick<Config, 'notify'>, loop: NotifiedLoop): Promise<string | null> {
  const argv = config.notify?.command;
  if (!argv) return Promise.resolve(null);
  const [program, ...args] = argv as [string, ...string[]];
  return new Promise((resolve) => {
    let stderr = '';
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const settle = (problem: string | null) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      resolve(problem);
    };
    // stdout is ignored: in `ralph tui` it would scribble over the screen, in `ralph watch --json` over the JSON.
    let child: ChildProcess;
    try {
      child = spawn(program, args, { env: notifyEnv(loop), stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (err) {
      // spawn throws at once for what it cannot even try (a NUL byte in the config's arguments).
      return settle(`notify.command ${JSON.stringify(program)} could not run: ${(err as Error).message}`);
    }
    timer = setTimeout(() => {
      child.unref();
      child.stderr?.destroy();
      settle(null);
    }, NOTIFY_WAIT_MS);
    child.stderr!.on('data', (d: Buffer) => {
      if (stderr.length < 4096) stderr += d.toString('utf8');
    });
    child.on('error', (err) => settle(`notify.command ${JSON.stringify(program)} could not run: ${err.message}`));
    child.on('close', (code, signal) => {
      if (code === 0) return settle(null);
      const said = stderr.trim().split('\n').pop();
      settle(`notify.command ${JSON.stringify(program)} exited ${code ?? signal}${said ? `: ${said}` : ''}`);
    });
  });
}
