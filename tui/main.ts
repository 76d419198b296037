// Entry of `ralph tui` (loaded only when that command runs, with the renderer and the emulator).

import { writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { openLoopStore } from '../client/lookup.js';
import { readConfig, type Config } from '../store/config.js';
import { TuiApp, type TuiExit } from './app.js';
import type { Message } from './state.js';
import { colorsAllowed } from './style.js';

export class NotATerminalError extends Error {
  constructor() {
    super('tui needs a terminal (stdin and stdout a TTY); in scripts use ralph status --json or ralph watch --json');
    this.name = 'NotATerminalError';
  }
}

export async function runTui(opts: { timeout: number }): Promise<TuiExit> {
  const io = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };
  if (!io.stdin.isTTY || !io.stdout.isTTY) throw new NotATerminalError();
  const store = openLoopStore();
  let config: Config = { remotes: {} };
  let startMessage: Message | undefined;
  try {
    config = readConfig();
  } catch (err) {
    // The local loops can still be shown; remotes and notify.command wait for a readable config.
    startMessage = { text: `${(err as Error).message} (remotes and notify.command are off)`, tone: 'error' };
  }
  const app = new TuiApp({ io, store, config, color: colorsAllowed(), timeoutMs: opts.timeout, ...(startMessage ? { startMessage } : {}) });
  // An error nobody caught must not leave the terminal raw and on the alternate screen.
  const fatal = (err: unknown) => {
    app.restoreTerminal();
    process.stderr.write(`ralph: tui failed: ${err instanceof Error ? err.message : String(err)}\n`);
    if (process.env.RALPH_DEBUG && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
    process.exit(1);
  };
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);
  // RALPH_TUI_STATS=FILE: the event loop's delays while the TUI ran, as JSON at exit (for benchmarks:
  // tells a TUI that blocked from a machine that did not give it the CPU).
  const delays = process.env.RALPH_TUI_STATS ? monitorEventLoopDelay({ resolution: 5 }) : undefined;
  delays?.enable();
  try {
    return await app.run();
  } finally {
    if (delays) {
      delays.disable();
      const ms = (ns: number) => Math.round(ns / 1e4) / 100;
      writeFileSync(process.env.RALPH_TUI_STATS!, JSON.stringify({ p50: ms(delays.percentile(50)), p99: ms(delays.percentile(99)), max: ms(delays.max) }));
    }
    process.off('uncaughtException', fatal);
    process.off('unhandledRejection', fatal);
    store.db.close();
  }
}
