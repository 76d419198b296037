// The iteration driver. Each iteration runs the agent once over the task (loop/iteration.ts); the
// loop ends `completed` when the agent promised completion and prd.json agrees, `failed` at the
// iteration limit, after repeated agent failures, when the agent cannot authenticate (or is out of
// credit) or after too many rate limits in a row, `stopped` on request. A rate or usage limit pauses
// it (`paused`) until the limit lifts, without using up an iteration. It keeps the loop's DB rows
// current and tells its listeners (the RPC service) about every change.

import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import { isBillingError } from '../agents/errors.js';
import type { IterationStore } from '../store/iterations.js';
import { MAX_ITERATIONS } from '../store/iteration-limit.js';
import type { HomePaths } from '../store/paths.js';
import { addUsage, usageOf, type LoopRow, type LoopStatus, type UsageTotals } from '../store/loops.js';
import type { PatientLoopStore } from '../store/patient-store.js';
import { formatDuration } from '../store/duration.js';
import { LoopRefusedError } from './errors.js';
import { OutputHistory } from './history.js';
import { Iteration, type IterationReport } from './iteration.js';
import { OutputWriter } from './output-writer.js';
import { allPass, nextStory, openStories, readPrd, type Prd } from './prd.js';
import type { CompletedEvent, IterationEvent, LoopStatusResult, StateEvent } from './protocol.js';
import { ScreenMirror } from './screen.js';
import { taskFiles, type TaskFiles } from './task.js';
import { usageLine } from './usage-line.js';

export const DEFAULT_COLS = 120;
export const DEFAULT_ROWS = 40;
/** Failed iterations in a row that fail the loop. */
export const MAX_FAILURES_IN_A_ROW = 3;
export const DEFAULT_ITERATION_TIMEOUT_MS = 60 * 60_000;
export const DEFAULT_STALL_TIMEOUT_MS = 20 * 60_000;
/** First wait after a rate limit that says nothing of when it lifts; doubled each time in a row. */
const RATE_LIMIT_BACKOFF_MS = 60_000;
const RATE_LIMIT_BACKOFF_MAX_MS = 30 * 60_000;
/** Slack after a reported reset time, so the limit has really lifted. */
const RESET_SLACK_MS = 5_000;
/** A reported reset time further off is waited for only this long (a misread time, a wrong clock). */
export const MAX_RESET_WAIT_MS = 7 * 86_400_000;
/**
 * Rate limits in a row (no run in between got past its limit) that fail the loop: a limit that comes
 * back every time it should have lifted is not one that waiting fixes.
 */
export const MAX_LIMITS_IN_A_ROW = 10;
/** setTimeout's longest delay (a longer one fires at once): longer waits are slept in slices. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Output written to the log per write() under heavy output (see OutputHistory). */
const LOG_BATCH_BYTES = 64 * 1024;

export interface LoopRunnerOptions {
  /** The loop's row and (through `store.iterations`) its runs, written in order even while the DB is locked. */
  store: PatientLoopStore;
  paths: HomePaths;
  /** The loop's row as prepared (status `starting`). */
  row: LoopRow;
  /** Environment the agent inherits (RALPH_* variables are added). Default: this process's. */
  env?: NodeJS.ProcessEnv;
  /** Extra directories searched for agent CLIs after PATH. Default: $RALPH_HOME/agents/node_modules/.bin. */
  agentSearchDirs?: string[];
  /** Between SIGTERM and SIGKILL when stopping an agent. Default: RALPH_STOP_GRACE_MS or 3 s. */
  stopGraceMs?: number;
  ringBytes?: number;
  /** The runner's own log (stderr by default). */
  log?: (line: string) => void;
}

export interface LoopRunnerEvents {
  state: [StateEvent];
  iteration: [IterationEvent];
  completed: [CompletedEvent];
}

type Outcome = { status: LoopStatus; reason: string };

function envMs(name: string, fallback: number): number {
  const v = process.env[name];
  return v && /^\d+$/.test(v) ? Number(v) : fallback;
}

/**
 * Until when the loop waits after its `limitsInARow`-th rate limit in a row (counted from 0): the
 * reset time the agent reported plus some slack, at most MAX_RESET_WAIT_MS away, else a backoff
 * that doubles from `firstBackoffMs` up to RATE_LIMIT_BACKOFF_MAX_MS.
 */
