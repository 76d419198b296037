// The iteration driver. Each iteration runs the agent once in a real PTY over the task; the loop ends
// `completed` when the agent promised completion and prd.json agrees, `failed` at the iteration limit
// or after repeated agent failures, `stopped` on request. It keeps the loop's DB row current and
// tells its listeners (the RPC service) about every change.

import { EventEmitter } from 'node:events';
import { join } from 'node:path';
import pty from 'node-pty';
import type { HomePaths } from '../store/paths.js';
import type { LoopRow, LoopStatus, LoopStore } from '../store/loops.js';
import { agentCommand, type AgentCommand } from './agents.js';
import { CompletionDetector } from './completion.js';
import { LoopRefusedError } from './errors.js';
import { OutputHistory } from './history.js';
import { allPass, nextStory, openStories, readPrd, type Prd } from './prd.js';
import { writePromptFile } from './prompt.js';
import { PtyInput } from './pty-input.js';
import type { CompletedEvent, IterationEvent, LoopStatusResult, StateEvent } from './protocol.js';
import { ScreenMirror } from './screen.js';
import { taskFiles, type TaskFiles } from './task.js';

export const DEFAULT_COLS = 120;
export const DEFAULT_ROWS = 40;
/** Failed iterations in a row that fail the loop. */
export const MAX_FAILURES_IN_A_ROW = 3;
/** Output written to the log per write() under heavy output (see OutputHistory). */
const LOG_BATCH_BYTES = 64 * 1024;

export interface LoopRunnerOptions {
  store: LoopStore;
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
}

export interface LoopRunnerEvents {
  state: [StateEvent];
  iteration: [IterationEvent];
  completed: [CompletedEvent];
}

interface AgentExit {
  exitCode: number;
  signal: number;
  promised: boolean;
}

type Outcome = { status: LoopStatus; reason: string };

export class LoopRunner extends EventEmitter<LoopRunnerEvents> {
  readonly id: string;
  readonly history: OutputHistory;
  readonly screen: ScreenMirror;
  private readonly store: LoopStore;
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
  private stopRequest: { when: 'now' | 'after-iteration'; reason: string } | null = null;
  private agent: pty.IPty | null = null;
  /** Where write() sends keys: the running agent's PTY. */
  private input: PtyInput | null = null;
  private killTimer: NodeJS.Timeout | undefined;
  private readonly detector = new CompletionDetector();
  private atLineStart = true;
  private changeWaiters: Array<() => void> = [];
  private completion: CompletedEvent | null = null;

  constructor(opts: LoopRunnerOptions) {
    super();
    const { row, paths } = opts;
    if (row.taskDir === null) throw new Error(`loop ${row.id} has no task dir`);
    this.id = row.id;
    this.row = row;
    this.store = opts.store;
    this.files = taskFiles(row.taskDir);
    this.env = opts.env ?? process.env;
    this.agentSearchDirs = opts.agentSearchDirs ?? [join(paths.agents, 'node_modules', '.bin')];
    this.promptPath = join(paths.logs, `${row.id}.prompt.md`);
    this.stopGraceMs = opts.stopGraceMs ?? Number(process.env.RALPH_STOP_GRACE_MS || 3000);
    this.iteration = row.iteration;
    this.maxIterations = row.maxIterations;
    this.currentStory = row.currentStory;
    // Log writes batched (one write per 64 KiB or 10 ms instead of one per PTY read): the service
    // flushes before any event that tells a client the loop moved on.
    this.history = new OutputHistory(row.logPath ?? paths.logFor(row.id), {
      ...(opts.ringBytes ? { ringBytes: opts.ringBytes } : {}),
      logBatchBytes: LOG_BATCH_BYTES,
    });
    this.screen = new ScreenMirror(this.history, this.cols, this.rows);
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
    if (this.input === null) throw new LoopRefusedError('no agent is running right now (between iterations)');
    this.input.write(data);
  }

  resize(cols: number, rows: number): void {
    if (cols === this.cols && rows === this.rows) return;
    this.cols = cols;
    this.rows = rows;
    this.agent?.resize(cols, rows);
    this.screen.resize(cols, rows);
  }

