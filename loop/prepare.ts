// Turns a `ralph run` (or a push) request into a loop row: validates everything first — work dir,
// task dir, prd.json, the agent CLI — and only then inserts the row (status `starting`), so a bad
// request writes nothing.

import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, join, resolve } from 'node:path';
import type { LoopRow, LoopStore, NewLoop } from '../store/loops.js';
import { formatDuration, TIMEOUT_RANGE, timeoutInRange } from '../store/duration.js';
import { MAX_ITERATIONS, iterationsRangeMessage } from '../store/iteration-limit.js';
import { checkLoopId } from '../store/names.js';
import type { HomePaths } from '../store/paths.js';
import { AGENT_NAMES, agentPreflight, CUSTOM_AGENT, isAgentName, requireAgent, type AgentName } from '../agents/registry.js';
import { LoopSetupError } from './errors.js';
import { readPrd } from './prd.js';
import { findTaskDir } from './task.js';

export { LoopSetupError } from './errors.js';

export const DEFAULT_AGENT: AgentName = 'claude';
export const DEFAULT_MAX_ITERATIONS = 10;
const SLUG_MAX = 24;
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** sun_path holds 108 bytes, NUL included. */
const MAX_SOCKET_PATH = 107;

export interface PrepareRequest {
  /** The checkout the agent works in. */
  dir: string;
  /** The task directory (relative to `dir`), else `dir` or its one `tasks/<name>/`. */
  task?: string;
  agent?: AgentName;
  /** A shell command run as the agent instead of a profile. */
  agentCmd?: string;
  maxIterations?: number;
  name?: string;
  /** Where else to look for agent CLIs (ralph's own install dir, $RALPH_HOME/agents/node_modules/.bin). */
  agentSearchDirs?: string[];
  /** An iteration running longer than this fails (default: DEFAULT_ITERATION_TIMEOUT_MS). */
  iterationTimeoutMs?: number;
  /** An iteration printing nothing for this long fails (default: DEFAULT_STALL_TIMEOUT_MS). */
  stallTimeoutMs?: number;
  /** The agent to run while the main one is rate-limited. */
  fallbackAgent?: AgentName;
  /**
   * Fields the daemon sets: location, remote, repo, branch, baseCommit, pushId, host, … With `id`,
   * the loop gets that id (it must be a valid loop id and free) instead of a generated one.
   */
  row?: Partial<LoopRow>;
  /**
   * The row `row.id` exists already, `starting`: the daemon writes it before it makes the worktree
   * and installs the agent, so the loop is visible (and counted) from the first moment. It is then
   * completed with what was validated here instead of inserted, unless it has ended meanwhile (stopped).
   */
  reserved?: boolean;
}

/** Lowercase, [a-z0-9-], at most 24 characters; "loop" when nothing usable is left. */
export function slugify(text: string): string {
  const slug = text
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, SLUG_MAX)
    .replace(/-+$/, '');
  return slug === '' ? 'loop' : slug;
}

/** `<stem>-<4 hex>`, free in this DB (as an id and as a name). The stem must already be path- and ref-safe. */
export function newLoopId(store: LoopStore, slug: string): string {
  for (;;) {
    const id = `${slug}-${randomBytes(2).toString('hex')}`;
    if (!store.nameTaken(id)) return id;
  }
}

/** An id the caller chose: valid by the rule every loop id follows, and free (as generated ones are). */
function givenLoopId(store: LoopStore, id: string): string {
  try {
    checkLoopId(id);
  } catch (err) {
    throw new LoopSetupError(`cannot use the loop id given: ${(err as Error).message}`);
  }
  if (store.nameTaken(id)) throw new LoopSetupError(`a loop with id or name ${id} already exists; the new loop needs an id of its own`);
  return id;
}

/** The agent can run here: known to be willing (e.g. not claude as root) and installed. */
function checkAgentRuns(name: AgentName, searchDirs: string[]): void {
  const refusal = agentPreflight(name);
  if (refusal) throw new LoopSetupError(refusal);
  try {
    requireAgent(name, searchDirs);
  } catch (err) {
    throw new LoopSetupError((err as Error).message);
  }
}

function checkDuration(flag: string, ms: number | undefined): number | undefined {
  if (ms === undefined) return undefined;
  if (!timeoutInRange(ms)) {
    throw new LoopSetupError(`${flag} must be ${TIMEOUT_RANGE}, got ${Number.isFinite(ms) && ms >= 1000 ? formatDuration(ms) : `${ms} ms`}`);
  }
  return ms;
}

/** Why loop `id` cannot be resumed again: loop `by` already goes on from it (one line). */
export function alreadyResumedMessage(id: string, by: LoopRow): string {
  const next = by.status === 'failed' || by.status === 'stopped' ? `; resume ${by.id} instead` : by.status === 'completed' ? '' : '; see ralph status';
  return `loop ${id} was already resumed: loop ${by.id} goes on from it (${by.status})${next}`;
}