export function rateLimitUntil(resetsAt: number | null, limitsInARow: number, now: number, firstBackoffMs = RATE_LIMIT_BACKOFF_MS): number {
  if (resetsAt !== null) return Math.min(resetsAt + RESET_SLACK_MS, now + MAX_RESET_WAIT_MS);
  return now + Math.min(firstBackoffMs * 2 ** limitsInARow, Math.max(firstBackoffMs, RATE_LIMIT_BACKOFF_MAX_MS));
}

/** The next timer's delay on the way to `untilMs`: never more than setTimeout can take. */
export function timerDelay(untilMs: number, now: number): number {
  return Math.max(0, Math.min(untilMs - now, MAX_TIMER_MS));
}

function clock(epochMs: number): string {
  return new Date(epochMs).toTimeString().slice(0, 8);
}

export class LoopRunner extends EventEmitter<LoopRunnerEvents> {
  readonly id: string;
  readonly history: OutputHistory;
  readonly screen: ScreenMirror;
  private readonly writer: OutputWriter;
  private readonly store: PatientLoopStore;
  private readonly iterations: IterationStore;
  private readonly row: LoopRow;
  private readonly files: TaskFiles;
  private readonly env: NodeJS.ProcessEnv;
  private readonly agentSearchDirs: string[];
  private readonly promptPath: string;
  private readonly stopGraceMs: number;
  private status: LoopStatus = 'starting';
  private iteration: number;
  private maxIterations: number;
  private currentStory: string | null;
  private interactiveOn = false;
  private cols = DEFAULT_COLS;
  private rows = DEFAULT_ROWS;
  private reason: string | null = null;
  private endedAt: string | null = null;
  private pausedUntil: string | null = null;
  private usage: UsageTotals;
  private stopRequest: { when: 'now' | 'after-iteration'; reason: string; status?: 'failed' } | null = null;
  private current: Iteration | null = null;
  /** While the loop's own agent is rate-limited (epoch ms): the fallback agent runs instead. */
  private primaryLimitedUntil = 0;
  private changeWaiters: Array<() => void> = [];
  private completion: CompletedEvent | null = null;

  constructor(opts: LoopRunnerOptions) {
    super();
    const { row, paths } = opts;
    if (row.taskDir === null) throw new Error(`loop ${row.id} has no task dir`);
    this.id = row.id;
    this.row = row;
    this.store = opts.store;
    this.iterations = opts.store.iterations;
    this.files = taskFiles(row.taskDir);
    this.env = opts.env ?? process.env;
    this.agentSearchDirs = opts.agentSearchDirs ?? [paths.agentsBin];
    this.promptPath = join(paths.logs, `${row.id}.prompt.md`);
    this.stopGraceMs = opts.stopGraceMs ?? envMs('RALPH_STOP_GRACE_MS', 3000);
    this.iteration = row.iteration;
    this.maxIterations = row.maxIterations;
    this.currentStory = row.currentStory;
    this.usage = usageOf(row);
    // Log writes batched (one write per 64 KiB or 10 ms instead of one per PTY read): the service
    // flushes before any event that tells a client the loop moved on.
    this.history = new OutputHistory(row.logPath ?? paths.logFor(row.id), {
      ...(opts.ringBytes ? { ringBytes: opts.ringBytes } : {}),
      logBatchBytes: LOG_BATCH_BYTES,
    });
    this.writer = new OutputWriter(this.history);
    this.screen = new ScreenMirror(this.history, this.cols, this.rows, opts.log ? { log: opts.log } : {});
  }

  get interactive(): boolean {
    return this.interactiveOn;
  }

  get ended(): boolean {
    return this.completion !== null;
  }

  statusResult(): LoopStatusResult {
    return {
      id: this.row.id,
      name: this.row.name,
      status: this.status,
      iteration: this.iteration,
      maxIterations: this.maxIterations,
      currentStory: this.currentStory,
      agent: this.row.agent,
      interactive: this.interactiveOn,
      seq: this.history.endSeq,
      cols: this.cols,
      rows: this.rows,
      workDir: this.row.workDir,
      startedAt: this.row.startedAt,
      endedAt: this.endedAt,
      reason: this.reason,
      pid: process.pid,
      pausedUntil: this.pausedUntil,
      usage: this.usage,
    };
  }

  state(): StateEvent {
    return {
      status: this.status,
      iteration: this.iteration,
      maxIterations: this.maxIterations,
      currentStory: this.currentStory,
      interactive: this.interactiveOn,
      reason: this.reason,
      pausedUntil: this.pausedUntil,
      usage: this.usage,
    };
  }

  get size(): { cols: number; rows: number } {
    return { cols: this.cols, rows: this.rows };
  }