  setInteractive(on: boolean): void {
    if (on === this.interactiveOn) return;
    if (on && this.ended) throw new LoopRefusedError('the loop has ended');
    this.interactiveOn = on;
    this.emitState();
    this.wake();
  }

  stop(when: 'now' | 'after-iteration', reason = 'stopped by request'): void {
    if (this.ended) return;
    if (when === 'now') {
      if (this.stopRequest?.when !== 'now') this.say(`stop requested: stopping now`);
      this.stopRequest = { when, reason };
      this.killAgent();
    } else if (this.stopRequest === null) {
      this.stopRequest = { when, reason };
      this.say(`stop requested: stopping when iteration ${this.iteration} ends`);
    }
    this.wake();
  }

  addIterations(n: number): number {
    if (this.ended) throw new LoopRefusedError('the loop has ended');
    this.maxIterations += n;
    this.store.update(this.id, { maxIterations: this.maxIterations });
    this.say(`iteration limit raised to ${this.maxIterations}`);
    this.emitState();
    return this.maxIterations;
  }

  /** Ends the agent (if any) without waiting; for a runner that must exit now. */
  dispose(): void {
    this.killAgent(true);
    this.screen.dispose();
    this.history.close();
  }

  // ---- the loop --------------------------------------------------------------------------

  private async iterate(): Promise<Outcome> {
    let failuresInARow = 0;
    for (;;) {
      if (this.stopRequest) {
        return { status: 'stopped', reason: this.stopRequest.when === 'now' ? this.stopRequest.reason : `stopped after iteration ${this.iteration} as requested` };
      }
      // A human is typing: the next iteration waits until they leave interactive mode.
      if (this.interactiveOn) {
        this.say(`waiting for interactive mode to end before iteration ${this.iteration + 1}`);
        while (this.interactiveOn && !this.pendingStop()) await this.nextChange();
        continue;
      }
      if (this.iteration >= this.maxIterations) {
        return { status: 'failed', reason: `reached the iteration limit (${this.maxIterations}) ${this.openStoriesText()}` };
      }
      this.iteration++;
      const prd = this.readPrdOrSay();
      const story = prd ? nextStory(prd) : undefined;
      this.currentStory = story?.id ?? null;
      this.store.update(this.id, { status: 'running', iteration: this.iteration, currentStory: this.currentStory });
      this.emit('iteration', { iteration: this.iteration, maxIterations: this.maxIterations, story: this.currentStory });
      this.emitState();
      this.say(`iteration ${this.iteration}/${this.maxIterations}` + (story ? ` — ${story.id}: ${story.title}` : ''));

      const exit = await this.runIteration();
      // (Read through a method: TypeScript would keep the narrowing from the top of the loop.)
      const stop = this.pendingStop();
      if (stop?.when === 'now') return { status: 'stopped', reason: stop.reason };

      if (exit.promised) {
        const after = this.readPrdOrSay();
        if (after && allPass(after)) {
          return { status: 'completed', reason: `all ${after.userStories.length} stories pass after ${this.iteration} iteration${this.iteration === 1 ? '' : 's'}` };
        }
        if (after) this.say(`agent said COMPLETE but ${this.countText(openStories(after).length)} still open; continuing`);
      }
      if (exit.exitCode !== 0 || exit.signal !== 0) {
        failuresInARow++;
        const how = exit.signal !== 0 ? `signal ${exit.signal}` : `exit code ${exit.exitCode}`;
        this.say(`agent failed (${how}); ${failuresInARow} failed iteration${failuresInARow === 1 ? '' : 's'} in a row`);
        if (failuresInARow >= MAX_FAILURES_IN_A_ROW) {
          return { status: 'failed', reason: `the agent failed ${failuresInARow} iterations in a row (last: ${how})` };
        }
      } else {
        failuresInARow = 0;
      }
    }
  }

  private async runIteration(): Promise<AgentExit> {
    let cmd: AgentCommand;
    try {
      const prompt = writePromptFile(this.promptPath, {
        // Looked up again each iteration: a prompt.md added (or removed) meanwhile counts.
        files: taskFiles(this.files.taskDir),
        workDir: this.row.workDir,
        iteration: this.iteration,
        maxIterations: this.maxIterations,
        loopId: this.id,
      });
      // Profiles take the prompt text as an argument; a custom command reads RALPH_PROMPT_FILE.
      cmd = agentCommand(this.row, prompt, this.agentSearchDirs, this.env);
    } catch (err) {
      this.say((err as Error).message);
      return { exitCode: 127, signal: 0, promised: false };
    }
    return this.runAgent(cmd);
  }

