// The `loops` table: typed rows, read and written only through here.

import type { Db } from './db.js';

export const LOOP_STATUSES = ['starting', 'running', 'paused', 'completed', 'failed', 'stopped'] as const;
export type LoopStatus = (typeof LOOP_STATUSES)[number];
export const FINAL_STATUSES: readonly LoopStatus[] = ['completed', 'failed', 'stopped'];
/** Not final: a runner owns the loop (`paused` waits out a rate limit and goes on by itself). */
export const OPEN_STATUSES: readonly LoopStatus[] = ['starting', 'running', 'paused'];
/** OPEN_STATUSES as an SQL list, for `status IN (…)`. */
export const OPEN_STATUSES_SQL = OPEN_STATUSES.map((s) => `'${s}'`).join(', ');

export function isFinal(status: LoopStatus): boolean {
  return FINAL_STATUSES.includes(status);
}

/** Token and cost totals of a loop or of one agent run; null where the agent does not say. */
export interface UsageTotals {
  inputTokens: number | null;
  outputTokens: number | null;
  cacheReadTokens: number | null;
  cacheWriteTokens: number | null;
  costUsd: number | null;
}

export const NO_USAGE: UsageTotals = { inputTokens: null, outputTokens: null, cacheReadTokens: null, cacheWriteTokens: null, costUsd: null };

/** The usage fields of a row (or any object carrying them). */
export function usageOf(u: UsageTotals): UsageTotals {
  return {
    inputTokens: u.inputTokens,
    outputTokens: u.outputTokens,
    cacheReadTokens: u.cacheReadTokens,
    cacheWriteTokens: u.cacheWriteTokens,
    costUsd: u.costUsd,
  };
}

/** Totals plus one run's usage; a field stays null while no run reported it (as SQL's sum). */
export function addUsage(t: UsageTotals, u: UsageTotals): UsageTotals {
  const add = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : a + b);
  return {
    inputTokens: add(t.inputTokens, u.inputTokens),
    outputTokens: add(t.outputTokens, u.outputTokens),
    cacheReadTokens: add(t.cacheReadTokens, u.cacheReadTokens),
    cacheWriteTokens: add(t.cacheWriteTokens, u.cacheWriteTokens),
    costUsd: add(t.costUsd, u.costUsd),
  };
}

export interface LoopRow {
  id: string;
  name: string;
  location: 'local' | 'remote';
  remote: string | null;
  zitiService: string | null;
  identityPath: string | null;
  host: string | null;
  remoteLoopId: string | null;
  repo: string | null;
  branch: string | null;
  baseCommit: string | null;
  workDir: string;
  taskDir: string | null;
  agent: string;
  agentCmd: string | null;
  status: LoopStatus;
  iteration: number;
  maxIterations: number;
  currentStory: string | null;
  pid: number | null;
  socketPath: string | null;
  logPath: string | null;
  startedAt: string;
  updatedAt: string;
  endedAt: string | null;
  reason: string | null;
  lastSeenAt: string | null;
  pushId: string | null;
  iterationTimeoutMs: number | null;
  stallTimeoutMs: number | null;
  fallbackAgent: string | null;
  resumedFrom: string | null;
  pausedUntil: string | null;
  inputTokens: number | null;
  outputTokens: number | null;
  cacheReadTokens: number | null;
  cacheWriteTokens: number | null;
  costUsd: number | null;
}

