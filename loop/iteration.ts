// One iteration's agent run, from the prompt file to a verdict: starts the agent the loop's profile
// says (a PTY or a JSON stream), passes the user's keys on, enforces the iteration and stall
// timeouts, ends the agent on request, and says how the run went in the runner's terms.

import { agentCommand, type AgentCommand } from '../agents/registry.js';
import type { RunUsage } from '../agents/types.js';
import { formatDuration } from '../store/duration.js';
import type { IterationOutcome } from '../store/iterations.js';
import type { AgentError, AgentRun, AgentRunResult } from './agent-run.js';
import type { OutputWriter } from './output-writer.js';
import { writePromptFile } from './prompt.js';
import { PtyRun } from './pty-run.js';
import { StreamRun } from './stream-run.js';
import type { TaskFiles } from './task.js';

export interface IterationSetup {
  loopId: string;
  iteration: number;
  maxIterations: number;
  /** The profile to run (or the loop's custom command). */
  agent: { agent: string; agentCmd: string | null };
  promptPath: string;
  files: TaskFiles;
  workDir: string;
  env: NodeJS.ProcessEnv;
  agentSearchDirs: string[];
  cols: number;
  rows: number;
  interactive: boolean;
  writer: OutputWriter;
  iterationTimeoutMs: number;
  stallTimeoutMs: number;
  stopGraceMs: number;
}

export interface IterationReport {
  /** The profile that ran, or `custom`. */
  agent: string;
  exitCode: number;
  signal: number;
  promised: boolean;
  outcome: IterationOutcome;
  /** Why it did not go well, in one line (the agent's own words where it gave any); null when it did. */
  reason: string | null;
  /** The agent's error as it classified it (auth, rate limit, …), when it reported one. */
  error: AgentError | null;
  usage: RunUsage | null;
}

/** How often the watchdog looks at the clock, at most (shorter timeouts are checked more often). */
const WATCHDOG_MS = 1000;

export class Iteration {
  private run: AgentRun | null = null;
  private killTimer: NodeJS.Timeout | undefined;
  private interactive: boolean;
  /** Set when ralph ended the run itself: a timeout, a stall, or a stop. */
  private endedBy: { outcome: IterationOutcome; reason: string } | null = null;

  constructor(private readonly s: IterationSetup) {
    this.interactive = s.interactive;
  }

  get running(): boolean {
    return this.run !== null;
  }

  async start(): Promise<IterationReport> {
    const s = this.s;
    let cmd: AgentCommand;
    try {
      const prompt = writePromptFile(s.promptPath, {
        files: s.files,
        workDir: s.workDir,
        iteration: s.iteration,
        maxIterations: s.maxIterations,
        loopId: s.loopId,
      });
      // Profiles take the prompt text (as an argument or a first message); a custom command reads RALPH_PROMPT_FILE.
      cmd = agentCommand(s.agent, prompt, s.agentSearchDirs, s.env);
    } catch (err) {
      const reason = (err as Error).message;
      s.writer.say(reason);
      return { agent: s.agent.agent, exitCode: 127, signal: 0, promised: false, outcome: 'failed', reason, error: null, usage: null };
    }
    let result: AgentRunResult;
    try {
      this.run = this.launch(cmd);
    } catch (err) {
      const reason = `cannot start ${cmd.agent}: ${(err as Error).message}`;
      s.writer.say(reason);
      return { agent: cmd.agent, exitCode: 127, signal: 0, promised: false, outcome: 'failed', reason, error: null, usage: null };
    }
    const watchdog = this.watch(this.run);
    try {
      result = await this.run.done;
    } finally {
      clearInterval(watchdog);
      clearTimeout(this.killTimer);
      this.run = null;
    }
    return this.verdict(cmd.agent, result);
  }

  input(data: string): void {
    this.run?.input(data);
  }

  setInteractive(on: boolean): void {
    this.interactive = on;
    this.run?.setInteractive(on);
  }

  resize(cols: number, rows: number): void {
    this.run?.resize(cols, rows);
  }

