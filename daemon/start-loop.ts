// loop.start on the daemon: branch → commit → row (`starting`) → worktree → agent CLI → runner.
//
// Failure policy: a request refused before its row is written (bad params, over the limit, no such
// repo or branch, a DB locked by another process) leaves nothing. Once the row exists, any failure
// ends it `failed` with the reason (so push.result and loop.list can say what happened to that push)
// and removes the worktree; a daemon killed meanwhile leaves the row to the next one (adoptAll).

import { appendFileSync } from 'node:fs';
import { isAbsolute, join, normalize, relative } from 'node:path';
import { ErrorCodes, RpcError } from '../rpc/messages.js';
import {
  optionalBoolean,
  optionalInteger,
  optionalString,
  paramsObject,
  requireOneOf,
  requireString,
} from '../rpc/params.js';
import { MAX_TIMEOUT_MS, MIN_TIMEOUT_MS, TIMEOUT_RANGE, timeoutInRange } from '../store/duration.js';
import { MAX_ITERATIONS } from '../store/iteration-limit.js';
import { checkRepoName } from '../store/names.js';
import { isFinal, type LoopRow, type LoopStore } from '../store/loops.js';
import { resumeRefusal } from '../loop/resume.js';
import type { Config } from '../store/config.js';
import { ensurePrivateDir, type HomePaths } from '../store/paths.js';
import { AGENT_NAMES, agentPreflight, type AgentName } from '../agents/registry.js';
import { alreadyResumedMessage, DEFAULT_AGENT, DEFAULT_MAX_ITERATIONS, LoopSetupError, newLoopId } from '../loop/prepare.js';
import type { DaemonLogger } from './context.js';
import { BUSY_RETRY_MS, DB_BUSY, DB_BUSY_MESSAGE, isDbBusy } from './db-busy.js';
import type { LoopDeps } from './deps.js';
import { branchTakenLine, ControlEvents, PUSH_ID_PATTERN, PUSH_ID_RULE, type LoopResumeParams, type LoopStartParams, type LoopStartResult } from './protocol.js';
import { finalEventFor, type Supervisor } from './supervisor.js';

export const DEFAULT_MAX_LOOPS = 4;
export const STOPPED_WHILE_STARTING_REASON = 'stopped while it was starting';

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
  const maxIterations = optionalInteger(p, 'maxIterations', { min: 1, max: MAX_ITERATIONS });
  if (maxIterations !== undefined) out.maxIterations = maxIterations;
  const pushId = optionalString(p, 'pushId', { maxLength: 128 });
  if (pushId !== undefined) out.pushId = checkPushId(pushId);
  const iterationTimeoutMs = optionalTimeout(p, 'iterationTimeoutMs');
  if (iterationTimeoutMs !== undefined) out.iterationTimeoutMs = iterationTimeoutMs;
  const stallTimeoutMs = optionalTimeout(p, 'stallTimeoutMs');
  if (stallTimeoutMs !== undefined) out.stallTimeoutMs = stallTimeoutMs;
  if (p.fallbackAgent !== undefined && p.fallbackAgent !== null) out.fallbackAgent = requireOneOf(p, 'fallbackAgent', AGENT_NAMES);
  if (optionalBoolean(p, 'restart') === true) out.restart = true;
  return out;
}