const COLUMNS: Record<keyof LoopRow, string> = {
  id: 'id',
  name: 'name',
  location: 'location',
  remote: 'remote',
  zitiService: 'ziti_service',
  identityPath: 'identity_path',
  host: 'host',
  remoteLoopId: 'remote_loop_id',
  repo: 'repo',
  branch: 'branch',
  baseCommit: 'base_commit',
  workDir: 'work_dir',
  taskDir: 'task_dir',
  agent: 'agent',
  agentCmd: 'agent_cmd',
  status: 'status',
  iteration: 'iteration',
  maxIterations: 'max_iterations',
  currentStory: 'current_story',
  pid: 'pid',
  socketPath: 'socket_path',
  logPath: 'log_path',
  startedAt: 'started_at',
  updatedAt: 'updated_at',
  endedAt: 'ended_at',
  reason: 'reason',
  lastSeenAt: 'last_seen_at',
  pushId: 'push_id',
  iterationTimeoutMs: 'iteration_timeout_ms',
  stallTimeoutMs: 'stall_timeout_ms',
  fallbackAgent: 'fallback_agent',
  resumedFrom: 'resumed_from',
  pausedUntil: 'paused_until',
  inputTokens: 'input_tokens',
  outputTokens: 'output_tokens',
  cacheReadTokens: 'cache_read_tokens',
  cacheWriteTokens: 'cache_write_tokens',
  costUsd: 'cost_usd',
};

const SELECT = `SELECT ${Object.entries(COLUMNS)
  .map(([k, c]) => (k === c ? c : `${c} AS ${k}`))
  .join(', ')} FROM loops`;

export type NewLoop = Pick<LoopRow, 'id' | 'name' | 'location' | 'workDir' | 'agent' | 'maxIterations'> &
  Partial<Omit<LoopRow, 'id' | 'name' | 'location' | 'workDir' | 'agent' | 'maxIterations'>>;

export type LoopPatch = Partial<Omit<LoopRow, 'id' | 'startedAt'>>;

export function nowIso(): string {
  return new Date().toISOString();
}

function checkRow(raw: Record<string, unknown>): LoopRow {
  const status = raw.status as LoopStatus;
  if (!LOOP_STATUSES.includes(status)) throw new Error(`loop ${String(raw.id)} has an unknown status ${String(status)}`);
  return raw as unknown as LoopRow;
}

export class LoopStore {
  constructor(readonly db: Db) {}

  insert(loop: NewLoop): LoopRow {
    const now = nowIso();
    const row: Record<string, unknown> = {
      status: 'starting',
      iteration: 0,
      startedAt: now,
      updatedAt: now,
      ...loop,
    };
    const keys = Object.keys(row).filter((k) => row[k] !== undefined) as Array<keyof LoopRow>;
    const sql = `INSERT INTO loops (${keys.map((k) => COLUMNS[k]).join(', ')}) VALUES (${keys
      .map((k) => '@' + k)
      .join(', ')})`;
    const values: Record<string, unknown> = {};
    for (const k of keys) values[k] = row[k];
    this.db.prepare(sql).run(values);
    return this.get(loop.id)!;
  }

  /** Sets only the given fields; concurrent writers of other fields lose nothing. */
  update(id: string, patch: LoopPatch): void {
    const full: Record<string, unknown> = { ...patch, updatedAt: patch.updatedAt ?? nowIso() };
    const keys = Object.keys(full).filter((k) => full[k] !== undefined) as Array<keyof LoopRow>;
    const sql = `UPDATE loops SET ${keys.map((k) => `${COLUMNS[k]} = @${k}`).join(', ')} WHERE id = @__id`;
    const values: Record<string, unknown> = { __id: id };
    for (const k of keys) values[k] = full[k];
    this.db.prepare(sql).run(values);
  }

  /**
   * Sets the loop's usage totals to the sums over its `iterations` rows (a field stays null while no
   * run reported it, as SQL's sum): one statement, so nothing is read and written back apart.
   */
  updateUsageTotals(id: string): void {
    const sum = (col: string) => `${col} = (SELECT sum(${col}) FROM iterations WHERE loop_id = @id)`;
    const cols = ['input_tokens', 'output_tokens', 'cache_read_tokens', 'cache_write_tokens', 'cost_usd'];
    this.db.prepare(`UPDATE loops SET ${cols.map(sum).join(', ')}, updated_at = @now WHERE id = @id`).run({ id, now: nowIso() });
  }