  /** Ends the agent: SIGTERM to its process group, SIGKILL after the grace period (at once with `now`). */
  end(outcome: IterationOutcome, reason: string, now = false): void {
    this.endedBy ??= { outcome, reason };
    const run = this.run;
    if (run === null) return;
    if (now) {
      run.kill('SIGKILL');
      return;
    }
    run.kill('SIGTERM');
    if (this.killTimer === undefined) {
      this.killTimer = setTimeout(() => run.kill('SIGKILL'), this.s.stopGraceMs);
      this.killTimer.unref();
    }
  }

  private launch(cmd: AgentCommand): AgentRun {
    const s = this.s;
    const env: Record<string, string> = {};
    // The profile's defaults first: what the user set in their environment wins.
    for (const [k, v] of Object.entries(cmd.envDefaults)) env[k] = v;
    for (const [k, v] of Object.entries(s.env)) if (v !== undefined) env[k] = v;
    Object.assign(env, {
      // The agent's directory, as a shell started there would say (opencode takes PWD over its cwd).
      PWD: s.workDir,
      TERM: 'xterm-256color',
      RALPH_PROMPT_FILE: s.promptPath,
      RALPH_ITERATION: String(s.iteration),
      RALPH_LOOP_ID: s.loopId,
      RALPH_TASK_DIR: s.files.taskDir,
    });
    const o = { file: cmd.file, args: cmd.launch.args, cwd: s.workDir, env, cols: s.cols, rows: s.rows, writer: s.writer, interactive: this.interactive };
    return cmd.launch.mode === 'pty' ? new PtyRun(o) : new StreamRun(o, cmd.launch.dialect, cmd.agent);
  }

  /**
   * The iteration and stall timeouts. Time spent in interactive mode does not count: a human is
   * driving the agent then, and the stall clock starts again when they leave.
   */
  private watch(run: AgentRun): NodeJS.Timeout {
    const s = this.s;
    let activeMs = 0;
    let last = Date.now();
    let quietSince = run.lastActivity;
    const period = Math.max(20, Math.min(WATCHDOG_MS, Math.floor(Math.min(s.iterationTimeoutMs, s.stallTimeoutMs) / 20)));
    const timer = setInterval(() => {
      const now = Date.now();
      if (this.interactive) {
        last = now;
        quietSince = now;
        return;
      }
      activeMs += now - last;
      last = now;
      quietSince = Math.max(quietSince, run.lastActivity);
      if (this.endedBy !== null) return;
      if (activeMs >= s.iterationTimeoutMs) {
        const reason = `iteration ${s.iteration} ran longer than ${formatDuration(s.iterationTimeoutMs)} (the iteration timeout)`;
        s.writer.say(`${reason}; ending the agent`);
        this.end('timeout', reason);
      } else if (now - quietSince >= s.stallTimeoutMs) {
        const reason = `the agent printed nothing for ${formatDuration(s.stallTimeoutMs)} (the stall timeout)`;
        s.writer.say(`${reason}; ending it`);
        this.end('stalled', reason);
      }
    }, period);
    timer.unref();
    return timer;
  }

  private verdict(agent: string, r: AgentRunResult): IterationReport {
    const base = { agent, exitCode: r.exitCode, signal: r.signal, promised: r.promised, error: r.error, usage: r.usage };
    if (this.endedBy) return { ...base, ...this.endedBy };
    const failed = r.exitCode !== 0 || r.signal !== 0;
    // A rate limit shows up as an error turn; some agents still exit 0 after one.
    if (r.error?.errorKind === 'rate-limit' && (failed || !r.promised)) {
      return { ...base, outcome: 'rate-limited', reason: r.error.text };
    }
    if (!failed) return { ...base, outcome: 'ok', reason: null };
    const how = r.signal !== 0 ? `signal ${r.signal}` : `exit code ${r.exitCode}`;
    return { ...base, outcome: 'failed', reason: r.error ? `${how}: ${r.error.text}` : how };
  }
}
