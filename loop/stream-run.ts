// A stream run: one run of an agent (one iteration, or one attempt of it) that speaks JSON lines over
// pipes, under the orphan guard (agent-guard.ts) that ends it if the runner goes away: its events are
// rendered into the loop's output, and the user's line goes to it as a message through ralph's line
// editor. When it ends the runner learns its exit status, whether it promised completion, its usage,
// and its last error in its own words. (The AgentRun interface it implements is in agent-run.ts.)

import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import { lastTellingLine } from '../agents/errors.js';
import { EventRenderer } from '../agents/render.js';
import type { AgentEvent, RunUsage, StreamDialect } from '../agents/types.js';
import { addUsage } from '../store/loops.js';
import { spawnGuarded } from './agent-guard.js';
import { TAIL_CHARS, type AgentError, type AgentRun, type AgentRunResult, type RunOptions } from './agent-run.js';
import { CompletionDetector } from './completion.js';
import { LineEditor } from './line-editor.js';
import { AgentProcesses, LEFTOVER_GRACE_MS, newRunMark, RUN_MARK, signalGroup } from './process-tree.js';

/**
 * How long an agent may live on after its last turn has ended and its input is closed. Claude Code
 * exits within a fraction of a second then, unless a background task of its (`run_in_background`:
 * a dev server) still runs: 2.1.332 then waits for it, silent, to start a turn about it that nobody
 * would read; 2.1.197 waits 5 s, then exits leaving the task's process running. After this the
 * agent and what it started are ended, and the run is judged by that last turn.
 */
const AFTER_LAST_TURN_MS = 3000;

/** Longest stdout line taken from an agent (a tool result quoting a huge file); longer ones are cut. */
const MAX_EVENT_LINE = 32 * 1024 * 1024;
const INPUT_PROMPT = '\x1b[1;36m›\x1b[0m ';

/** The exit code a process gets when it could not be started at all. */
const spawnFailed = (exitCode: number) => exitCode === 127;

/** One turn's usage added to the run's so far; the model is the latest one named. */
function addRunUsage(sum: RunUsage | null, u: RunUsage): RunUsage {
  return sum === null ? { ...u } : { ...addUsage(sum, u), model: u.model ?? sum.model };
}

/**
 * An agent that speaks JSON lines. Its turn ends with a `turn-end` event; then, unless a user is
 * typing to it (interactive mode), its input is closed and it exits. An agent that takes no input
 * while it runs but can continue its session (`continueSession`) runs as a chain of processes: a line
 * typed during a turn waits, and when the process has ended it starts the next one with that line.
 */
export class StreamRun implements AgentRun {
  readonly done: Promise<AgentRunResult>;
  lastActivity = Date.now();
  /** The agent's current process; null between the processes of a session (waiting for a typed line). */
  private proc: ChildProcessWithoutNullStreams | null = null;
  /** The current process and what it started. */
  private procs: AgentProcesses | null = null;
  private readonly parse: (line: string) => AgentEvent[];
  private readonly renderer: EventRenderer;
  private readonly detector = new CompletionDetector();
  private readonly editor = new LineEditor();
  private finish!: (r: AgentRunResult) => void;
  private interactive: boolean;
  /** The agent is working on a turn (its input must stay open). */
  private turnActive = true;
  private inputEnded = false;
  private usage: RunUsage | null = null;
  private model: string | null = null;
  private error: AgentError | null = null;
  private stderrTail = '';
  private toldNoInput = false;
  /** The agent's session, as its `init` event named it (for `continueSession`). */
  private session: string | null = null;
  /** Lines typed while the current process works, for the next one. */
  private queued: string[] = [];
  /** The user interrupted the current process by signal. */
  private interruptedByUser = false;
  /** ralph is ending the run: no process is started after this one. */
  private stopping = false;
  /** ralph ended the current process because it outlived its last turn (AFTER_LAST_TURN_MS). */
  private endedAfterLastTurn = false;
  private ended = false;
  private last = { exitCode: 0, signal: 0 };
  /** Called when ralph has closed the current process's input after its last turn. */
  private onLastTurnOver: (() => void) | null = null;

  constructor(
    private readonly o: RunOptions,
    private readonly dialect: StreamDialect,
    private readonly agent: string,
  ) {
    this.interactive = o.interactive;
    this.parse = dialect.parser();
    this.renderer = new EventRenderer(agent);
    this.done = new Promise((resolve) => (this.finish = resolve));
    this.start(o.args, dialect.initialInput);
    if (this.interactive) this.drawInput();
  }

  input(data: string): void {
    this.lastActivity = Date.now();
    for (const action of this.editor.feed(data)) {
      if (action.kind === 'changed') {
        this.drawInput();
      } else if (action.kind === 'submit') {
        this.send(action.text);
      } else {
        this.interrupt();
      }
    }
  }

