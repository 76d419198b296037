// The per-loop RPC contract: what a loop runner answers on its socket and the events it sends.
// Clients (attach, logs, the daemon's loop channel) and the runner share these types.

import type { LoopStatus, UsageTotals } from '../store/loops.js';

/** `status` → */
export interface LoopStatusResult {
  id: string;
  name: string;
  status: LoopStatus;
  iteration: number;
  maxIterations: number;
  currentStory: string | null;
  agent: string;
  interactive: boolean;
  /** Byte offset of the end of the output so far. */
  seq: number;
  cols: number;
  rows: number;
  workDir: string;
  startedAt: string;
  endedAt: string | null;
  reason: string | null;
  pid: number;
  /** While `paused`: when the loop goes on by itself (ISO-8601). */
  pausedUntil: string | null;
  /** Token and cost totals of the loop so far. */
  usage: UsageTotals;
}

/**
 * `subscribe {fromSeq?, replay?}` → SubscribeResult, then `output` notifications.
 * - with fromSeq: every byte from that offset is sent as `output` events, then live output;
 * - without: the result carries the current screen (ANSI that redraws it) unless replay is "none",
 *   and `output` events follow from result.seq.
 */
export interface SubscribeParams {
  fromSeq?: number;
  replay?: 'screen' | 'none';
}
export interface SubscribeResult {
  /** Output events will start at this offset. */
  seq: number;
  /** End of the output at the time of subscribing. */
  endSeq: number;
  screen?: string;
  cols: number;
  rows: number;
  status: LoopStatus;
  interactive: boolean;
}

/** `output` notification: `data` is the UTF-8 text of bytes [seq, seq + byteLength(data)). */
export interface OutputEvent {
  seq: number;
  data: string;
}

/** `state` notification, sent on any change of status, iteration, story, interactive mode or usage. */
export interface StateEvent {
  status: LoopStatus;
  iteration: number;
  maxIterations: number;
  currentStory: string | null;
  interactive: boolean;
  reason: string | null;
  /** While `paused`: when the loop goes on by itself (ISO-8601). */
  pausedUntil: string | null;
  /** Token and cost totals of the loop so far. */
  usage: UsageTotals;
}

/** `iteration` notification, at the start of each iteration. */
export interface IterationEvent {
  iteration: number;
  maxIterations: number;
  story: string | null;
  /** The agent running it (the fallback agent while the loop's own is rate-limited). */
  agent: string;
}

/** `completed` notification, once, when the loop reaches a final status. */
export interface CompletedEvent {
  status: LoopStatus;
  reason: string | null;
  iteration: number;
  /** Output ends here: a client that has seen this far has seen everything. */
  seq: number;
}

/**
 * `write {data}` → null. Refused (-32000) outside interactive mode or between iterations.
 * `data` is at most MAX_WRITE_BYTES (UTF-8).
 */
export interface WriteParams {
  data: string;
}
/** `resize {cols, rows}` → ResizeResult (the size now in effect). */
export interface ResizeParams {
  cols: number;
  rows: number;
}
export interface ResizeResult {
  cols: number;
  rows: number;
}
/**
 * `interactive {on}` → InteractiveResult. Interactive mode is held by the connections that turned it
 * on and ends when the last of them disconnects; `on: false` from any connection ends it for all.
 */
export interface InteractiveParams {
  on: boolean;
}
export interface InteractiveResult {
  interactive: boolean;
}
/** `stop {when?}` (default "now") → StateEvent as of the request; the end comes as `completed`. */
export interface StopParams {
  when?: 'now' | 'after-iteration';
}
/** `addIterations {n}` → AddIterationsResult. Refused (-32000) once the loop has ended. */
export interface AddIterationsParams {
  n: number;
}
export interface AddIterationsResult {
  maxIterations: number;
}
/** `unsubscribe` → null: no more `output` events on this connection (other events still come). */

export const LoopMethods = {
  status: 'status',
  subscribe: 'subscribe',
  unsubscribe: 'unsubscribe',
  write: 'write',
  resize: 'resize',
  interactive: 'interactive',
  stop: 'stop',
  addIterations: 'addIterations',
} as const;

export const LoopEvents = {
  output: 'output',
  state: 'state',
  iteration: 'iteration',
  completed: 'completed',
} as const;

/** Largest `write` payload accepted (a paste, not a file transfer). */
export const MAX_WRITE_BYTES = 64 * 1024;
