// Hosts one loop in this process: the runner, its RPC service, its DB row. Shared by the detached
// runner process (main.ts) and `ralph run --foreground` (foreground.ts).

import { openDb } from '../store/db.js';
import { PatientLoopStore } from '../store/patient-store.js';
import { ensurePrivateDir, type HomePaths } from '../store/paths.js';
import { LoopSetupError } from './errors.js';
import type { CompletedEvent } from './protocol.js';
import { leftoversEnded } from './process-tree.js';
import { LoopRunner } from './runner.js';
import { LoopService } from './service.js';

export interface HostOptions {
  /** Called once the socket listens and the row says who runs the loop. */
  onReady?: () => void;
  /** Also copy the loop's output here. */
  output?: NodeJS.WritableStream;
  /** Environment for the agent. Default: this process's. */
  env?: NodeJS.ProcessEnv;
  /** Initial terminal size of the agent's PTY. */
  size?: { cols: number; rows: number };
  /** SIGTERM / SIGINT / SIGHUP stop the loop now (rather than killing this process). Default true. */
  handleSignals?: boolean;
  /** At most this long serving clients still reading after the end (default: LoopService's, 60 s). */
  lingerMs?: number;
  log?: (line: string) => void;
  /** Hands the caller a way to stop the loop now, with the reason to record (foreground: its output is gone). */
  stopper?: (stop: (reason: string) => void) => void;
}

const STOP_SIGNALS: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP'];
const RUNNER_BUSY_TIMEOUT_MS = 1000;
/** After the end, how long the runner waits for a locked or full DB to take its final row. */
const SETTLE_ROW_MS = 5 * 60_000;
/** How often a log that could not be written is tried again. */
const LOG_RETRY_MS = 500;

/**
 * Waits until the log holds all output (after a failed write, once the disk takes it again), or all
 * it ever will (output lost meanwhile, see OutputHistory's logLost).
 */
async function logWritten(runner: LoopRunner, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!runner.history.retryLog()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, LOG_RETRY_MS));
  }
  return true;
}

export async function hostLoop(paths: HomePaths, loopId: string, opts: HostOptions = {}): Promise<CompletedEvent> {
  // A short busy timeout: a locked DB must not freeze the agent's output and the clients; the
  // patient store keeps such writes and retries them.
  const db = openDb(paths.db, { busyTimeoutMs: RUNNER_BUSY_TIMEOUT_MS });
  const log = opts.log ?? ((line: string) => process.stderr.write(`[ralph runner ${loopId}] ${line}\n`));
  const store = new PatientLoopStore(db, paths.db, log);
  let runner: LoopRunner | undefined;
  let service: LoopService | undefined;
  const onSignal = (sig: NodeJS.Signals) => runner?.stop('now', `the runner got ${sig}`);
  try {
    const row = store.get(loopId);
    if (!row) throw new LoopSetupError(`no loop ${loopId} in ${paths.db}`);
    if (row.status !== 'starting') throw new LoopSetupError(`loop ${loopId} is already ${row.status}; start a new one with ralph run`);
    try {
      ensurePrivateDir(paths.logs);
      ensurePrivateDir(paths.sockets);
      runner = new LoopRunner({ store, paths, row, log, ...(opts.env ? { env: opts.env } : {}) });
      if (opts.size) runner.resize(opts.size.cols, opts.size.rows);
      const socketPath = row.socketPath ?? paths.socketFor(loopId);
      service = await LoopService.start(runner, { socketPath, ...(opts.log ? { log: opts.log } : {}) });
      store.update(loopId, { pid: process.pid, socketPath, logPath: runner.history.logPath });
    } catch (err) {
      store.finish(loopId, 'failed', `the runner could not start: ${(err as Error).message}`);
      throw err;
    }
    // A log that cannot be written (disk full) ends the loop with the reason: output the log does
    // not hold would be lost to every later reader. What is pending is written once space returns.
    runner.history.on('logFailed', (err) => {
      const r = runner!;
      const why = `cannot write ${r.history.logPath} (${err.code ?? err.message}${err.code === 'ENOSPC' ? ': the disk is full' : ''})`;
      log(why);
      r.fail(`${why}; free some space and start the loop again`);
    });
    runner.history.on('logLost', (from) => {
      const h = runner!.history;
      log(`${h.logPath} ends at byte ${from}: output from there on (${h.endSeq - from} bytes so far) no longer fit in memory while the log could not be written, and is lost to the log`);
    });
    const output = opts.output;
    if (output) runner.history.on('append', (chunk) => output.write(chunk.data));
    if (opts.handleSignals ?? true) for (const sig of STOP_SIGNALS) process.on(sig, onSignal);
    opts.stopper?.((reason) => runner?.stop('now', reason));
    opts.onReady?.();
    const done = await runner.run();
    await service.drainAndClose(opts.lingerMs);
    if (!(await store.settled(SETTLE_ROW_MS))) log(`could not record the loop's end in the session DB: ${store.faultReason}`);
    if (!(await logWritten(runner, SETTLE_ROW_MS))) log(`the log still lacks the last output: ${runner.history.logFailure?.message}`);
    else if (runner.history.logLostFrom !== null) log(`${runner.history.logPath} holds the output up to byte ${runner.history.logLostFrom}; bytes ${runner.history.logLostFrom} to ${runner.history.endSeq} are lost`);
    return done;
  } finally {
    for (const sig of STOP_SIGNALS) process.off(sig, onSignal);
    await service?.close();
    runner?.dispose();
    store.close();
    db.close();
    // An agent's leftovers that were sent TERM get their KILL before this process may exit.
    await leftoversEnded();
  }
}
