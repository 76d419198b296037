// Remote loops in the local session DB: one row per loop a remote daemon runs for us, written when
// a push or `ralph start` starts it and brought up to date with what the daemon later says.

import type { DaemonLoop } from '../daemon/protocol.js';
import type { RemoteConfig } from '../store/config.js';
import { isFinal, nowIso, type LoopPatch, type LoopRow, type LoopStore } from '../store/loops.js';
import { identityFor, zitiServiceOf } from './daemon.js';

/** The local id for a remote loop: its remote id when free here, else one with the remote's name. */
function freeLocalId(store: LoopStore, remoteLoopId: string, remoteName: string): string {
  if (!store.nameTaken(remoteLoopId)) return remoteLoopId;
  const base = `${remoteLoopId}-${remoteName}`;
  if (!store.nameTaken(base)) return base;
  for (let i = 2; ; i++) if (!store.nameTaken(`${base}-${i}`)) return `${base}-${i}`;
}

/** The fields a daemon is the authority on, as a patch for the local row. */
function patchFrom(loop: DaemonLoop, seenAt: string) {
  return {
    status: loop.status,
    iteration: loop.iteration,
    maxIterations: loop.maxIterations,
    currentStory: loop.currentStory,
    endedAt: loop.endedAt,
    reason: loop.reason,
    pausedUntil: loop.pausedUntil,
    lastSeenAt: seenAt,
    ...loop.usage,
  } satisfies LoopPatch;
}

/**
 * Applies what the daemon says about one loop to its local row (if there is one) and returns the
 * row as it now stands. A row already final stays as it is: final states never move.
 */
export function applyDaemonLoop(store: LoopStore, remoteName: string, loop: DaemonLoop, seenAt = nowIso()): LoopRow | undefined {
  const row = store.findRemote(remoteName, loop.loopId);
  if (!row) return undefined;
  if (isFinal(row.status)) {
    store.update(row.id, { lastSeenAt: seenAt });
  } else if (isFinal(loop.status)) {
    const { status, reason, ...rest } = patchFrom(loop, seenAt);
    store.finish(row.id, status, reason, { ...rest, endedAt: loop.endedAt ?? seenAt });
  } else {
    store.update(row.id, patchFrom(loop, seenAt));
  }
  return store.get(row.id);
}

/**
 * Writes one local row per loop a remote daemon started for us (after a push, or `ralph start`).
 * Idempotent: a loop already recorded (same remote, same remote loop id) is updated, not duplicated.
 */
export function recordPushedLoops(
  store: LoopStore,
  remote: RemoteConfig,
  loops: DaemonLoop[],
  opts: { host?: string } = {},
): LoopRow[] {
  const zitiService = zitiServiceOf(remote);
  const identityPath = zitiService ? (identityFor(remote) ?? null) : null;
  const record = store.db.transaction((loop: DaemonLoop): LoopRow => {
    const seenAt = nowIso();
    const existing = store.findRemote(remote.name, loop.loopId);
    if (existing) {
      return applyDaemonLoop(store, remote.name, loop, seenAt) ?? existing;
    }
    const id = freeLocalId(store, loop.loopId, remote.name);
    return store.insert({
      id,
      name: id,
      location: 'remote',
      remote: remote.name,
      zitiService,
      identityPath,
      host: opts.host ?? null,
      remoteLoopId: loop.loopId,
      repo: loop.repo,
      branch: loop.branch,
      baseCommit: loop.baseCommit,
      workDir: loop.worktree,
      agent: loop.agent,
      startedAt: loop.startedAt,
      pushId: loop.pushId,
      resumedFrom: loop.resumedFrom,
      ...patchFrom(loop, seenAt),
    });
  });
  // IMMEDIATE: the git helper and a completion listener may record the same loop at once.
  return loops.map((l) => record.immediate(l));
}