  /** Runs the loop to its end; resolves with the final event (also emitted as `completed`). */
  async run(): Promise<CompletedEvent> {
    this.status = 'running';
    this.store.update(this.id, { status: 'running', pid: process.pid });
    this.emitState();
    let outcome: Outcome;
    try {
      outcome = await this.iterate();
    } catch (err) {
      outcome = { status: 'failed', reason: `runner error: ${(err as Error).message}` };
    }
    return this.finish(outcome);
  }

  // ---- requests from clients -------------------------------------------------------------

  write(data: string): void {
    if (!this.interactiveOn) throw new LoopRefusedError('not in interactive mode: send interactive {on: true} first');
    if (this.current === null || !this.current.running) throw new LoopRefusedError('no agent is running right now (between iterations)');
    this.current.input(data);
  }

  resize(cols: number, rows: number): void {
    if (cols === this.cols && rows === this.rows) return;
    this.cols = cols;
    this.rows = rows;
    this.current?.resize(cols, rows);
    this.screen.resize(cols, rows);
  }

  setInteractive(on: boolean): void {
    if (on === this.interactiveOn) return;
    if (on && this.ended) throw new LoopRefusedError('the loop has ended');
    this.interactiveOn = on;
    this.current?.setInteractive(on);
    this.emitState();
    this.wake();
  }

  stop(when: 'now' | 'after-iteration', reason = 'stopped by request'): void {
    if (this.ended) return;
    if (when === 'now') {
      if (this.stopRequest?.when !== 'now') this.writer.say(`stop requested: stopping now`);
      this.stopRequest = { when, reason };
      this.current?.end('stopped', reason);
    } else if (this.stopRequest === null) {
      this.stopRequest = { when, reason };
      this.writer.say(`stop requested: stopping when iteration ${this.iteration} ends`);
    }
    this.wake();
  }

  /** Ends the loop now as failed, its agent at once (the runner cannot go on: its log cannot be written). */
  fail(reason: string): void {
    if (this.ended) return;
    this.stopRequest = { when: 'now', reason, status: 'failed' };
    // No grace: whatever the agent prints meanwhile only fills memory the log cannot take.
    this.current?.end('stopped', reason, true);
    this.wake();
  }

  addIterations(n: number): number {
    if (this.ended) throw new LoopRefusedError('the loop has ended');
    if (this.maxIterations + n > MAX_ITERATIONS) {
      const room = MAX_ITERATIONS - this.maxIterations;
      throw new LoopRefusedError(
        `a loop runs at most ${MAX_ITERATIONS} iterations and this one may already run ${this.maxIterations}, so ${room === 0 ? 'it cannot be extended' : `at most ${room} more`}`,
      );
    }
    this.maxIterations += n;
    this.store.update(this.id, { maxIterations: this.maxIterations });
    this.writer.say(`iteration limit raised to ${this.maxIterations}`);
    this.emitState();
    this.wake();
    return this.maxIterations;
  }

  /** Ends the agent (if any) without waiting; for a runner that must exit now. */
  dispose(): void {
    this.current?.end('stopped', 'the runner is exiting', true);
    this.screen.dispose();
    this.history.close();
  }

  // ---- the loop --------------------------------------------------------------------------

