// loop.start on the daemon: branch → commit → worktree → agent CLI → row → runner.
//
// Failure policy: a request refused before a loop id is given out (bad params, over the limit, no
// such repo or branch) leaves nothing. Once the id exists, any failure leaves a `failed` row with the
// reason (so push.result and loop.list can say what happened to that push) and removes the worktree.

import { appendFileSync } from 'node:fs';
import { isAbsolute, join, normalize, relative } from 'node:path';
import { ErrorCodes, RpcError } from '../rpc/messages.js';
import {
  optionalInteger,
  optionalString,
  paramsObject,
  requireOneOf,
  requireString,
} from '../rpc/params.js';
import { MAX_TIMEOUT_MS, MIN_TIMEOUT_MS, TIMEOUT_RANGE, timeoutInRange } from '../store/duration.js';
import { isFinal, type LoopRow, type LoopStore } from '../store/loops.js';
import { resumeRefusal } from '../loop/resume.js';
import type { Config } from '../store/config.js';
import { ensurePrivateDir, type HomePaths } from '../store/paths.js';
import { AGENT_NAMES, agentPreflight, type AgentName } from '../agents/registry.js';
import { DEFAULT_AGENT, DEFAULT_MAX_ITERATIONS, newLoopId } from '../loop/prepare.js';
import type { DaemonLogger } from './context.js';
import { DB_BUSY_MESSAGE, isDbBusy } from './db-busy.js';
import type { LoopDeps } from './deps.js';
import { ControlEvents, PUSH_ID_PATTERN, PUSH_ID_RULE, type LoopResumeParams, type LoopStartParams, type LoopStartResult } from './protocol.js';
import type { Supervisor } from './supervisor.js';

export const DEFAULT_MAX_LOOPS = 4;
const MAX_ITERATIONS_LIMIT = 10_000;

