// Asking a remote daemon to start a loop without a push (`loop.start` on a pushed branch, or
// `loop.resume` of one of its loops) and recording the loop it started in the local session DB.

import { ControlMethods, ControlNotifications, type DaemonLoop, type LoopStartResult } from '../daemon/protocol.js';
import type { RemoteConfig } from '../store/config.js';
import { NO_USAGE, nowIso, type LoopRow, type LoopStore } from '../store/loops.js';
import { checkDaemonLoops, controlRequest, openControl } from './daemon.js';
import { recordPushedLoops } from './record.js';

/** Connecting and saying hello: short. Starting may install the agent CLI first: long. */
const CONNECT_TIMEOUT_MS = 10_000;
const START_TIMEOUT_MS = 15 * 60_000;

export class RemoteStartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RemoteStartError';
  }
}

/**
 * Calls `method` on the remote's daemon; progress lines it sends meanwhile (installing the agent
 * CLI, …) go to `progress` as they happen. Resolves with the local row of the loop it started.
 * Throws a RemoteStartError (one line, the daemon's words) when it did not start one.
 */
export async function startOnRemote(
  store: LoopStore,
  remote: RemoteConfig,
  method: typeof ControlMethods.loopStart | typeof ControlMethods.loopResume,
  params: object,
  opts: { describe: string; progress?: (line: string) => void; repo?: string; branch?: string },
): Promise<{ row: LoopRow; started: LoopStartResult }> {
  const conn = await openControl(remote, { timeoutMs: CONNECT_TIMEOUT_MS }).catch((err: Error) => {
    throw new RemoteStartError(err.message);
  });
  conn.peer.onNotification(ControlNotifications.progress, (p) => {
    const line = typeof (p as { line?: unknown })?.line === 'string' ? (p as { line: string }).line : '';
    if (line) opts.progress?.(line.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, ''));
  });
  try {
    let started: LoopStartResult;
    try {
      started = await controlRequest<LoopStartResult>(conn, method, params, { timeoutMs: START_TIMEOUT_MS });
    } catch (err) {
      throw new RemoteStartError(`cannot ${opts.describe}: ${(err as Error).message.replace(/^remote \S+ \([^)]*\): /, '')}`);
    }
    // The daemon's own record of the loop (status, commit, worktree); a minimal one if it is not listed yet.
    let loop: DaemonLoop | undefined;
    try {
      const all = checkDaemonLoops(await controlRequest(conn, ControlMethods.loopList, {}, { timeoutMs: CONNECT_TIMEOUT_MS }), remote);
      loop = all.find((l) => l.loopId === started.loopId);
    } catch {
      /* recorded from the start answer below */
    }
    const now = nowIso();
    loop ??= {
      loopId: started.loopId,
      name: started.loopId,
      repo: opts.repo ?? null,
      branch: opts.branch ?? null,
      baseCommit: null,
      worktree: started.worktree,
      agent: started.agent,
      status: 'starting',
      iteration: 0,
      maxIterations: started.maxIterations,
      currentStory: null,
      startedAt: now,
      updatedAt: now,
      endedAt: null,
      reason: null,
      pushId: null,
      pausedUntil: null,
      resumedFrom: null,
      usage: NO_USAGE,
    };
    const [row] = recordPushedLoops(store, remote, [loop], { host: conn.hello.host });
    return { row: row!, started };
  } finally {
    conn.peer.close('done');
  }
}
