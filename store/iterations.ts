// The `iterations` table: one row per agent run of a local loop (tokens, cost, model, duration, how
// it ended); the loop's totals are their sums (LoopStore.updateUsageTotals). Written by the loop runner only.

import type { Db } from './db.js';
import { nowIso, type UsageTotals } from './loops.js';

export const ITERATION_OUTCOMES = ['ok', 'failed', 'timeout', 'stalled', 'rate-limited', 'stopped'] as const;
export type IterationOutcome = (typeof ITERATION_OUTCOMES)[number];

export interface IterationRow extends UsageTotals {
  id: number;
  loopId: string;
  iteration: number;
  agent: string;
  model: string | null;
  story: string | null;
  startedAt: string;
  endedAt: string | null;
  durationMs: number | null;
  outcome: IterationOutcome | null;
  exitCode: number | null;
  reason: string | null;
}

export interface IterationEnd extends UsageTotals {
  model: string | null;
  outcome: IterationOutcome;
  exitCode: number | null;
  reason: string | null;
}

const SELECT = `SELECT id, loop_id AS loopId, iteration, agent, model, story, started_at AS startedAt,
  ended_at AS endedAt, duration_ms AS durationMs, outcome, exit_code AS exitCode, reason,
  input_tokens AS inputTokens, output_tokens AS outputTokens, cache_read_tokens AS cacheReadTokens,
  cache_write_tokens AS cacheWriteTokens, cost_usd AS costUsd FROM iterations`;

export class IterationStore {
  constructor(readonly db: Db) {}

  /** Records the start of an agent run; returns its row id. */
  start(loopId: string, iteration: number, agent: string, story: string | null, startedAt = nowIso()): number {
    const r = this.db
      .prepare('INSERT INTO iterations (loop_id, iteration, agent, story, started_at) VALUES (?, ?, ?, ?, ?)')
      .run(loopId, iteration, agent, story, startedAt);
    return Number(r.lastInsertRowid);
  }

  /** Records how an agent run ended. */
  finish(id: number, end: IterationEnd, endedAt = nowIso()): void {
    this.db
      .prepare(
        `UPDATE iterations SET ended_at = @endedAt,
           duration_ms = CAST(round((julianday(@endedAt) - julianday(started_at)) * 86400000) AS INTEGER),
           model = @model, outcome = @outcome, exit_code = @exitCode, reason = @reason,
           input_tokens = @inputTokens, output_tokens = @outputTokens, cache_read_tokens = @cacheReadTokens,
           cache_write_tokens = @cacheWriteTokens, cost_usd = @costUsd
         WHERE id = @id`,
      )
      .run({ ...end, id, endedAt });
  }

  get(id: number): IterationRow | undefined {
    return this.db.prepare(`${SELECT} WHERE id = ?`).get(id) as IterationRow | undefined;
  }

  /** A loop's runs, in order. */
  list(loopId: string): IterationRow[] {
    return this.db.prepare(`${SELECT} WHERE loop_id = ? ORDER BY id`).all(loopId) as IterationRow[];
  }
}