/** The repo as its rows name it; null for a bad name (the start refuses it a moment later). */
function repoNameOrNull(raw: string): string | null {
  try {
    return checkRepoName(raw);
  } catch {
    return null;
  }
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
  /** Loops whose row exists and whose worktree, agent and runner are being made now. */
  private readonly making = new Map<string, { launching: boolean }>();
  /** Pushes' starts on their way, by repo and branch, before their row exists: the loop id each took. */
  private readonly pushStarts = new Map<string, string>();

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
    const repo = params.pushId === undefined ? null : repoNameOrNull(params.repo);
    const pushed = repo === null ? null : `${repo}\n${params.branch}`;
    if (pushed !== null && !params.restart) {
      const taken = this.branchTaken(pushed, repo!, params.branch);
      if (taken) throw new RpcError(ErrorCodes.Refused, branchTakenLine(taken.loopId, taken.state, params.branch));
    }
    let loopId = newDaemonLoopId(store, params.branch);
    while (this.inFlight.has(loopId)) loopId = newDaemonLoopId(store, params.branch); // no row yet, so not in the DB
    this.inFlight.add(loopId);
    if (pushed !== null) this.pushStarts.set(pushed, loopId);
    try {
      return await this.startReserved(loopId, params, progress, extra.resumedFrom ?? null);
    } finally {
      this.inFlight.delete(loopId);
      if (pushed !== null && this.pushStarts.get(pushed) === loopId) this.pushStarts.delete(pushed);
    }
  }

  /**
   * The loop a push of this branch must not start beside: pre-receive looked, but a second push can
   * pass it in the moment before the first push's row is written, so the check is made again here,
   * with no await between it and taking the branch.
   */
  private branchTaken(key: string, repo: string, branch: string): { loopId: string; state: 'starting' | 'running' } | null {
    const starting = this.pushStarts.get(key);
    if (starting !== undefined) return { loopId: starting, state: 'starting' };
    const open = this.o.store.listOpen().find((r) => r.location === 'local' && r.repo === repo && r.branch === branch);
    return open ? { loopId: open.id, state: open.status === 'starting' ? 'starting' : 'running' } : null;
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
      // A loop extended before extends were bounded may hold more than a new loop may have.
      maxIterations: params.maxIterations ?? Math.min(row.maxIterations, MAX_ITERATIONS),
      ...(row.iterationTimeoutMs !== null ? { iterationTimeoutMs: row.iterationTimeoutMs } : {}),
      ...(row.stallTimeoutMs !== null ? { stallTimeoutMs: row.stallTimeoutMs } : {}),
      ...(row.fallbackAgent !== null ? { fallbackAgent: row.fallbackAgent as AgentName } : {}),
    };
    return this.start(start, progress, { resumedFrom: row.id });
  }

  /**
   * loop.stop of a loop this daemon is still making (worktree, agent install): its row ends
   * `stopped` now, and the start gives up at its next step, removing what it made. False once its
   * runner is being launched (a stop can reach the runner a moment later) or when it is not ours.
   */
  stopStarting(loopId: string): boolean {
    const making = this.making.get(loopId);
    if (!making || making.launching) return false;
    if (!this.o.store.finish(loopId, 'stopped', STOPPED_WHILE_STARTING_REASON)) return false;
    // Its slot is free now: what is left (an install running on, the worktree to remove) is cleanup.
    this.inFlight.delete(loopId);
    this.o.log.info(`loop ${loopId}: ${STOPPED_WHILE_STARTING_REASON}`);
    this.o.supervisor.emit(ControlEvents.stopped, this.o.store.get(loopId)!);
    return true;
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

    // The row comes first, before anything is made: from now on loop.list shows the loop starting, so
    // pre-receive refuses another push of its branch while the agent installs (minutes), and a daemon
    // killed from here on leaves a row the next one fails and `ralph prune` cleans up after.
    try {
      this.reserveRow({ loopId, params, repo, commit, agent, maxIterations, resumedFrom });
    } catch (err) {
      if (isDbBusy(err)) throw new RpcError(ErrorCodes.Busy, `loop ${loopId} failed to start: ${DB_BUSY_MESSAGE}`, { loopId });
      if (err instanceof LoopSetupError) throw new RpcError(ErrorCodes.Refused, err.message);
      throw err;
    }
    log.info(`loop ${loopId}: starting on ${what} (${agent}, ${maxIterations} iterations${params.pushId ? `, push ${params.pushId}` : ''})`);

    const making = { launching: false };
    this.making.set(loopId, making);
    let worktree: string | undefined;
    let logged = false;
    const progressLines: string[] = [];
    try {
      worktree = await deps.createLoopWorktree(paths, repo, commit, loopId);
      this.stillStarting(loopId);
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
      // Validates the task and the agents and completes the row (refused if it was stopped meanwhile).
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
        row: { resumedFrom, id: loopId, name: loopId, location: 'local', repo, branch: params.branch, baseCommit: commit, pushId: params.pushId ?? null, host },
        reserved: true,
      });
      making.launching = true;
      writeLogLines(paths, loopId, progressLines);
      logged = true;
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
      const stopped = store.get(loopId)?.status === 'stopped';
      const reason = stopped ? STOPPED_WHILE_STARTING_REASON : isDbBusy(err) ? DB_BUSY_MESSAGE : oneLine(err);
      writeLogLines(paths, loopId, [...(logged ? [] : progressLines), `ralph: loop ${loopId} ${stopped ? 'was' : 'failed to start:'} ${reason}`]);
      this.finishFailedStart(loopId, reason);
      log.warn(`loop ${loopId}: ${stopped ? '' : 'failed to start: '}${reason}`);
      if (worktree !== undefined) {
        await deps.removeLoopWorktree(paths, repo, loopId).catch((e: Error) => log.warn(`loop ${loopId}: could not remove its worktree: ${oneLine(e)}`));
      }
      const row = store.get(loopId);
      if (!stopped && row && isFinal(row.status)) supervisor.emit(finalEventFor(row.status), row); // a stop was announced then
      if (stopped) throw new RpcError(ErrorCodes.Refused, `loop ${loopId} was ${STOPPED_WHILE_STARTING_REASON}`, { loopId });
      const code = err instanceof RpcError ? err.code : isDbBusy(err) ? ErrorCodes.Busy : ErrorCodes.Refused;
      throw new RpcError(code, `loop ${loopId} failed to start: ${reason}`, { loopId });
    } finally {
      this.making.delete(loopId);
    }
  }

  /** The loop's first row: `starting`, no runner yet, with everything the request said. */
  private reserveRow(r: {
    loopId: string;
    params: LoopStartParams;
    repo: string;
    commit: string;
    agent: string;
    maxIterations: number;
    resumedFrom: string | null;
  }): void {
    const { paths, store, host } = this.o;
    const { loopId, params } = r;
    // Checked and inserted in one write transaction: two resumes of one loop cannot both go on.
    store.db
      .transaction(() => {
        const by = r.resumedFrom ? store.resumedBy(r.resumedFrom) : undefined;
        if (by) throw new LoopSetupError(alreadyResumedMessage(r.resumedFrom!, by));
        store.insert({
          id: loopId,
          name: loopId,
          location: 'local',
          workDir: join(paths.worktrees, loopId),
          agent: r.agent,
          ...(params.agentCmd !== undefined ? { agentCmd: params.agentCmd } : {}),
          maxIterations: r.maxIterations,
          repo: r.repo,
          branch: params.branch,
          baseCommit: r.commit,
          pushId: params.pushId ?? null,
          host,
          resumedFrom: r.resumedFrom,
          iterationTimeoutMs: params.iterationTimeoutMs ?? null,
          stallTimeoutMs: params.stallTimeoutMs ?? null,
          fallbackAgent: params.fallbackAgent ?? null,
          status: 'starting',
          logPath: paths.logFor(loopId),
        });
      })
      .immediate();
  }

  /** Throws once the loop is no longer `starting` (stopped meanwhile): the start gives up there. */
  private stillStarting(loopId: string): void {
    const status = this.o.store.get(loopId)?.status;
    if (status !== 'starting') throw new Error(`loop ${loopId} is ${status ?? 'gone'}`);
  }

  /**
   * Ends a start that failed as `failed` with its reason (a final status set meanwhile stays). With the
   * DB locked, tried again each second: a `starting` row left open would hold a slot and its branch.
   */
  private finishFailedStart(loopId: string, reason: string): void {
    try {
      this.o.store.finish(loopId, 'failed', reason);
    } catch (err) {
      if (!isDbBusy(err)) {
        this.o.log.warn(`loop ${loopId}: could not record its failed start: ${oneLine(err)}`);
        return;
      }
      this.o.log.warn(`loop ${loopId}: could not record its failed start (${DB_BUSY}); trying again in ${BUSY_RETRY_MS} ms`);
      setTimeout(() => this.finishFailedStart(loopId, reason), BUSY_RETRY_MS).unref();
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
