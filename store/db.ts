// Opens the session DB and brings its schema up to date from schema.sql (PRAGMA user_version).

import Database from 'better-sqlite3';
import { chmodSync, closeSync, fstatSync, openSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DbFaultError, isDbFault } from './db-fault.js';
import { ensurePrivateDir } from './paths.js';

export type Db = Database.Database;

// dist/store/db.js → the package root holds schema.sql
const SCHEMA_PATH = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'schema.sql');

interface Migration {
  version: number;
  sql: string;
}

function readMigrations(): Migration[] {
  const text = readFileSync(SCHEMA_PATH, 'utf8');
  const parts = text.split(/^-- version: (\d+)\s*$/m);
  const out: Migration[] = [];
  for (let i = 1; i < parts.length; i += 2) out.push({ version: Number(parts[i]), sql: parts[i + 1]! });
  return out;
}

/** The schema version this ralph brings every DB to (the last `-- version: N` of schema.sql). */
export function latestSchemaVersion(): number {
  return Math.max(0, ...readMigrations().map((m) => m.version));
}

/**
 * How long a write waits for another writer's lock by default (a CLI, a runner's helpers). The wait
 * blocks the whole process: a server (the daemon) opens with a short one and answers "busy" instead.
 */
export const DEFAULT_BUSY_TIMEOUT_MS = 30_000;

export interface OpenDbOptions {
  /** How long a statement waits for another writer's lock before SQLITE_BUSY (default 30 s). */
  busyTimeoutMs?: number;
}

export function openDb(path: string, opts: OpenDbOptions = {}): Db {
  ensurePrivateDir(dirname(path));
  let db: Db | undefined;
  try {
    keepPrivate(path);
    db = new Database(path);
    // Many runners and CLIs write at once: WAL lets readers go on during a write, and the busy
    // timeout makes a writer wait for the lock instead of failing with "database is locked".
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(opts.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS))}`);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = NORMAL');
    migrate(db);
    return db;
  } catch (err) {
    db?.close();
    throw isDbFault(err) ? new DbFaultError(path, err) : err;
  }
}

/**
 * The DB holds every loop's prompts, paths and usage: it is made 0600 before SQLite opens it, and its
 * -wal and -shm files take the same mode from it (SQLite gives them the main file's). A DB an older
 * ralph made 0644 is tightened here.
 */
function keepPrivate(path: string): void {
  const fd = openSync(path, 'a', 0o600);
  try {
    if ((fstatSync(fd).mode & 0o077) !== 0) chmodSync(path, 0o600);
  } finally {
    closeSync(fd);
  }
}

function migrate(db: Db): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  const pending = readMigrations().filter((m) => m.version > current);
  if (pending.length === 0) return;
  // IMMEDIATE: two processes opening a fresh DB at once must not both apply version 1.
  db.transaction(() => {
    const now = db.pragma('user_version', { simple: true }) as number;
    for (const m of pending) {
      if (m.version <= now) continue;
      db.exec(m.sql);
      db.pragma(`user_version = ${m.version}`);
    }
  }).immediate();
}
