// Salvage of a damaged session DB: every row that can still be read is copied into a new DB, which
// takes the damaged one's place; the damaged file (and its WAL) is kept beside it, renamed. Whether
// it may be replaced right now (nobody uses it) is the caller's question; liveRunnersIn helps answer it.

import Database from 'better-sqlite3';
import { closeSync, copyFileSync, existsSync, openSync, readSync, renameSync, rmSync, statSync, truncateSync } from 'node:fs';
import { openDb } from './db.js';
import { OPEN_STATUSES } from './loops.js';
import { runnerAlive } from './process.js';

/**
 * Copies every row that can still be read from a damaged DB into a new one (table by table, as the
 * current schema has them), then puts the new one in its place; the damaged file (and its WAL) are
 * renamed, not deleted. Returns how many loops were recovered.
 */
export function salvageDb(path: string): { recovered: number; aside: string } {
  const fresh = `${path}.salvage-${process.pid}`;
  for (const ext of ['', '-wal', '-shm']) rmSync(fresh + ext, { force: true });
  const target = openDb(fresh);
  let recovered = 0;
  let source: Database.Database | undefined;
  const copy = readableCopy(path);
  try {
    source = new Database(copy, { fileMustExist: true });
    const tables = (target.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as Array<{ name: string }>).map((t) => t.name);
    for (const table of tables) {
      const n = copyReadableRows(source, target, table);
      if (table === 'loops') recovered = n;
    }
  } catch {
    // Nothing readable at all (not a database any more): the new DB starts empty.
  } finally {
    source?.close();
    for (const ext of ['', '-wal', '-shm']) rmSync(copy + ext, { force: true });
  }
  target.close();
  const aside = `${path}.damaged-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  renameSync(path, aside);
  for (const ext of ['-wal', '-shm']) if (existsSync(path + ext)) renameSync(path + ext, aside + ext);
  renameSync(fresh, path);
  for (const ext of ['-wal', '-shm']) rmSync(fresh + ext, { force: true });
  return { recovered, aside };
}

/**
 * A copy of the damaged DB (and its WAL) to read from, so the damaged file stays as it was. A file
 * cut short is padded back to the size its header records: SQLite refuses a schema whose tables or
 * indexes start past the end of the file, but reads the pages that are still there.
 */
function readableCopy(path: string): string {
  const copy = `${path}.read-${process.pid}`;
  copyFileSync(path, copy);
  if (existsSync(path + '-wal')) copyFileSync(path + '-wal', copy + '-wal');
  try {
    const header = Buffer.alloc(100);
    const fd = openSync(copy, 'r');
    const got = readSync(fd, header, 0, 100, 0);
    closeSync(fd);
    if (got === 100 && header.subarray(0, 16).toString('latin1') === 'SQLite format 3\0') {
      const raw = header.readUInt16BE(16);
      const pageSize = raw === 1 ? 65536 : raw;
      const pages = header.readUInt32BE(28);
      if (pageSize >= 512 && pages > 0 && statSync(copy).size < pageSize * pages) truncateSync(copy, pageSize * pages);
    }
  } catch {
    /* read what there is */
  }
  return copy;
}

function columnsOf(db: Database.Database, table: string): string[] {
  return (db.prepare('SELECT name FROM pragma_table_info(?)').all(table) as Array<{ name: string }>).map((c) => c.name);
}

/** Copies the rows of `table` that can be read; a damaged page costs only the rows on it. */
function copyReadableRows(source: Database.Database, target: Database.Database, table: string): number {
  const columns = columnsOf(target, table);
  let have: Set<string>;
  try {
    have = new Set(columnsOf(source, table));
  } catch {
    return 0;
  }
  const shared = columns.filter((c) => have.has(c));
  if (shared.length === 0) return 0;
  const insert = target.prepare(`INSERT OR IGNORE INTO ${q(table)} (${shared.map(q).join(', ')}) VALUES (${shared.map(() => '?').join(', ')})`);
  let copied = 0;
  readRows(source, table, shared, (row) => {
    try {
      copied += insert.run(...row).changes;
    } catch {
      // a row damaged into something the schema refuses
    }
  });
  return copied;
}

const q = (name: string) => `"${name}"`;

/** Hands every row of `table` that can be read to `add`; a damaged page costs only the rows on it. */
function readRows(source: Database.Database, table: string, columns: string[], add: (row: unknown[]) => void): void {
  const select = `SELECT ${columns.map(q).join(', ')} FROM ${q(table)}`;
  try {
    for (const row of source.prepare(select).raw().iterate()) add(row as unknown[]);
  } catch {
    // A scan that hits a damaged page stops there: read the rest in rowid ranges around it.
    salvageByRowid(source, table, select, add);
  }
}

/**
 * The local loops a damaged DB still records as open whose runner process is alive: they (and
 * their runners) still use the DB, so it must not be replaced under them.
 */
export function liveRunnersIn(path: string): Array<{ id: string; pid: number }> {
  const copy = readableCopy(path);
  let db: Database.Database | undefined;
  const out: Array<{ id: string; pid: number }> = [];
  try {
    db = new Database(copy, { fileMustExist: true });
    readRows(db, 'loops', ['id', 'pid', 'status', 'location'], ([id, pid, status, location]) => {
      if (location !== 'local' || typeof id !== 'string' || typeof pid !== 'number') return;
      if ((OPEN_STATUSES as readonly unknown[]).includes(status) && runnerAlive(pid, id)) out.push({ id, pid });
    });
  } catch {
    // nothing readable: no row names a runner
  } finally {
    db?.close();
    for (const ext of ['', '-wal', '-shm']) rmSync(copy + ext, { force: true });
  }
  return out;
}

/** Reads rows in rowid ranges, halving a range that fails, down to single rows. */
function salvageByRowid(db: Database.Database, table: string, select: string, add: (row: unknown[]) => void): void {
  let max = 1 << 16;
  try {
    max = (db.prepare(`SELECT max(rowid) AS m FROM "${table}"`).get() as { m: number | null }).m ?? max;
  } catch {
    /* keep the guess */
  }
  const stmt = db.prepare(`${select} WHERE rowid BETWEEN ? AND ?`).raw();
  const range = (lo: number, hi: number): void => {
    if (lo > hi) return;
    try {
      for (const row of stmt.all(lo, hi)) add(row as unknown[]);
    } catch {
      if (lo === hi) return;
      const mid = Math.floor((lo + hi) / 2);
      range(lo, mid);
      range(mid + 1, hi);
    }
  };
  range(1, max);
}
