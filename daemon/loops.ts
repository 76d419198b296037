// How the daemon describes one of its loops on the wire (DaemonLoop), from its session-DB row.

import { usageOf, type LoopRow } from '../store/loops.js';
import type { DaemonLoop } from './protocol.js';

export function toDaemonLoop(row: LoopRow): DaemonLoop {
  return {
    loopId: row.id,
    name: row.name,
    repo: row.repo,
    branch: row.branch,
    baseCommit: row.baseCommit,
    worktree: row.workDir,
    agent: row.agent,
    status: row.status,
    iteration: row.iteration,
    maxIterations: row.maxIterations,
    currentStory: row.currentStory,
    startedAt: row.startedAt,
    updatedAt: row.updatedAt,
    endedAt: row.endedAt,
    reason: row.reason,
    pushId: row.pushId,
    pausedUntil: row.pausedUntil,
    resumedFrom: row.resumedFrom,
    usage: usageOf(row),
  };
}
