// The daemon's wire contract: the `hello` that opens every network connection, and the control
// channel's methods and events. The git-remote-ralph helper, hooks and the laptop-side client share it.

import { AGENT_INSTALL_MAX_MS } from '../install/limits.js';
import type { LoopStatus, UsageTotals } from '../store/loops.js';

export const PROTOCOL_VERSION = 1;

/**
 * First line of every connection to a daemon, a JSON-RPC request:
 *   {"jsonrpc":"2.0","id":0,"method":"hello","params":{...}}
 * The daemon answers with a response (result HelloResult, or an error and then it closes).
 * After a good reply the stream becomes:
 *  - control: a JSON-RPC connection with the ControlMethods below;
 *  - loop:    a byte pipe to that loop runner's socket (speak loop/protocol.ts over it);
 *  - git:     raw git protocol bytes of `service` run on `repo`, both directions.
 * `token`: the daemon's token ($RALPH_HOME/daemon.token on the box). Required on its tcp listeners,
 * checked before anything else; ignored on the unix socket, over ssh and over OpenZiti.
 */
type HelloCommon = { version: number; client?: string; token?: string };
export type HelloParams =
  | (HelloCommon & { channel: 'control' })
  | (HelloCommon & { channel: 'loop'; loop: string })
  | (HelloCommon & {
      channel: 'git';
      service: 'git-receive-pack' | 'git-upload-pack';
      repo: string;
      pushId?: string;
    });

export interface HelloResult {
  version: number;
  channel: HelloParams['channel'];
  /** Host label of the daemon's machine. */
  host: string;
}

/** A push's id (git-remote-ralph makes 16 hex digits): checked in the hello, loop.start and push.result. */
export const PUSH_ID_PATTERN = /^[A-Za-z0-9_-]{1,128}$/;
export const PUSH_ID_RULE = '1 to 128 letters, digits, "-" or "_"';

export const MAX_HELLO_BYTES = 16 * 1024;
export const HELLO_TIMEOUT_MS = 10_000;

/** What a daemon says about one of its loops. */
export interface DaemonLoop {
  loopId: string;
  name: string;
  repo: string | null;
  branch: string | null;
  baseCommit: string | null;
  worktree: string;
  agent: string;
  status: LoopStatus;
  iteration: number;
  maxIterations: number;
  currentStory: string | null;
  startedAt: string;
  updatedAt: string;
  endedAt: string | null;
  reason: string | null;
  pushId: string | null;
  /** While `paused`: when the loop goes on by itself (ISO-8601). */
  pausedUntil: string | null;
  /** The loop this one continues (ralph resume). */
  resumedFrom: string | null;
  /** Token and cost totals over the loop's iterations. */
  usage: UsageTotals;
}

export interface LoopStartParams {
  repo: string;
  branch: string;
  /** Defaults to the branch's current commit in the bare repo. */
  commit?: string;
  /** Task dir relative to the worktree. */
  task?: string;
  agent?: 'claude' | 'opencode' | 'codex' | 'amp';
  agentCmd?: string;
  maxIterations?: number;
  pushId?: string;
  iterationTimeoutMs?: number;
  stallTimeoutMs?: number;
  fallbackAgent?: 'claude' | 'opencode' | 'codex' | 'amp';
  /**
   * The push said `-o ralph.restart`: pre-receive has stopped the branch's loops (which may still be
   * ending), so a push's start goes ahead beside them instead of being refused.
   */
  restart?: boolean;
}

/** Why a push of `branch` starts no loop while loop `loopId` is still on it (pre-receive and loop.start say it alike). */
export function branchTakenLine(loopId: string, state: 'starting' | 'running', branch: string): string {
  return `loop ${loopId} is still ${state} on ${branch}; wait, ralph stop ${loopId}, or push with -o ralph.restart`;
}

/**
 * The longest a loop.start may take on the daemon: the installs of its agent and of its fallback
 * agent, one after the other (each may first wait for another install), then its worktree (the repo
 * lock waits up to 2 minutes) and its runner's start (30 s), with room to spare. Whoever waits for the
 * answer (the post-receive hook) waits longer than this.
 */
export const LOOP_START_MAX_MS = 2 * AGENT_INSTALL_MAX_MS + 5 * 60_000;

export interface LoopStartResult {
  loopId: string;
  worktree: string;
  agent: string;
  maxIterations: number;
}

/**
 * `loop.resume`: a loop that ended failed or stopped goes on as a new loop — same task, agent and
 * settings, its worktree starting from the old loop's branch `ralph/<old id>` (the agent's commits so far).
 */
export interface LoopResumeParams {
  loopId: string;
  /** Iterations for the new loop (default: the old loop's limit). */
  maxIterations?: number;
}

export interface LoopStopParams {
  loopId: string;
  when?: 'now' | 'after-iteration';
}

/** Output of a loop (also of a finished one, from its log file). */
export interface LoopLogsParams {
  loopId: string;
  fromSeq?: number;
  /** At most this many bytes in one answer (the daemon caps it too). */
  maxBytes?: number;
}
export interface LoopLogsResult {
  seq: number;
  data: string;
  /** Log size at the time of the answer. */
  endSeq: number;
  status: LoopStatus;
}

export interface DaemonInfo {
  version: string;
  protocol: number;
  host: string;
  agents: Record<string, { available: boolean; path: string | null }>;
  loopsRunning: number;
  maxLoops: number;
}

export const ControlMethods = {
  loopStart: 'loop.start',
  loopList: 'loop.list',
  loopStop: 'loop.stop',
  loopLogs: 'loop.logs',
  loopResume: 'loop.resume',
  pushResult: 'push.result',
  daemonInfo: 'daemon.info',
  subscribe: 'subscribe',
} as const;

/** Control-channel notifications after `subscribe`; params are a DaemonLoop. */
export const ControlEvents = {
  started: 'loop.started',
  completed: 'loop.completed',
  failed: 'loop.failed',
  stopped: 'loop.stopped',
} as const;

/**
 * Control-channel notifications to the caller of a `loop.start` while it works (agent install...):
 * params LoopProgressEvent. Plain text, no escapes, no "ralph: " prefix.
 */
export const ControlNotifications = {
  progress: 'loop.progress',
} as const;
export interface LoopProgressEvent {
  line: string;
}

/** `subscribe` → the loops open right now; events follow. */
export interface ControlSubscribeResult {
  loops: DaemonLoop[];
}
