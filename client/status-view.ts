// What `ralph status` prints, rendered by SQLite itself.
//
// Why SQL and not JS: `ralph status` must stay well under 200 ms with 10,000 rows on a 2-core box,
// and Node's start alone takes half of that. Building 10,000 row objects (15 strings each) and
// formatting them in JS costs ~150 ms of allocation and GC; letting SQLite produce one finished
// line per loop costs ~15 ms. The queries only read the `loops` table, using the column names of
// schema.sql.

import { homedir } from 'node:os';
import { OPEN_STATUSES_SQL, type LoopStore } from '../store/loops.js';
import { oneLine } from '../agents/safe-text.js';

/** The keys of `ralph status --json`, a public interface: keep them stable. */
export const STATUS_JSON_KEYS = [
  'id',
  'name',
  'location',
  'remote',
  'zitiService',
  'status',
  'iteration',
  'maxIterations',
  'agent',
  'branch',
  'dir',
  'pid',
  'startedAt',
  'endedAt',
  'reason',
  'pausedUntil',
  'resumedFrom',
  'usage',
] as const;

const JSON_COLUMN_OF: Record<(typeof STATUS_JSON_KEYS)[number], string> = {
  id: 'id',
  name: 'name',
  location: 'location',
  remote: 'remote',
  zitiService: 'ziti_service',
  status: 'status',
  iteration: 'iteration',
  maxIterations: 'max_iterations',
  agent: 'agent',
  branch: 'branch',
  dir: 'work_dir',
  pid: 'pid',
  startedAt: 'started_at',
  endedAt: 'ended_at',
  reason: 'reason',
  pausedUntil: 'paused_until',
  resumedFrom: 'resumed_from',
  // Loop totals (numbers, or null while unknown): an object, so it goes in as JSON (not through json_quote()).
  usage: `json_object('inputTokens', input_tokens, 'outputTokens', output_tokens, 'cacheReadTokens', cache_read_tokens,
    'cacheWriteTokens', cache_write_tokens, 'costUsd', cost_usd)`,
};

// One JSON object per row: json_quote() escapes text and turns NULL into null; integers print bare.
const JSON_OBJECT_SQL =
  `'{' || ` +
  STATUS_JSON_KEYS.map((k) => `'${k === 'id' ? '' : ','}"${k}":' || ${k === 'usage' ? JSON_COLUMN_OF[k] : `json_quote(${JSON_COLUMN_OF[k]})`}`).join(' || ') +
  ` || '}'`;

/** Both listings read every row: map the DB file instead of copying it in page by page (~15 ms of 50 at 10,000 rows). */
function mapForFullScan(store: LoopStore): void {
  store.db.pragma('mmap_size = 268435456');
}

/** Every loop, newest first, as a JSON array with one object per line. */
export function statusJson(store: LoopStore): string {
  mapForFullScan(store);
  const objects = store.db
    .prepare(`SELECT ${JSON_OBJECT_SQL} FROM loops ORDER BY started_at DESC`)
    .pluck()
    .all() as string[];
  return objects.length === 0 ? '[]\n' : `[\n${objects.join(',\n')}\n]\n`;
}

const HEADER = ['ID', 'LOCATION', 'STATUS', 'ITER', 'AGENT', 'COST', 'BRANCH/DIR', 'AGE', 'REASON'] as const;

// The cells, as SQL expressions over one `loops` row.
const PLACE_SQL = `CASE WHEN location = 'remote'
    THEN coalesce(remote, 'remote') ||
         CASE WHEN remote IN (SELECT value FROM json_each(@unreachable)) THEN ' (unreachable)' ELSE '' END
    ELSE 'local' END`;
const ITER_SQL = `iteration || '/' || max_iterations`;
// Empty while unknown (a custom agent, a loop from before costs were recorded).
const COST_SQL = `CASE WHEN cost_usd IS NULL THEN ''
    WHEN cost_usd > 0 AND cost_usd < 0.01 THEN '<$0.01'
    ELSE printf('$%.2f', cost_usd) END`;
const TARGET_SQL = `coalesce(branch,
    CASE WHEN work_dir = @home THEN '~'
         WHEN substr(work_dir, 1, length(@home) + 1) = @home || '/' THEN '~' || substr(work_dir, length(@home) + 1)
         ELSE work_dir END)`;
// 5s, 3m, 2h, 4d: the largest unit that fits, rounded down, from started_at to @now.
// (`||` binds tighter than `/` in SQL: keep the parentheses.)
const SECS_SQL = `max(0, CAST((julianday(@now) - julianday(started_at)) * 86400 AS INTEGER))`;
const AGE_SQL = `CASE WHEN secs < 60 THEN secs || 's'
    WHEN secs < 3600 THEN (secs / 60) || 'm'
    WHEN secs < 86400 THEN (secs / 3600) || 'h'
    ELSE (secs / 86400) || 'd' END`;
