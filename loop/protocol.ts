// The per-loop RPC contract: what a loop runner answers on its socket and the events it sends.
// Clients (attach, logs, the daemon's loop channel) and the runner share these types.
//
// Versions. 1: every message a JSON line. 2 (LOOP_PROTOCOL): `output` events travel as payload frames
// (rpc/reader.ts: a small JSON header, then the output's bytes as they are), and `write` may be sent
// as a notification (no reply; a refusal comes back as `writeRefused`). A client says which version
// it speaks in `subscribe`; a runner refuses a client older than itself with a clear error. A client
// still reads protocol 1 from a runner that an older ralph started (it may outlive an upgrade).

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
  /** The loop protocol the client speaks (LOOP_PROTOCOL); without it, 1. */
  protocol?: number;
  fromSeq?: number;
  replay?: 'screen' | 'none';
}
export interface SubscribeResult {
  /** The protocol this subscription speaks (LOOP_PROTOCOL); absent from runners of protocol 1. */
  protocol?: number;
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

/**
 * `output` notification, in a payload frame: its payload is the output bytes [seq, seq + length),
 * whole UTF-8 characters. (Protocol 1: a JSON line {seq, data}, data the text of those bytes.)
 */
export interface OutputEvent {
  seq: number;
}
/** `output` of protocol 1. */
export interface OutputEventV1 {
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
 * `data` is at most MAX_WRITE_BYTES (UTF-8). Sent as a notification (protocol 2: keystrokes are not
 * answered, so none waits for a reply), a refusal comes back as a `writeRefused` notification.
 */
export interface WriteParams {
  data: string;
}
/** `writeRefused` notification: a `write` sent as a notification was not delivered, and why. */
export interface WriteRefusedEvent {
  message: string;
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
  writeRefused: 'writeRefused',
} as const;

/** The loop protocol this ralph speaks (see the top of this file). */
export const LOOP_PROTOCOL = 2;

/** Largest `write` payload accepted (a paste, not a file transfer). */
export const MAX_WRITE_BYTES = 64 * 1024;
/** The largest terminal a `resize` may ask for, in columns and in rows. */
export const MAX_TERMINAL_SIZE = 1000;

/** A terminal's size as a `resize` may ask for it: a wider or taller one gets the largest allowed. */
export function clampTerminalSize(size: { cols: number; rows: number }): { cols: number; rows: number } {
  const clamp = (n: number, min: number) => Math.max(min, Math.min(MAX_TERMINAL_SIZE, Math.floor(n)));
  return { cols: clamp(size.cols, 2), rows: clamp(size.rows, 1) };
}