  private async iterate(): Promise<Outcome> {
    let failuresInARow = 0;
    let limitsInARow = 0;
    /** Why the last iteration failed, while the one after has not gone well. */
    let lastFailure: string | null = null;
    for (;;) {
      if (this.stopRequest) {
        return { status: this.stopRequest.status ?? 'stopped', reason: this.stopRequest.when === 'now' ? this.stopRequest.reason : `stopped after iteration ${this.iteration} as requested` };
      }
      // A human is typing: the next iteration waits until they leave interactive mode.
      if (this.interactiveOn) {
        this.writer.say(`waiting for interactive mode to end before iteration ${this.iteration + 1}`);
        while (this.interactiveOn && !this.pendingStop()) await this.nextChange();
        continue;
      }
      if (this.iteration >= this.maxIterations) {
        const last = lastFailure ? `; last iteration: ${lastFailure}` : '';
        return { status: 'failed', reason: `reached the iteration limit (${this.maxIterations}) ${this.openStoriesText()}${last}` };
      }
      this.iteration++;
      const prd = this.readPrdOrSay();
      const story = prd ? nextStory(prd) : undefined;
      this.currentStory = story?.id ?? null;
      const agent = this.agentNow();
      this.store.update(this.id, { status: 'running', iteration: this.iteration, currentStory: this.currentStory });
      this.emit('iteration', { iteration: this.iteration, maxIterations: this.maxIterations, story: this.currentStory, agent: agent.agent });
      this.emitState();
      const fallbackNote = agent.agent !== this.row.agent ? ` (${agent.agent}, while ${this.row.agent} is rate-limited)` : '';
      this.writer.say(`iteration ${this.iteration}/${this.maxIterations}` + (story ? ` — ${story.id}: ${story.title}` : '') + fallbackNote);

      const report = await this.runIteration(agent);
      // (Read through a method: TypeScript would keep the narrowing from the top of the loop.)
      const stop = this.pendingStop();
      if (stop?.when === 'now') return { status: stop.status ?? 'stopped', reason: stop.reason };

      if (report.outcome === 'rate-limited') {
        // Not the agent's fault, and not the task's: the iteration is not used up.
        this.iteration--;
        this.store.update(this.id, { iteration: this.iteration });
        const until = rateLimitUntil(report.error?.resetsAt ?? null, limitsInARow, Date.now(), envMs('RALPH_RATE_LIMIT_BACKOFF_MS', RATE_LIMIT_BACKOFF_MS));
        limitsInARow++;
        if (limitsInARow >= MAX_LIMITS_IN_A_ROW) {
          return { status: 'failed', reason: `rate-limited ${limitsInARow} times in a row without the limit lifting (last: ${report.agent}: ${report.reason}); check the account's limits, then start the loop again` };
        }
        const why = `${report.agent} is rate-limited: ${report.reason}`;
        if (this.row.fallbackAgent === null) {
          await this.pause(until, why);
        } else if (report.agent === this.row.agent) {
          this.primaryLimitedUntil = until;
          this.writer.say(`${why}; running ${this.row.fallbackAgent} until ${clock(until)}`);
        } else {
          // The fallback is limited too: wait for whichever comes back first.
          await this.pause(Math.min(until, this.primaryLimitedUntil), why);
        }
        continue;
      }
      limitsInARow = 0;

      if (report.promised) {
        const after = this.readPrdOrSay();
        if (after && allPass(after)) {
          return { status: 'completed', reason: `all ${after.userStories.length} stories pass after ${this.iteration} iteration${this.iteration === 1 ? '' : 's'}` };
        }
        if (after) this.writer.say(`agent said COMPLETE but ${this.countText(openStories(after).length)} still open; continuing`);
      }
      if (report.outcome === 'ok') {
        failuresInARow = 0;
        lastFailure = null;
        continue;
      }
      lastFailure = report.reason;
      // Retrying cannot fix credentials: say so now rather than after three more failures.
      if (report.error?.errorKind === 'auth') {
        const what = isBillingError(report.error.text) ? 'is out of credit' : 'cannot authenticate';
        return { status: 'failed', reason: `${report.agent} ${what}: ${report.error.text}` };
      }
      failuresInARow++;
      this.writer.say(`iteration ${this.iteration} failed (${report.reason}); ${failuresInARow} failed iteration${failuresInARow === 1 ? '' : 's'} in a row`);
      if (failuresInARow >= MAX_FAILURES_IN_A_ROW) {
        return { status: 'failed', reason: `the agent failed ${failuresInARow} iterations in a row (last: ${report.reason})` };
      }
    }
  }

  /** The loop's agent, or its fallback while the loop's own agent is rate-limited. */
  private agentNow(): { agent: string; agentCmd: string | null } {
    if (this.row.fallbackAgent !== null && Date.now() < this.primaryLimitedUntil) return { agent: this.row.fallbackAgent, agentCmd: null };
    return { agent: this.row.agent, agentCmd: this.row.agentCmd };
  }

