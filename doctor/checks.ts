// `ralph doctor`: looks at everything ralph keeps on this machine — the home directory, the session
// DB, the sockets, the loops' rows, the config, the ziti CLI, the agent CLIs — says what it found,
// and repairs what it safely can: permissions, sockets nobody listens on, rows of loops whose runner
// is gone, and a damaged DB (its readable rows are copied into a new DB; the damaged file is kept
// beside it). Nothing is deleted that holds data, and the DB is only replaced while no ralph process
// uses it.

import Database from 'better-sqlite3';
import { chmodSync, closeSync, copyFileSync, existsSync, openSync, readdirSync, readSync, renameSync, rmSync, statfsSync, statSync, truncateSync } from 'node:fs';
import { basename, delimiter, join } from 'node:path';
import { settleDeadRunners } from '../client/liveness.js';
import { DEFAULT_AGENT_PACKAGES, agentBinary, agentsBinDir, findOnPath } from '../install/agents.js';
import { isDbDamaged, sqliteCode } from '../store/db-fault.js';
import { openDb } from '../store/db.js';
import { readConfig } from '../store/config.js';
import { isFinal, LoopStore } from '../store/loops.js';
import { processAlive } from '../store/process.js';
import type { HomePaths } from '../store/paths.js';
import { socketAnswers } from '../transport/index.js';
import { zitiBinary, zitiWorks } from '../transport/ziti/tunnel-process.js';

export type Verdict = 'ok' | 'fixed' | 'problem' | 'info';

export interface Finding {
  verdict: Verdict;
  topic: 'home' | 'db' | 'loops' | 'sockets' | 'config' | 'ziti' | 'agents';
  text: string;
}

export interface DoctorOptions {
  /** Repair what can safely be repaired (default true). */
  repair?: boolean;
}

/** Below this much free space under the home, loops are close to pausing for a full disk. */
const LOW_SPACE_BYTES = 64 * 1024 * 1024;

export async function runDoctor(paths: HomePaths, opts: DoctorOptions = {}): Promise<Finding[]> {
  const repair = opts.repair ?? true;
  const out: Finding[] = [];
  const say = (verdict: Verdict, topic: Finding['topic'], text: string) => out.push({ verdict, topic, text });

  if (!existsSync(paths.home)) {
    say('ok', 'home', `${paths.home} does not exist yet (ralph creates it on first use)`);
  } else {
    checkHome(paths, repair, say);
    const sockets = await probeSockets(paths);
    const dbOk = checkDb(paths, repair, sockets, say);
    if (dbOk) checkLoops(paths, repair, say);
    checkSockets(paths, repair, sockets, dbOk, say);
  }
  try {
    const config = readConfig();
    say('ok', 'config', `${Object.keys(config.remotes).length} remote(s) configured`);
  } catch (err) {
    say('problem', 'config', (err as Error).message);
  }
  checkZiti(say);
  checkAgents(paths, say);
  return out;
}

type Say = (verdict: Verdict, topic: Finding['topic'], text: string) => void;

function checkHome(paths: HomePaths, repair: boolean, say: Say): void {
  for (const dir of [paths.home, paths.sockets, paths.logs]) {
    if (!existsSync(dir)) continue;
    const mode = statSync(dir).mode & 0o777;
    if ((mode & 0o077) === 0) continue;
    if (repair) {
      chmodSync(dir, 0o700);
      say('fixed', 'home', `${dir} was open to others (${mode.toString(8)}); now 0700`);
    } else {
      say('problem', 'home', `${dir} is open to others (${mode.toString(8)}); it should be 0700`);
    }
  }
  try {
    const fs = statfsSync(paths.home);
    const free = fs.bavail * fs.bsize;
    const text = `${paths.home}: ${(free / 2 ** 20).toFixed(0)} MiB free`;
    if (free < LOW_SPACE_BYTES) say('problem', 'home', `${text}; loops pause while the disk is full: free some space`);
    else say('ok', 'home', text);
  } catch (err) {
    say('problem', 'home', `cannot check free space under ${paths.home}: ${(err as Error).message}`);
  }
}

interface SocketProbe {
  path: string;
  loopId: string | null;
  answers: boolean;
}

/** Every socket file under the home, and whether something listens on it. */
async function probeSockets(paths: HomePaths): Promise<SocketProbe[]> {
  const files: Array<{ path: string; loopId: string | null }> = [];
  if (existsSync(paths.daemonSocket)) files.push({ path: paths.daemonSocket, loopId: null });
  if (existsSync(paths.sockets)) {
    for (const name of readdirSync(paths.sockets)) {
      if (name.endsWith('.sock')) files.push({ path: join(paths.sockets, name), loopId: basename(name, '.sock') });
    }
  }
  return Promise.all(files.map(async (f) => ({ ...f, answers: await socketAnswers(f.path) })));
}