/** loop.start params from the wire, checked field by field. */
export function checkStartParams(raw: unknown): LoopStartParams {
  const p = paramsObject(raw);
  const branch = requireString(p, 'branch', { maxLength: 255 });
  if (branch === '' || branch.startsWith('-') || branch.includes('..') || /[\s~^:?*[\\\x00-\x1f\x7f]/.test(branch)) {
    throw new RpcError(ErrorCodes.InvalidParams, `bad branch name ${JSON.stringify(branch)}`);
  }
  const out: LoopStartParams = { repo: requireString(p, 'repo', { maxLength: 200 }), branch };
  const commit = optionalString(p, 'commit', { maxLength: 64 });
  if (commit !== undefined) {
    if (!/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(commit)) throw new RpcError(ErrorCodes.InvalidParams, 'commit must be a full hex object id');
    out.commit = commit;
  }
  const task = optionalString(p, 'task', { maxLength: 1024 });
  if (task !== undefined) {
    const n = normalize(task);
    if (isAbsolute(task) || n === '..' || n.startsWith('../') || task.includes('\0')) {
      throw new RpcError(ErrorCodes.InvalidParams, `task must be a path inside the repo, got ${JSON.stringify(task)}`);
    }
    out.task = task;
  }
  if (p.agent !== undefined && p.agent !== null) out.agent = requireOneOf(p, 'agent', AGENT_NAMES);
  const agentCmd = optionalString(p, 'agentCmd', { maxLength: 4096 });
  if (agentCmd !== undefined) {
    if (agentCmd.trim() === '') throw new RpcError(ErrorCodes.InvalidParams, 'agentCmd must not be empty');
    out.agentCmd = agentCmd;
  }
  const maxIterations = optionalInteger(p, 'maxIterations', { min: 1, max: MAX_ITERATIONS_LIMIT });
  if (maxIterations !== undefined) out.maxIterations = maxIterations;
  const pushId = optionalString(p, 'pushId', { maxLength: 128 });
  if (pushId !== undefined) out.pushId = checkPushId(pushId);
  const iterationTimeoutMs = optionalTimeout(p, 'iterationTimeoutMs');
  if (iterationTimeoutMs !== undefined) out.iterationTimeoutMs = iterationTimeoutMs;
  const stallTimeoutMs = optionalTimeout(p, 'stallTimeoutMs');
  if (stallTimeoutMs !== undefined) out.stallTimeoutMs = stallTimeoutMs;
  if (p.fallbackAgent !== undefined && p.fallbackAgent !== null) out.fallbackAgent = requireOneOf(p, 'fallbackAgent', AGENT_NAMES);
  return out;
}

/** A push id as git-remote-ralph makes them (it reaches logs and the DB). */
export function checkPushId(pushId: string): string {
  if (!PUSH_ID_PATTERN.test(pushId)) throw new RpcError(ErrorCodes.InvalidParams, `pushId must be ${PUSH_ID_RULE}`);
  return pushId;
}

/** A timeout in ms, MIN_TIMEOUT_MS to MAX_TIMEOUT_MS (the rule of push options and `ralph run`). */
function optionalTimeout(p: Record<string, unknown>, field: string): number | undefined {
  const ms = optionalInteger(p, field);
  if (ms !== undefined && !timeoutInRange(ms)) {
    throw new RpcError(ErrorCodes.InvalidParams, `${field} must be ${TIMEOUT_RANGE} (${MIN_TIMEOUT_MS} to ${MAX_TIMEOUT_MS} ms), got ${ms}`);
  }
  return ms;
}

/** `<branch-stem>-<4 hex>`: readable, unique in this DB, safe as a path segment and a ref. */
export function newDaemonLoopId(store: LoopStore, branch: string): string {
  const stem =
    (branch.split('/').pop() ?? '')
      .replace(/[^A-Za-z0-9_-]+/g, '-')
      .replace(/^[-_]+|[-_]+$/g, '')
      .slice(0, 40) || 'loop';
  return newLoopId(store, stem);
}

export interface StarterOptions {
  paths: HomePaths;
  store: LoopStore;
  config: Config;
  log: DaemonLogger;
  host: string;
  maxLoops: number;
  supervisor: Supervisor;
  deps: () => Promise<LoopDeps>;
}

export class LoopStarter {
  /** Loop ids being started right now: they count against the limit before their row exists. */
  private readonly inFlight = new Set<string>();
  /** Ids of loops being resumed right now: their new loop has no row yet. */
  private readonly resuming = new Set<string>();

  constructor(private readonly o: StarterOptions) {}

  /** Loops running or being started. */
  running(): number {
    const open = this.o.store.listOpen().filter((r) => r.location === 'local' && !this.inFlight.has(r.id)).length;
    return open + this.inFlight.size;
  }

  async start(
    params: LoopStartParams,
    progress: (line: string) => void = () => {},
    extra: { resumedFrom?: string } = {},
  ): Promise<LoopStartResult> {
    const { store } = this.o;
    // An agent that will not run here (claude as root) is refused before anything is made.
    for (const agent of [params.agentCmd === undefined ? (params.agent ?? DEFAULT_AGENT) : null, params.fallbackAgent ?? null]) {
      const refusal = agent === null ? null : agentPreflight(agent);
      if (refusal) throw new RpcError(ErrorCodes.Refused, `on ${this.o.host}: ${refusal}`);
    }
    // Checked and reserved with no await in between: two concurrent starts cannot both take the last slot.
    const running = this.running();
    if (running >= this.o.maxLoops) {
      throw new RpcError(
        ErrorCodes.Busy,
        `this daemon already runs ${running} loops (its limit is ${this.o.maxLoops}); wait for one to finish or stop one (ralph stop <loop>), or raise --max-loops`,
      );
    }
    let loopId = newDaemonLoopId(store, params.branch);
    while (this.inFlight.has(loopId)) loopId = newDaemonLoopId(store, params.branch); // no row yet, so not in the DB
    this.inFlight.add(loopId);
    try {
      return await this.startReserved(loopId, params, progress, extra.resumedFrom ?? null);
    } finally {
      this.inFlight.delete(loopId);
    }
  }

  /** A failed or stopped loop goes on as a new one, from the commits on its branch ralph/<id>. */
  async resume(params: LoopResumeParams, progress: (line: string) => void = () => {}): Promise<LoopStartResult> {
    const { store } = this.o;
    const row = store.find(params.loopId);
    if (!row || row.location !== 'local') throw new RpcError(ErrorCodes.NotFound, `no loop ${params.loopId} on ${this.o.host}`);
    const refusal = resumeRefusal(row, store);
    if (refusal) throw new RpcError(ErrorCodes.Refused, refusal);
    if (row.repo === null || row.branch === null) {
      throw new RpcError(ErrorCodes.Refused, `loop ${row.id} was not started by a push, so it has no branch to go on from`);
    }
    // Taken before the first await: a retried or doubled request while this one is on its way (its
    // row not written yet) is refused, not given a second agent on the same task and branch.
    if (this.resuming.has(row.id)) {
      throw new RpcError(ErrorCodes.Refused, `loop ${row.id} is being resumed right now (by another request); see ralph status`);
    }
    this.resuming.add(row.id);
    try {
      return await this.resumeReserved(row, params, progress);
    } finally {
      this.resuming.delete(row.id);
    }
  }

  private async resumeReserved(row: LoopRow, params: LoopResumeParams, progress: (line: string) => void): Promise<LoopStartResult> {
    const { paths } = this.o;
    const deps = await this.o.deps();
    // The agent's work so far is on ralph/<id> (kept by prune). Without it there is nothing to go on
    // from: starting again from the pushed commit would silently drop that work.
    const commit = await deps.resolveBranchCommit(paths, row.repo!, `ralph/${row.id}`);
    if (!commit) {
      throw new RpcError(
        ErrorCodes.Refused,
        `loop ${row.id} cannot be resumed: its branch ralph/${row.id} is gone from repo ${row.repo} on ${this.o.host}, and with it the agent's work; push ${row.branch} again to start a new loop`,
      );
    }
    const task = row.taskDir === null ? '' : relative(row.workDir, row.taskDir);
    const start: LoopStartParams = {
      repo: row.repo!,
      branch: row.branch!,
      commit,
      ...(task !== '' && !task.startsWith('..') ? { task } : {}),
      ...(row.agentCmd !== null ? { agentCmd: row.agentCmd } : { agent: row.agent as AgentName }),
      maxIterations: params.maxIterations ?? row.maxIterations,
      ...(row.iterationTimeoutMs !== null ? { iterationTimeoutMs: row.iterationTimeoutMs } : {}),
      ...(row.stallTimeoutMs !== null ? { stallTimeoutMs: row.stallTimeoutMs } : {}),
      ...(row.fallbackAgent !== null ? { fallbackAgent: row.fallbackAgent as AgentName } : {}),
    };
    return this.start(start, progress, { resumedFrom: row.id });
  }

  private async startReserved(
    loopId: string,
    params: LoopStartParams,
    progress: (line: string) => void,
    resumedFrom: string | null,
  ): Promise<LoopStartResult> {
    const { paths, store, config, log, host, supervisor } = this.o;
    const deps = await this.o.deps();
    let repo: string;
    try {
      repo = deps.checkRepoName(params.repo);
    } catch (err) {
      throw new RpcError(ErrorCodes.InvalidParams, (err as Error).message);
    }
    const commit = params.commit ?? (await deps.resolveBranchCommit(paths, repo, params.branch));
    if (!commit) {
      throw new RpcError(ErrorCodes.NotFound, `no branch ${params.branch} in repo ${repo} on this daemon; push it first`);
    }

    const agent = params.agentCmd !== undefined ? 'custom' : (params.agent ?? DEFAULT_AGENT);
    const maxIterations = params.maxIterations ?? DEFAULT_MAX_ITERATIONS;
    const what = `${repo} ${params.branch} @ ${commit.slice(0, 12)}`;
    log.info(`loop ${loopId}: starting on ${what} (${agent}, ${maxIterations} iterations${params.pushId ? `, push ${params.pushId}` : ''})`);

    let worktree: string | undefined;
    let rowWritten = false;
    const progressLines: string[] = [];
    try {
      worktree = await deps.createLoopWorktree(paths, repo, commit, loopId);
      const installProgress = (line: string) => {
        log.info(`loop ${loopId}: ${line}`);
        progressLines.push(line);
        progress(line);
      };
      const extraBinDirs =
        params.agentCmd !== undefined ? [] : await deps.ensureAgentInstalled(agent, paths, config, installProgress);
      if (params.fallbackAgent !== undefined) {
        for (const dir of await deps.ensureAgentInstalled(params.fallbackAgent, paths, config, installProgress)) {
          if (!extraBinDirs.includes(dir)) extraBinDirs.push(dir);
        }
      }
      // The worktree and its branch ralph/<loopId> exist already: the row takes that id (row.id).
      deps.prepareLoop(store, paths, {
        dir: worktree,
        ...(params.task !== undefined ? { task: params.task } : {}),
        ...(params.agentCmd !== undefined ? { agentCmd: params.agentCmd } : { agent: agent as AgentName }),
        maxIterations,
        name: loopId,
        agentSearchDirs: extraBinDirs,
        ...(params.iterationTimeoutMs !== undefined ? { iterationTimeoutMs: params.iterationTimeoutMs } : {}),
        ...(params.stallTimeoutMs !== undefined ? { stallTimeoutMs: params.stallTimeoutMs } : {}),
        ...(params.fallbackAgent !== undefined ? { fallbackAgent: params.fallbackAgent } : {}),
        row: {
          resumedFrom,
          id: loopId,
          name: loopId,
          location: 'local',
          repo,
          branch: params.branch,
          baseCommit: commit,
          pushId: params.pushId ?? null,
          host,
        },
      });
      rowWritten = true;
      writeLogLines(paths, loopId, progressLines);
      const { pid } = await deps.launchRunner(paths, loopId);
      try {
        const now = store.get(loopId);
        if (now && now.pid === null && !isFinal(now.status)) store.update(loopId, { pid });
      } catch (err) {
        // The runner is up and records its pid itself: a locked DB here must not fail a running loop.
        if (!isDbBusy(err)) throw err;
        log.warn(`loop ${loopId}: could not record runner pid ${pid} (${DB_BUSY_MESSAGE}); the runner records it itself`);
      }
      supervisor.watch(loopId);
      const started = store.get(loopId)!;
      log.info(`loop ${loopId}: runner pid ${pid}, worktree ${worktree}`);
      supervisor.emit(ControlEvents.started, started);
      return { loopId, worktree, agent: started.agent, maxIterations: started.maxIterations };
    } catch (err) {
      const reason = isDbBusy(err) ? DB_BUSY_MESSAGE : oneLine(err);
      writeLogLines(paths, loopId, [...(rowWritten ? [] : progressLines), `ralph: loop ${loopId} failed to start: ${reason}`]);
      try {
        if (rowWritten) {
          store.finish(loopId, 'failed', reason);
        } else {
          store.insert({
            id: loopId,
            name: loopId,
            location: 'local',
            workDir: worktree ?? join(paths.worktrees, loopId),
            agent,
            ...(params.agentCmd !== undefined ? { agentCmd: params.agentCmd } : {}),
            maxIterations,
            repo,
            branch: params.branch,
            baseCommit: commit,
            pushId: params.pushId ?? null,
            host,
            resumedFrom,
            iterationTimeoutMs: params.iterationTimeoutMs ?? null,
            stallTimeoutMs: params.stallTimeoutMs ?? null,
            fallbackAgent: params.fallbackAgent ?? null,
            status: 'failed',
            reason,
            logPath: paths.logFor(loopId),
            endedAt: new Date().toISOString(),
          });
        }
      } catch (dbErr) {
        // The worktree still goes below; a `starting` row left behind is failed by the next daemon start.
        log.warn(`loop ${loopId}: could not record its failed start: ${oneLine(dbErr)}`);
      }
      log.warn(`loop ${loopId}: failed to start: ${reason}`);
      if (worktree !== undefined) {
        await deps.removeLoopWorktree(paths, repo, loopId).catch((e: Error) => log.warn(`loop ${loopId}: could not remove its worktree: ${oneLine(e)}`));
      }
      const row = store.get(loopId);
      if (row && isFinal(row.status)) supervisor.emit(ControlEvents.failed, row);
      const code = err instanceof RpcError ? err.code : isDbBusy(err) ? ErrorCodes.Busy : ErrorCodes.Refused;
      throw new RpcError(code, `loop ${loopId} failed to start: ${reason}`, { loopId });
    }
  }
}

function oneLine(err: unknown): string {
  const m = err instanceof Error ? err.message : String(err);
  return m.replace(/\s*\n\s*/g, ' | ').trim();
}

/** Appends ralph's own lines (agent install progress, a start failure) to the loop's log. */
function writeLogLines(paths: HomePaths, loopId: string, lines: string[]): void {
  if (lines.length === 0) return;
  ensurePrivateDir(paths.logs);
  appendFileSync(paths.logFor(loopId), lines.map((l) => l + '\r\n').join(''), { mode: 0o600 });
}