  /**
   * Moves a loop to a final status unless it already has one; returns whether it did.
   * A runner and a `ralph status` racing to finish the same loop cannot overwrite each other.
   */
  finish(id: string, status: LoopStatus, reason: string | null, extra: LoopPatch = {}): boolean {
    const now = nowIso();
    const patch: Record<string, unknown> = { ...extra, status, reason, endedAt: extra.endedAt ?? now, updatedAt: now };
    const keys = Object.keys(patch).filter((k) => patch[k] !== undefined) as Array<keyof LoopRow>;
    const sql = `UPDATE loops SET ${keys.map((k) => `${COLUMNS[k]} = @${k}`).join(', ')}
      WHERE id = @__id AND status IN (${OPEN_STATUSES_SQL})`;
    const values: Record<string, unknown> = { __id: id };
    for (const k of keys) values[k] = patch[k];
    return this.db.prepare(sql).run(values).changes > 0;
  }

  get(id: string): LoopRow | undefined {
    const raw = this.db.prepare(`${SELECT} WHERE id = ?`).get(id) as Record<string, unknown> | undefined;
    return raw ? checkRow(raw) : undefined;
  }

  /** By id, then by name, then by a unique id prefix. */
  find(idOrName: string): LoopRow | undefined {
    const exact = this.db.prepare(`${SELECT} WHERE id = ? OR name = ? LIMIT 1`).get(idOrName, idOrName) as
      | Record<string, unknown>
      | undefined;
    if (exact) return checkRow(exact);
    const ids = this.idsStartingWith(idOrName, 2);
    return ids.length === 1 ? this.get(ids[0]!) : undefined;
  }

  /**
   * Up to `limit` ids that start with `prefix`, newest first. None for an empty prefix: it starts
   * every id, and an unset `"$ID"` in a script must not name the only loop there is.
   */
  idsStartingWith(prefix: string, limit: number): string[] {
    if (prefix === '') return [];
    const like = prefix.replace(/[\\%_]/g, (c) => '\\' + c) + '%';
    const rows = this.db
      .prepare(`SELECT id FROM loops WHERE id LIKE ? ESCAPE '\\' ORDER BY started_at DESC, rowid DESC LIMIT ?`)
      .all(like, limit) as Array<{ id: string }>;
    return rows.map((r) => r.id);
  }

  findRemote(remote: string, remoteLoopId: string): LoopRow | undefined {
    const raw = this.db
      .prepare(`${SELECT} WHERE remote = ? AND remote_loop_id = ? LIMIT 1`)
      .get(remote, remoteLoopId) as Record<string, unknown> | undefined;
    return raw ? checkRow(raw) : undefined;
  }

  /** Newest first. */
  list(opts: { limit?: number } = {}): LoopRow[] {
    const sql = `${SELECT} ORDER BY started_at DESC, rowid DESC${opts.limit ? ' LIMIT ' + Math.floor(opts.limit) : ''}`;
    return (this.db.prepare(sql).all() as Record<string, unknown>[]).map(checkRow);
  }

  listOpen(): LoopRow[] {
    return (
      this.db.prepare(`${SELECT} WHERE status IN (${OPEN_STATUSES_SQL}) ORDER BY started_at DESC`).all() as Record<
        string,
        unknown
      >[]
    ).map(checkRow);
  }

  listByPush(pushId: string): LoopRow[] {
    return (this.db.prepare(`${SELECT} WHERE push_id = ? ORDER BY started_at`).all(pushId) as Record<string, unknown>[]).map(
      checkRow,
    );
  }

  /**
   * The loop that goes on from loop `id` (`ralph resume`), newest first: one that got a runner or is
   * still being started. A resume that failed before its runner ran took nothing over and is skipped.
   */
  resumedBy(id: string): LoopRow | undefined {
    const raw = this.db
      .prepare(`${SELECT} WHERE resumed_from = ? AND (pid IS NOT NULL OR status IN (${OPEN_STATUSES_SQL})) ORDER BY started_at DESC, rowid DESC LIMIT 1`)
      .get(id) as Record<string, unknown> | undefined;
    return raw ? checkRow(raw) : undefined;
  }

  nameTaken(name: string): boolean {
    return this.db.prepare('SELECT 1 FROM loops WHERE name = ? OR id = ?').get(name, name) !== undefined;
  }
}
