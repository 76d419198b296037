// One run of an agent (one iteration, or one attempt of it): the process, its output into the loop's
// output, the user's keys into it, and what the runner needs to know when it ends — exit status,
// whether it promised completion, its usage, and its last error in its own words.
//
// Two kinds: a PTY run (pty-run.ts: the agent's own terminal; keys go to it as typed) and a stream
// run (stream-run.ts: an agent that speaks JSON lines over pipes: its events are rendered, and the
// user's line goes to it as a message through ralph's line editor). This file holds what both share.

import type { AgentErrorKind, RunUsage } from '../agents/types.js';
import type { OutputWriter } from './output-writer.js';

export interface AgentError {
  text: string;
  errorKind: AgentErrorKind;
  /** When a rate limit lifts (epoch ms), if the agent said. */
  resetsAt: number | null;
}

export interface AgentRunResult {
  exitCode: number;
  signal: number;
  promised: boolean;
  /** Summed over the run's turns; null when the agent reports none. */
  usage: RunUsage | null;
  /** The agent's last error (its own words), or null. */
  error: AgentError | null;
}

export interface AgentRun {
  readonly done: Promise<AgentRunResult>;
  /** ms timestamp of the agent's last sign of life (output, an event). */
  readonly lastActivity: number;
  /** Keys from a user in interactive mode. */
  input(data: string): void;
  /** Interactive mode went on or off. */
  setInteractive(on: boolean): void;
  resize(cols: number, rows: number): void;
  /** Signals the agent and every process it started, in whatever group or session (process-tree.ts). */
  kill(signal: NodeJS.Signals): void;
}

export interface RunOptions {
  file: string;
  args: string[];
  cwd: string;
  env: Record<string, string>;
  cols: number;
  rows: number;
  writer: OutputWriter;
  /** Interactive mode is on as the run starts. */
  interactive: boolean;
}

/** Visible text kept from a PTY run's output, to name its last error line. */
export const TAIL_CHARS = 4096;
