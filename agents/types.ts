// The one interface every agent CLI is seen through. An adapter (one small file per agent) says how
// to start one run of the agent and turns the agent's structured output into these neutral events;
// the loop runner renders them, counts usage, spots the completion promise and learns why a run
// failed, without knowing which agent it runs. Nothing here spawns a process.

/** Tokens and cost of one agent run (or one turn of it); null where the agent does not say. */
export interface RunUsage {
  /**
   * Every input token the model took: uncached, read from the cache and written to it, whatever
   * part of that the agent calls "input" (Anthropic's input_tokens leaves the cache out, OpenAI's
   * includes it). cacheReadTokens and cacheWriteTokens are parts of it.
   */
  inputTokens: number | null;
  outputTokens: number | null;
  cacheReadTokens: number | null;
  cacheWriteTokens: number | null;
  costUsd: number | null;
  model: string | null;
}

/** What kind of failure an agent reported, in the terms the runner acts on. */
export type AgentErrorKind =
  /** Wrong or missing credentials, or no credit left on the account: retrying cannot help. */
  | 'auth'
  /** A rate, usage or overload limit: wait and go on. */
  | 'rate-limit'
  /** The model API could not be reached. */
  | 'connection'
  | 'other';

export type AgentEvent =
  /** The agent is up: which model it will use, and its session's id where it names one. */
  | { kind: 'init'; model: string | null; session?: string }
  /** Assistant text as it streams (a piece of a block; blocks are separated by `text-end`). */
  | { kind: 'text'; text: string }
  | { kind: 'text-end' }
  /** The model is thinking (shown once per thinking block). */
  | { kind: 'thinking' }
  /** A tool call: its name and the one detail that says what it does (the command, the file). */
  | { kind: 'tool'; name: string; detail: string }
  | { kind: 'tool-result'; text: string; isError: boolean }
  /** The agent will retry a failed API call by itself. */
  | { kind: 'retry'; text: string; delayMs: number | null; errorKind: AgentErrorKind }
  /** An error the agent reported in its own words. */
  | { kind: 'error'; text: string; errorKind: AgentErrorKind; resetsAt: number | null }
  /** A rate limit was announced (resetsAt: epoch ms, when known) without failing anything yet. */
  | { kind: 'rate-limit'; text: string; resetsAt: number | null }
  /** The agent finished a turn (it now waits for input, or exits when input ends). */
  | { kind: 'turn-end'; usage: RunUsage | null; error: { text: string; errorKind: AgentErrorKind; resetsAt: number | null } | null }
  /** Anything else worth a dim line. */
  | { kind: 'notice'; text: string };

/**
 * How an agent that speaks JSON lines is driven: its stdout is one JSON object per line, and (when
 * it can take input while it works) its stdin too.
 */
export interface StreamDialect {
  /**
   * What goes to stdin first; null: the prompt is in the arguments and stdin closes at once. An
   * agent without `userMessage` gets this and then the end of its input.
   */
  initialInput: string | null;
  /**
   * A fresh parser for one run (one iteration, across its continuation processes): one stdout line
   * in, the events it means out.
   */
  parser(): (line: string) => AgentEvent[];
  /** A line the user typed, as stdin input; absent when the agent takes no input mid-run. */
  userMessage?(text: string): string;
  /** An interrupt of the current turn, as stdin input; absent: the agent cannot be interrupted that way. */
  interrupt?(): string;
  /**
   * For an agent that takes no input while it runs but can go on with its session in a new process
   * (`codex exec resume`, `opencode run --session`): how that process starts, handing `text` to the
   * model as the user's next message. `session` is the id the parser's `init` event named. A line
   * typed while the agent works waits until its process has ended.
   */
  continueSession?(session: string, text: string): { args: string[]; input: string | null };
  /** Interrupts the current turn by this signal to the agent's process group (when no `interrupt` input exists). */
  interruptSignal?: NodeJS.Signals;
}

/** How one iteration of an agent runs. */
export type AgentLaunch =
  /** In a terminal (PTY): the agent's own screen; keys go to it as they are. */
  | { mode: 'pty'; args: string[] }
  /** Over pipes with JSON lines; ralph renders the events and edits the user's line itself. */
  | { mode: 'stream'; args: string[]; dialect: StreamDialect };

export interface AgentProfile {
  name: string;
  /** The executable, looked up on PATH (and ralph's own agent install dir). */
  command: string;
  /** The npm package that provides the command (install hints and auto-install). */
  npmPackage: string;
  /** Why this agent refuses to run in this environment (one line), or null. Never overridden for the user. */
  preflight?(env: NodeJS.ProcessEnv, uid: number | null): string | null;
  /** Environment defaults for the agent, each applied only when the user has not set it. */
  envDefaults?: Readonly<Record<string, string>>;
  /** One iteration with this prompt. */
  launch(prompt: string): AgentLaunch;
}
