// A PTY run: one run of an agent (one iteration, or one attempt of it) in the agent's own terminal;
// keys go to it as typed. Its output goes into the loop's output; when it ends the runner learns its
// exit status, whether it promised completion, and its last error line. The orphan guard watches it
// from beside the terminal (agent-guard.ts). (The AgentRun interface it implements is in agent-run.ts.)

import pty from 'node-pty';
import { lastTellingLine } from '../agents/errors.js';
import { guardPtyAgent } from './agent-guard.js';
import { TAIL_CHARS, type AgentRun, type AgentRunResult, type RunOptions } from './agent-run.js';
import { CompletionDetector } from './completion.js';
import { EscapeStripper } from './escapes.js';
import { PtyInput } from './pty-input.js';
import { AgentProcesses, LEFTOVER_GRACE_MS, newRunMark, RUN_MARK } from './process-tree.js';
import { holdTerminalSide } from './pty-tail.js';

/** The agent in a real terminal. Completion is spotted in its output (not while a human types). */
export class PtyRun implements AgentRun {
  readonly done: Promise<AgentRunResult>;
  lastActivity = Date.now();
  private readonly proc: pty.IPty;
  private readonly procs: AgentProcesses;
  /** Where keys go: the PTY, at once (see pty-input.ts). */
  private readonly keys: PtyInput;
  private readonly detector = new CompletionDetector();
  /** The last chunks of output (at least TAIL_CHARS bytes of them), read only if the agent fails. */
  private tail: Buffer[] = [];
  private tailBytes = 0;
  private interactive: boolean;

  constructor(o: RunOptions) {
    this.interactive = o.interactive;
    // encoding null: the PTY's bytes as they are (history keeps characters whole), never decoded
    // into strings and encoded back on their way to the log and the clients.
    const mark = newRunMark();
    this.proc = pty.spawn(o.file, o.args, { name: 'xterm-256color', cols: o.cols, rows: o.rows, cwd: o.cwd, env: { ...o.env, [RUN_MARK]: mark }, encoding: null });
    this.procs = new AgentProcesses(this.proc.pid, mark);
    // The runner's sudden death hangs up the PTY, and that SIGHUP reaches the agent's session only:
    // a tool it started in a session of its own (setsid) would live on under init.
    const guard = guardPtyAgent(this.proc.pid, mark, (err) => o.writer.say(`cannot start the orphan guard (${err.message}): should the runner die, what the agent started in sessions of its own would run on`));
    const releaseTerminal = holdTerminalSide(this.proc);
    this.keys = new PtyInput(this.proc);
    // (node-pty's types say string; with encoding null its data events are Buffers.)
    (this.proc.onData as unknown as (listener: (data: Buffer) => void) => void)((data) => {
      this.lastActivity = Date.now();
      const chunk = o.writer.bytes(data);
      if (chunk === null) return;
      // Output produced while a human types is theirs, not the agent's verdict.
      if (!this.interactive) this.detector.push(chunk.buf);
      // Kept as it came (a reference per chunk, no copy): the hot path of a flood pays nothing for it.
      this.tail.push(chunk.buf);
      this.tailBytes += chunk.buf.length;
      while (this.tail.length > 1 && this.tailBytes - this.tail[0]!.length >= TAIL_CHARS) this.tailBytes -= this.tail.shift()!.length;
    });
    this.done = new Promise((resolve) => {
      this.proc.onExit(({ exitCode, signal }) => {
        this.procs.rootExited();
        // What it left running in sessions of its own (the hangup reached only its own session) is
        // ended as a stream agent's is: the next iteration, or the user, gets a clean box.
        this.procs.end(LEFTOVER_GRACE_MS);
        guard.release();
        this.keys.close();
        releaseTerminal();
        o.writer.endBytes();
        const failed = exitCode !== 0 || (signal ?? 0) !== 0;
        const line = failed ? lastTellingLine(new EscapeStripper().strip(Buffer.concat(this.tail)).toString('utf8')) : null;
        resolve({
          exitCode,
          signal: signal ?? 0,
          promised: this.detector.detected,
          usage: null,
          // Free text (a test runner's `FAIL test/credentials.test.ts`): the reason, never a verdict
          // on credentials or limits — only an adapter's structured events give those.
          error: line ? { text: line, errorKind: 'other', resetsAt: null } : null,
        });
      });
    });
  }

  input(data: string): void {
    this.lastActivity = Date.now();
    this.keys.write(data);
  }

  setInteractive(on: boolean): void {
    this.interactive = on;
  }

  resize(cols: number, rows: number): void {
    try {
      this.proc.resize(cols, rows);
    } catch {
      /* exited meanwhile */
    }
  }

  kill(signal: NodeJS.Signals): void {
    this.procs.signal(signal);
  }
}