  setInteractive(on: boolean): void {
    if (on === this.interactive) return;
    this.interactive = on;
    if (on) {
      this.drawInput();
    } else {
      this.editor.clear();
      this.o.writer.hideInput();
      if (this.proc === null) this.end();
      else this.maybeEndInput();
    }
  }

  resize(): void {
    // Rendered lines wrap in the watcher's terminal; the agent has no terminal to resize.
  }

  kill(signal: NodeJS.Signals): void {
    this.stopping = true;
    if (this.procs === null) this.end();
    else this.procs.signal(signal);
  }

  /** Starts one process of the agent: the run's first, or the continuation of its session. */
  private start(args: string[], input: string | null): void {
    const { o, agent } = this;
    this.turnActive = true;
    this.interruptedByUser = false;
    this.stderrTail = '';
    this.inputEnded = false;
    this.endedAfterLastTurn = false;
    const mark = newRunMark();
    const proc = spawnGuarded(o.file, args, { cwd: o.cwd, env: { ...o.env, [RUN_MARK]: mark } });
    this.proc = proc;
    const procs = new AgentProcesses(proc.pid, mark);
    this.procs = procs;
    proc.stdin.on('error', () => {}); // it may exit before reading everything: its exit says why
    this.readLines(proc.stdout, (line) => this.onLine(line));
    this.readLines(proc.stderr, (line) => this.onStderr(line));
    if (input !== null) proc.stdin.write(input);
    // An agent that takes no input while it runs gets its input, then the end of it.
    if (input === null || !this.dialect.userMessage) this.endInput();
    let spawnError: Error | null = null;
    proc.on('error', (err) => (spawnError = err));
    let lingering: NodeJS.Timeout | undefined;
    proc.on('exit', () => {
      // The agent has exited (the guard exits right after it): end what it left behind.
      procs.rootExited();
      procs.end(LEFTOVER_GRACE_MS);
    });
    this.onLastTurnOver = () => {
      // Its tools as they are now, while the agent lives to be walked from: on its way out it may
      // leave them to init (Claude Code 2.1.197 leaves a background task's process).
      procs.look();
      clearTimeout(lingering);
      lingering = setTimeout(() => {
        if (this.stopping || this.proc !== proc) return;
        o.writer.say(`${agent} was still running ${AFTER_LAST_TURN_MS / 1000}s after its last turn (a background task?): ending it and what it started`);
        this.endedAfterLastTurn = true;
        procs.end(LEFTOVER_GRACE_MS, true);
      }, AFTER_LAST_TURN_MS);
    };
    proc.on('close', (code, signal) => {
      clearTimeout(lingering);
      procs.forgetIfGone();
      this.proc = null;
      this.procs = null;
      this.onLastTurnOver = null;
      this.turnActive = false;
      if (spawnError) o.writer.say(`cannot start ${agent}: ${(spawnError as Error).message}`);
      const exitCode = code ?? (spawnError ? 127 : 0);
      this.last = { exitCode, signal: signal ? (osConstants.signals[signal] ?? 1) : 0 };
      // How it went is what its last turn said, as its own exit would have (1 after a failed turn).
      if (this.endedAfterLastTurn) this.last = { exitCode: this.error ? 1 : 0, signal: 0 };
      const failed = this.last.exitCode !== 0 || this.last.signal !== 0;
      if (failed && this.interruptedByUser) {
        this.error = { text: `${agent} was interrupted (Esc)`, errorKind: 'other', resetsAt: null };
      } else if (failed && this.error === null) {
        // Free text, as a PTY agent's last line is: the reason only.
        const line = lastTellingLine(this.stderrTail);
        if (line) this.error = { text: line, errorKind: 'other', resetsAt: null };
      }
      this.afterProcess();
    });
  }

  /** A process ended: go on with the session if the user has something to say, or end the run. */
  private afterProcess(): void {
    const { writer } = this.o;
    const next = this.dialect.continueSession;
    if (this.stopping || !next || spawnFailed(this.last.exitCode)) return this.end();
    if (this.queued.length > 0) {
      const text = this.queued.join('\n');
      this.queued = [];
      if (this.session === null) {
        writer.hideInput();
        writer.say(`${this.agent} named no session to continue: your lines were not sent`);
        return this.end();
      }
      return this.continueWith(text);
    }
    if (this.interactive && this.session !== null) {
      // The user is at the keyboard: the session stays open for their next line.
      writer.hideInput();
      writer.say(`${this.agent} has stopped: type a message to go on with its session, or Ctrl-] to let the loop go on`);
      this.drawInput();
      return;
    }
    this.end();
  }

  private continueWith(text: string): void {
    const { args, input } = this.dialect.continueSession!(this.session!, text);
    // The run's verdict is the last turn's: this one starts with a clean slate.
    this.error = null;
    this.lastActivity = Date.now();
    this.start(args, input);
    this.drawInput();
  }