/** Wide enough for any age up to 27 years ("9999d"): saves a pass of date arithmetic. */
const AGE_WIDTH = 5;

// The rows the table shows: every loop not yet final, and the newest others up to @limit rows in
// all (-1: no limit). Both passes read only these.
const SHOWN_SQL = `WITH shown AS (
  SELECT * FROM loops
  WHERE status IN (${OPEN_STATUSES_SQL})
     OR rowid IN (SELECT rowid FROM loops ORDER BY started_at DESC LIMIT @limit))`;

// Pass one: the widest cell of each padded column (no date arithmetic, no sort).
const WIDTHS_SQL = `${SHOWN_SQL} SELECT ${['id', PLACE_SQL, 'status', ITER_SQL, 'agent', COST_SQL, TARGET_SQL]
  .map((cell) => `coalesce(max(length(${cell})), 0)`)
  .join(', ')}, count(*) FROM shown`;

// Pass two: one finished line per loop, newest first, read in index order. The last column
// (reason) is not padded so that one long reason does not widen every line, and is kept on its
// line. `%!-*s` pads by characters, not bytes.
const LINES_SQL = `${SHOWN_SQL}
  SELECT rtrim(printf('${'%!-*s  '.repeat(8)}%s',
    @w0, id, @w1, ${PLACE_SQL}, @w2, status, @w3, ${ITER_SQL}, @w4, agent, @w5, ${COST_SQL}, @w6, ${TARGET_SQL}, @w7, ${AGE_SQL},
    replace(replace(replace(coalesce(reason, ''), char(13, 10), ' '), char(13), ' '), char(10), ' ')))
  FROM (SELECT *, ${SECS_SQL} AS secs FROM shown ORDER BY started_at DESC)`;

/** Rows the table shows by default (loops not yet final are always shown). */
export const DEFAULT_TABLE_ROWS = 50;

/**
 * The loops, newest first, as an aligned colourless table (header first); '' when there is none.
 * `limit` (default DEFAULT_TABLE_ROWS, null for all): rows shown, besides every loop not yet final;
 * a last line says how many more there are and how to see them.
 */
export function statusTable(
  store: LoopStore,
  opts: { unreachableRemotes?: Iterable<string>; now?: Date; home?: string; limit?: number | null } = {},
): string {
  const limit = opts.limit === undefined ? DEFAULT_TABLE_ROWS : opts.limit;
  const params: Record<string, string | number> = {
    now: (opts.now ?? new Date()).toISOString(),
    home: opts.home ?? homedir(),
    unreachable: JSON.stringify([...(opts.unreachableRemotes ?? [])]),
    limit: limit ?? -1,
  };
  if (limit === null) mapForFullScan(store);
  const row = store.db.prepare(WIDTHS_SQL).raw().get(params) as number[];
  const shown = row.pop()!;
  if (shown === 0) return '';
  const widths = [...row, AGE_WIDTH].map((w, i) => Math.max(w, HEADER[i]!.length));
  widths.forEach((w, i) => (params[`w${i}`] = w));
  // A reason is an agent's or a daemon's words: no escape sequence of theirs reaches the terminal.
  const lines = (store.db.prepare(LINES_SQL).pluck().all(params) as string[]).map(oneLine);
  const header = widths.map((w, i) => HEADER[i]!.padEnd(w + 2)).join('') + HEADER[widths.length];
  let text = header + '\n' + lines.join('\n') + '\n';
  if (limit !== null) {
    const more = (store.db.prepare('SELECT count(*) FROM loops').pluck().get() as number) - shown;
    if (more > 0) text += `… ${more} more (ralph status --all, or --limit N)\n`;
  }
  return text;
}

/**
 * One object of `ralph status --json`, parsed: what `ralph tui` and `ralph watch` show. `status` is a
 * string, not LoopStatus: a newer runner may report statuses this build does not know (shown as they are).
 */
export interface StatusEntry {
  id: string;
  name: string;
  location: 'local' | 'remote';
  remote: string | null;
  zitiService: string | null;
  status: string;
  iteration: number;
  maxIterations: number;
  agent: string;
  branch: string | null;
  dir: string;
  pid: number | null;
  startedAt: string;
  endedAt: string | null;
  reason: string | null;
  /** While `paused`: when it goes on by itself (ISO-8601). */
  pausedUntil: string | null;
  /** The loop this one continues (`ralph resume`). */
  resumedFrom: string | null;
  /** The loop's totals: numbers, or null while unknown (a custom agent reports none). */
  usage: {
    inputTokens: number | null;
    outputTokens: number | null;
    cacheReadTokens: number | null;
    cacheWriteTokens: number | null;
    costUsd: number | null;
  };
}

/** Every loop, newest first, as `ralph status --json` objects (the same SQL builds both). */
export function statusEntries(store: LoopStore): StatusEntry[] {
  return JSON.parse(statusJson(store)) as StatusEntry[];
}