  private async runIteration(agent: { agent: string; agentCmd: string | null }): Promise<IterationReport> {
    const iteration = new Iteration({
      loopId: this.id,
      iteration: this.iteration,
      maxIterations: this.maxIterations,
      agent,
      promptPath: this.promptPath,
      // Looked up again each iteration: a prompt.md added (or removed) meanwhile counts.
      files: taskFiles(this.files.taskDir),
      workDir: this.row.workDir,
      env: this.env,
      agentSearchDirs: this.agentSearchDirs,
      cols: this.cols,
      rows: this.rows,
      interactive: this.interactiveOn,
      writer: this.writer,
      iterationTimeoutMs: this.row.iterationTimeoutMs ?? DEFAULT_ITERATION_TIMEOUT_MS,
      stallTimeoutMs: this.row.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS,
      stopGraceMs: this.stopGraceMs,
    });
    const started = Date.now();
    const recordId = this.iterations.start(this.id, this.iteration, agent.agent, this.currentStory);
    this.current = iteration;
    let report: IterationReport;
    try {
      report = await iteration.start();
    } finally {
      this.current = null;
    }
    const u = report.usage;
    this.iterations.finish(recordId, {
      model: u?.model ?? null,
      outcome: report.outcome,
      exitCode: report.exitCode,
      reason: report.reason,
      inputTokens: u?.inputTokens ?? null,
      outputTokens: u?.outputTokens ?? null,
      cacheReadTokens: u?.cacheReadTokens ?? null,
      cacheWriteTokens: u?.cacheWriteTokens ?? null,
      costUsd: u?.costUsd ?? null,
    });
    if (u !== null) {
      this.usage = addUsage(this.usage, u);
      this.store.updateUsageTotals(this.id);
    }
    this.writer.say(`iteration ${this.iteration} ${report.outcome === 'ok' ? 'done' : report.outcome} in ${formatDuration(Date.now() - started)}${u ? `: ${usageLine(u)}` : ''}`);
    this.emitState();
    return report;
  }

  /** Waits until `untilMs` (or a stop) with the loop `paused`, then goes on. */
  private async pause(untilMs: number, why: string): Promise<void> {
    this.status = 'paused';
    this.pausedUntil = new Date(untilMs).toISOString();
    this.reason = `${why}; going on at ${clock(untilMs)}`;
    this.store.update(this.id, { status: 'paused', pausedUntil: this.pausedUntil, reason: this.reason });
    this.writer.say(`paused: ${this.reason} (in ${formatDuration(untilMs - Date.now())}); no iteration is used meanwhile`);
    this.emitState();
    while (Date.now() < untilMs && !this.pendingStop()) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.nextChange(), new Promise<void>((resolve) => (timer = setTimeout(resolve, timerDelay(untilMs, Date.now()))))]);
      clearTimeout(timer);
    }
    this.status = 'running';
    this.pausedUntil = null;
    this.reason = null;
    this.store.update(this.id, { status: 'running', pausedUntil: null, reason: null });
    if (!this.pendingStop()) this.writer.say('the rate limit should have lifted: going on');
    this.emitState();
  }

  private finish(outcome: Outcome): CompletedEvent {
    if (this.completion) return this.completion;
    this.writer.say(`loop ${outcome.status}: ${outcome.reason}`);
    this.status = outcome.status;
    this.reason = outcome.reason;
    this.pausedUntil = null;
    this.interactiveOn = false;
    const endedAt = new Date().toISOString();
    const recorded = this.store.finish(this.id, outcome.status, outcome.reason, {
      iteration: this.iteration,
      currentStory: this.currentStory,
      maxIterations: this.maxIterations,
      pausedUntil: null,
      endedAt,
    });
    this.endedAt = recorded ? endedAt : (this.storedEndedAt() ?? endedAt);
    this.completion = { status: outcome.status, reason: outcome.reason, iteration: this.iteration, seq: this.history.endSeq };
    this.emitState();
    this.emit('completed', this.completion);
    return this.completion;
  }

  // ---- helpers ---------------------------------------------------------------------------

  /** When the row says the loop ended (someone else finished it first), if the DB can say now. */
  private storedEndedAt(): string | null {
    try {
      return this.store.get(this.id)?.endedAt ?? null;
    } catch {
      return null;
    }
  }

  private pendingStop(): { when: 'now' | 'after-iteration'; reason: string; status?: 'failed' } | null {
    return this.stopRequest;
  }

  private readPrdOrSay(): Prd | null {
    try {
      return readPrd(this.files.prdPath);
    } catch (err) {
      this.writer.say((err as Error).message);
      return null;
    }
  }

  private openStoriesText(): string {
    try {
      const prd = readPrd(this.files.prdPath);
      const open = openStories(prd).length;
      return open === 0 ? `with every story passing but no completion promise` : `with ${open} of ${prd.userStories.length} stories still open`;
    } catch (err) {
      return `(${(err as Error).message})`;
    }
  }

  private countText(n: number): string {
    return `${n} ${n === 1 ? 'story' : 'stories'}`;
  }

  private emitState(): void {
    this.emit('state', this.state());
  }

  private nextChange(): Promise<void> {
    return new Promise((resolve) => this.changeWaiters.push(resolve));
  }

  private wake(): void {
    for (const w of this.changeWaiters.splice(0)) w();
  }
}