  private end(): void {
    if (this.ended) return;
    this.ended = true;
    this.o.writer.hideInput();
    const usage = this.usage && this.model && !this.usage.model ? { ...this.usage, model: this.model } : this.usage;
    this.finish({ ...this.last, promised: this.detector.detected, usage, error: this.error });
  }

  private send(text: string): void {
    const { writer } = this.o;
    const next = this.dialect.continueSession;
    if (this.dialect.userMessage && !this.inputEnded && this.proc !== null) {
      writer.hideInput();
      writer.line(`\x1b[1m› ${text}\x1b[0m`);
      this.proc.stdin.write(this.dialect.userMessage(text));
      this.turnActive = true;
    } else if (next && this.proc !== null) {
      writer.hideInput();
      writer.line(`\x1b[1m› ${text}\x1b[0m`);
      this.queued.push(text);
      writer.say(`${this.agent} takes it when its current turn ends (Esc interrupts the turn)`);
    } else if (next && this.session !== null && !this.ended) {
      writer.hideInput();
      writer.line(`\x1b[1m› ${text}\x1b[0m`);
      this.continueWith(text);
      return;
    } else {
      writer.hideInput();
      writer.say(`${this.agent} takes no messages while it runs; your line was not sent`);
    }
    this.drawInput();
  }

  private interrupt(): void {
    const { writer } = this.o;
    writer.hideInput();
    if (!this.turnActive || this.proc === null) {
      writer.say(`${this.agent} is not working on anything to interrupt; type a message, or Ctrl-] to let the loop go on`);
    } else if (this.dialect.interrupt && !this.inputEnded) {
      writer.say(`interrupting ${this.agent} (Esc)`);
      this.proc.stdin.write(this.dialect.interrupt());
    } else if (this.dialect.interruptSignal) {
      writer.say(`interrupting ${this.agent} (Esc)`);
      this.interruptedByUser = true;
      signalGroup(this.proc.pid, this.dialect.interruptSignal);
    } else {
      writer.say(`${this.agent} cannot be interrupted here`);
    }
    this.drawInput();
  }

  private drawInput(): void {
    if (!this.interactive) return;
    if (!this.dialect.userMessage && !this.dialect.continueSession && !this.toldNoInput) {
      this.toldNoInput = true;
      this.o.writer.say(`${this.agent} takes no input while it runs: what you type is not sent`);
    }
    this.o.writer.showInput(INPUT_PROMPT + this.editor.line);
  }

  private onLine(line: string): void {
    this.lastActivity = Date.now();
    for (const ev of this.parse(line)) {
      this.o.writer.pieces(this.renderer.render(ev));
      switch (ev.kind) {
        case 'init':
          this.model = ev.model ?? this.model;
          if (ev.session) this.session = ev.session;
          break;
        case 'text':
          this.detector.push(ev.text);
          break;
        case 'text-end':
          this.detector.push('\n');
          break;
        case 'error':
          this.error = { text: ev.text, errorKind: ev.errorKind, resetsAt: ev.resetsAt };
          break;
        case 'rate-limit':
          if (this.error?.errorKind === 'rate-limit') this.error.resetsAt ??= ev.resetsAt;
          break;
        case 'turn-end':
          if (ev.usage) this.usage = addRunUsage(this.usage, ev.usage);
          // The run's error is its last turn's: a turn that went well after a failed one clears it.
          this.error = ev.error;
          this.turnActive = false;
          this.maybeEndInput();
          break;
        default:
          break;
      }
    }
  }

  private onStderr(line: string): void {
    this.lastActivity = Date.now();
    if (line.trim() === '') return;
    this.stderrTail = (this.stderrTail + line + '\n').slice(-TAIL_CHARS);
    this.o.writer.pieces(this.renderer.render({ kind: 'notice', text: `[${this.agent}] ${line}` }));
  }

  /** The turn is over and nobody is typing: close the agent's input, so it finishes and exits. */
  private maybeEndInput(): void {
    if (this.interactive || this.turnActive || this.inputEnded || this.proc === null) return;
    this.endInput();
    this.onLastTurnOver?.();
  }

  private endInput(): void {
    if (this.inputEnded || this.proc === null) return;
    this.inputEnded = true;
    this.proc.stdin.end();
  }

  private readLines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
    let pending = '';
    let skipping = false;
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      let start = 0;
      for (;;) {
        const nl = chunk.indexOf('\n', start);
        if (nl === -1) break;
        const line = pending + chunk.slice(start, nl);
        pending = '';
        start = nl + 1;
        if (skipping) skipping = false;
        else onLine(line.endsWith('\r') ? line.slice(0, -1) : line);
      }
      if (!skipping) pending += chunk.slice(start);
      if (pending.length > MAX_EVENT_LINE) {
        this.o.writer.say(`${this.agent} wrote a line of more than ${MAX_EVENT_LINE >> 20} MiB; skipped`);
        pending = '';
        skipping = true;
      }
    });
    stream.on('end', () => {
      if (pending !== '' && !skipping) onLine(pending);
    });
  }
}