/** Checks the DB; salvages a damaged one when nothing uses it. True when the DB is usable now. */
function checkDb(paths: HomePaths, repair: boolean, sockets: SocketProbe[], say: Say): boolean {
  if (!existsSync(paths.db)) {
    say('ok', 'db', `no session DB yet (${paths.db} is created on first use)`);
    return false;
  }
  let problem: string | null = null;
  let db: Database.Database | undefined;
  try {
    db = new Database(paths.db, { fileMustExist: true });
    db.pragma('busy_timeout = 5000');
    const check = db.pragma('quick_check', { simple: true }) as string;
    if (check !== 'ok') problem = `quick_check: ${check.replace(/\s+/g, ' ').slice(0, 200)}`;
    else {
      const { n } = db.prepare('SELECT count(*) AS n FROM loops').get() as { n: number };
      say('ok', 'db', `${paths.db}: intact, ${n} loop(s)`);
    }
  } catch (err) {
    if (!isDbDamaged(err) && sqliteCode(err) !== 'SQLITE_ERROR') {
      say('problem', 'db', `${paths.db}: ${(err as Error).message}`);
      db?.close();
      return false;
    }
    problem = (err as Error).message;
  } finally {
    db?.close();
  }
  if (problem === null) return true;

  const users = sockets.filter((s) => s.answers);
  if (!repair) {
    say('problem', 'db', `${paths.db} is damaged (${problem}); \`ralph doctor\` without --no-repair recovers its readable loops`);
    return false;
  }
  if (users.length > 0) {
    say('problem', 'db', `${paths.db} is damaged (${problem}), but ${users.length} ralph process(es) still use it (${users.map((u) => basename(u.path)).join(', ')}): stop them (ralph stop, stop the daemon) and run ralph doctor again`);
    return false;
  }
  const { recovered, aside } = salvageDb(paths.db);
  say('fixed', 'db', `${paths.db} was damaged (${problem}); recovered ${recovered} loop(s) into a new DB; the damaged file is kept as ${aside}`);
  return true;
}

/**
 * Copies every row that can still be read from a damaged DB into a new one (table by table, as the
 * current schema has them), then puts the new one in its place; the damaged file (and its WAL) are
 * renamed, not deleted. Returns how many loops were recovered.
 */
function salvageDb(path: string): { recovered: number; aside: string } {
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
  const q = (c: string) => `"${c}"`;
  const insert = target.prepare(`INSERT OR IGNORE INTO ${q(table)} (${shared.map(q).join(', ')}) VALUES (${shared.map(() => '?').join(', ')})`);
  let copied = 0;
  const add = (row: unknown[]) => {
    try {
      copied += insert.run(...row).changes;
    } catch {
      // a row damaged into something the schema refuses
    }
  };
  const select = `SELECT ${shared.map(q).join(', ')} FROM ${q(table)}`;
  try {
    for (const row of source.prepare(select).raw().iterate()) add(row as unknown[]);
  } catch {
    // A scan that hits a damaged page stops there: read the rest in rowid ranges around it.
    salvageByRowid(source, table, select, add);
  }
  return copied;
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

function checkLoops(paths: HomePaths, repair: boolean, say: Say): void {
  let db;
  try {
    db = openDb(paths.db, { busyTimeoutMs: 5000 });
  } catch (err) {
    say('problem', 'loops', (err as Error).message);
    return;
  }
  try {
    const store = new LoopStore(db);
    if (repair) {
      const marked = settleDeadRunners(store);
      if (marked.length > 0) say('fixed', 'loops', `marked ${marked.length} loop(s) whose runner is gone as failed: ${marked.join(', ')}`);
    }
    const running = store.listOpen().filter((r) => r.location === 'local');
    say('ok', 'loops', `${running.length} local loop(s) running`);
  } catch (err) {
    say('problem', 'loops', (err as Error).message);
  } finally {
    db.close();
  }
}

function checkSockets(paths: HomePaths, repair: boolean, sockets: SocketProbe[], dbOk: boolean, say: Say): void {
  let store: LoopStore | undefined;
  let db;
  if (dbOk) {
    try {
      db = openDb(paths.db, { busyTimeoutMs: 5000 });
      store = new LoopStore(db);
    } catch {
      store = undefined;
    }
  }
  try {
    const stale = sockets.filter((s) => {
      if (s.answers) return false;
      if (s.loopId === null || !store) return true;
      // A socket nobody answers on whose loop still runs (a runner busy right now) is left alone.
      const row = store.get(s.loopId);
      return !row || isFinal(row.status) || row.pid === null || !processAlive(row.pid);
    });
    const live = sockets.filter((s) => s.answers);
    const daemon = live.some((s) => s.loopId === null) ? '; the daemon answers' : '';
    if (stale.length === 0) {
      say('ok', 'sockets', `${live.filter((s) => s.loopId !== null).length} loop socket(s) answer${daemon}`);
      return;
    }
    const names = stale.map((s) => basename(s.path)).join(', ');
    if (repair) {
      for (const s of stale) rmSync(s.path, { force: true });
      say('fixed', 'sockets', `removed ${stale.length} socket(s) nobody listens on: ${names}${daemon}`);
    } else {
      say('problem', 'sockets', `${stale.length} socket(s) nobody listens on: ${names}`);
    }
  } finally {
    db?.close();
  }
}

function checkZiti(say: Say): void {
  let bin: string;
  try {
    bin = zitiBinary('ziti:doctor');
  } catch {
    say('info', 'ziti', 'no ziti CLI found (needed only for OpenZiti remotes; bash install/get-ziti.sh builds one)');
    return;
  }
  if (zitiWorks(bin)) say('ok', 'ziti', `${bin} runs`);
  else say('problem', 'ziti', `${bin} does not run \`ziti version\`: rebuild it with bash install/get-ziti.sh`);
}

function checkAgents(paths: HomePaths, say: Say): void {
  const search = [agentsBinDir(paths), process.env.PATH ?? ''].join(delimiter);
  const found: string[] = [];
  const missing: string[] = [];
  for (const agent of Object.keys(DEFAULT_AGENT_PACKAGES)) {
    const p = findOnPath(agentBinary(agent), search);
    if (p) found.push(`${agent} (${p})`);
    else missing.push(agent);
  }
  say('info', 'agents', `${found.length > 0 ? `installed: ${found.join(', ')}` : 'no agent CLI installed'}${missing.length > 0 ? `; not installed: ${missing.join(', ')}` : ''}`);
}
