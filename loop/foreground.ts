// `ralph run --foreground`: the same runner and socket as a detached loop, hosted in this process,
// with the output also copied to a stream (the user's terminal). Ctrl-C stops the loop (`stopped`).

import type { LoopStatus } from '../store/loops.js';
import type { HomePaths } from '../store/paths.js';
import { hostLoop } from './host.js';

export interface ForegroundOptions {
  /** Where to copy the loop's output (e.g. process.stdout). */
  output?: NodeJS.WritableStream;
  /** The agent's PTY size (e.g. the user's terminal size). Default 120x40. */
  size?: { cols: number; rows: number };
  env?: NodeJS.ProcessEnv;
  /** See HostOptions.stopper. */
  stopper?: (stop: (reason: string) => void) => void;
}

/** Runs a prepared loop (status `starting`) in this process; resolves with its final status. */
export async function runLoopInProcess(paths: HomePaths, loopId: string, opts: ForegroundOptions = {}): Promise<LoopStatus> {
  const done = await hostLoop(paths, loopId, {
    ...(opts.output ? { output: opts.output } : {}),
    ...(opts.size ? { size: opts.size } : {}),
    ...(opts.env ? { env: opts.env } : {}),
    ...(opts.stopper ? { stopper: opts.stopper } : {}),
    handleSignals: true,
    // The foreground terminal shows the output; diagnostics would garble it.
    log: () => {},
  });
  return done.status;
}