  private runAgent(cmd: AgentCommand): Promise<AgentExit> {
    this.detector.reset();
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.env)) if (v !== undefined) env[k] = v;
    Object.assign(env, {
      TERM: 'xterm-256color',
      RALPH_PROMPT_FILE: this.promptPath,
      RALPH_ITERATION: String(this.iteration),
      RALPH_LOOP_ID: this.id,
      RALPH_TASK_DIR: this.files.taskDir,
    });
    let agent: pty.IPty;
    try {
      // encoding null: the PTY's bytes as they are (history.appendBytes keeps characters whole), so
      // output is never decoded into strings and encoded back on its way to the log and the clients.
      agent = pty.spawn(cmd.file, cmd.args, { name: 'xterm-256color', cols: this.cols, rows: this.rows, cwd: this.row.workDir, env, encoding: null });
    } catch (err) {
      this.say(`cannot start the agent: ${(err as Error).message}`);
      return Promise.resolve({ exitCode: 127, signal: 0, promised: false });
    }
    this.agent = agent;
    this.input = new PtyInput(agent);
    // (node-pty's types say string; with encoding null its data events are Buffers.)
    (agent.onData as unknown as (listener: (data: Buffer) => void) => void)((data) => {
      const chunk = this.history.appendBytes(data);
      if (chunk === null) return;
      this.atLineStart = chunk.buf[chunk.buf.length - 1] === 0x0a;
      // Output produced while a human types is theirs, not the agent's verdict.
      if (!this.interactiveOn) this.detector.push(chunk.buf);
    });
    return new Promise((resolve) => {
      agent.onExit(({ exitCode, signal }) => {
        this.history.endBytes();
        clearTimeout(this.killTimer);
        this.killTimer = undefined;
        this.agent = null;
        this.input?.close();
        this.input = null;
        resolve({ exitCode, signal: signal ?? 0, promised: this.detector.detected });
      });
    });
  }

  /** SIGTERM to the agent's whole process group (the PTY made it a session leader), SIGKILL later. */
  private killAgent(now = false): void {
    const agent = this.agent;
    if (agent === null) return;
    const signalGroup = (sig: NodeJS.Signals) => {
      try {
        process.kill(-agent.pid, sig);
      } catch {
        /* already gone */
      }
    };
    if (now) {
      signalGroup('SIGKILL');
      return;
    }
    signalGroup('SIGTERM');
    if (this.killTimer === undefined) {
      this.killTimer = setTimeout(() => signalGroup('SIGKILL'), this.stopGraceMs);
      this.killTimer.unref();
    }
  }

  private finish(outcome: Outcome): CompletedEvent {
    if (this.completion) return this.completion;
    this.say(`loop ${outcome.status}: ${outcome.reason}`);
    this.status = outcome.status;
    this.reason = outcome.reason;
    this.interactiveOn = false;
    this.store.finish(this.id, outcome.status, outcome.reason, { iteration: this.iteration, currentStory: this.currentStory, maxIterations: this.maxIterations });
    this.endedAt = this.store.get(this.id)?.endedAt ?? new Date().toISOString();
    this.completion = { status: outcome.status, reason: outcome.reason, iteration: this.iteration, seq: this.history.endSeq };
    this.emitState();
    this.emit('completed', this.completion);
    return this.completion;
  }

  // ---- helpers ---------------------------------------------------------------------------

  private output(data: string): void {
    if (data === '') return;
    this.history.append(data);
    this.atLineStart = data.endsWith('\n');
  }

  /** One line of ralph's own in the output stream, on a line of its own. */
  private say(text: string): void {
    this.output(`${this.atLineStart ? '' : '\r\n'}[ralph] ${text}\r\n`);
  }

  private pendingStop(): { when: 'now' | 'after-iteration'; reason: string } | null {
    return this.stopRequest;
  }

  private readPrdOrSay(): Prd | null {
    try {
      return readPrd(this.files.prdPath);
    } catch (err) {
      this.say((err as Error).message);
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