/** Validates a loop request and inserts its row (status `starting`). Throws LoopSetupError. */
export function prepareLoop(store: LoopStore, paths: HomePaths, req: PrepareRequest): LoopRow {
  const workDir = resolve(req.dir);
  let isDir = false;
  try {
    isDir = statSync(workDir).isDirectory();
  } catch {
    /* reported below */
  }
  if (!isDir) throw new LoopSetupError(`${workDir} is not a directory; pass the checkout the agent should work in`);

  const taskDir = findTaskDir(workDir, req.task);
  const prd = readPrd(join(taskDir, 'prd.json'));

  if (req.agent !== undefined && req.agentCmd !== undefined) {
    throw new LoopSetupError('pass either --agent or --agent-cmd, not both');
  }
  let agent: string;
  let agentCmd: string | null = null;
  if (req.agentCmd !== undefined) {
    if (req.agentCmd.trim() === '') throw new LoopSetupError('--agent-cmd is empty; give the shell command that runs your agent');
    agent = CUSTOM_AGENT;
    agentCmd = req.agentCmd;
  } else {
    const name = req.agent ?? DEFAULT_AGENT;
    if (!isAgentName(name)) throw new LoopSetupError(`unknown agent ${JSON.stringify(name)}; use one of ${AGENT_NAMES.join(', ')} or --agent-cmd`);
    checkAgentRuns(name, req.agentSearchDirs ?? []);
    agent = name;
  }
  if (req.fallbackAgent !== undefined) {
    if (!isAgentName(req.fallbackAgent)) {
      throw new LoopSetupError(`unknown fallback agent ${JSON.stringify(req.fallbackAgent)}; use one of ${AGENT_NAMES.join(', ')}`);
    }
    if (req.fallbackAgent === agent) throw new LoopSetupError(`--fallback-agent ${agent} is the loop's own agent; name another one`);
    checkAgentRuns(req.fallbackAgent, req.agentSearchDirs ?? []);
  }
  const iterationTimeoutMs = checkDuration('--iteration-timeout', req.iterationTimeoutMs);
  const stallTimeoutMs = checkDuration('--stall-timeout', req.stallTimeoutMs);

  const maxIterations = req.maxIterations ?? DEFAULT_MAX_ITERATIONS;
  if (!Number.isInteger(maxIterations) || maxIterations < 1 || maxIterations > MAX_ITERATIONS) {
    throw new LoopSetupError(iterationsRangeMessage('--max-iterations', String(maxIterations)));
  }

  const givenId = req.row?.id === undefined || req.reserved ? req.row?.id : givenLoopId(store, req.row.id);
  if (req.reserved && givenId === undefined) throw new LoopSetupError('a reserved loop row needs its id');
  if (req.name !== undefined && !(req.reserved && req.name === givenId)) {
    if (!NAME_PATTERN.test(req.name)) {
      throw new LoopSetupError(`--name ${JSON.stringify(req.name)} is not usable: letters, digits, '.', '_' and '-' only, at most 64`);
    }
    if (store.nameTaken(req.name)) throw new LoopSetupError(`a loop named ${req.name} already exists; pick another --name`);
  }

  // ralph/feature-x → feature-x: the id should say what the loop is about, not who made the branch.
  const slug = slugify(req.name || prd.branchName?.replace(/^.*\//, '') || basename(workDir));
  const id = givenId ?? newLoopId(store, slug);
  const socketPath = paths.socketFor(id);
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH) {
    throw new LoopSetupError(`socket path ${socketPath} is too long for a unix socket; use a shorter RALPH_HOME`);
  }

  const loop: NewLoop = {
    location: 'local',
    host: hostname(),
    ...req.row,
    id,
    name: req.name ?? id,
    workDir,
    taskDir,
    agent,
    agentCmd,
    maxIterations,
    iterationTimeoutMs: iterationTimeoutMs ?? null,
    stallTimeoutMs: stallTimeoutMs ?? null,
    fallbackAgent: req.fallbackAgent ?? null,
    status: 'starting',
    iteration: 0,
    socketPath,
    logPath: paths.logFor(id),
  };
  if (req.reserved) {
    const { id: _, status: __, iteration: ___, ...fields } = loop;
    return store.db
      .transaction(() => {
        const row = store.get(id);
        if (!row || row.status !== 'starting') throw new LoopSetupError(`loop ${id} ${row ? `was ${row.status}` : 'was removed'} while it was starting`);
        store.update(id, fields);
        return store.get(id)!;
      })
      .immediate();
  }
  // Checked and inserted in one write transaction: two `ralph resume` of the same loop (a retry, a
  // double command, another process) cannot both put an agent on its task.
  return store.db
    .transaction(() => {
      const by = loop.resumedFrom ? store.resumedBy(loop.resumedFrom) : undefined;
      if (by) throw new LoopSetupError(alreadyResumedMessage(loop.resumedFrom!, by));
      return store.insert(loop);
    })
    .immediate();
}
