// `ralph doctor` and the session DB: it replaces a damaged DB only while nobody uses it, salvages
// only real damage, and with --no-repair writes nothing (not even a schema upgrade).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openDb } from '../store/db.js';
import { LoopStore } from '../store/loops.js';
import { makeTempHome, ralph, ROOT } from './helpers/env.js';
import { standInRunner } from './helpers/loop.js';

const SCHEMA = readFileSync(join(ROOT, 'schema.sql'), 'utf8');

/** A session DB with three loops; `running` is the runner pid of the one still running. */
function dbWithLoops(path: string, running: number): void {
  const db = openDb(path);
  const store = new LoopStore(db);
  for (const [i, status] of (['completed', 'failed', 'running'] as const).entries()) {
    store.insert({ id: `l${i}-0000`, name: `l${i}-0000`, location: 'local', workDir: '/tmp', agent: 'custom', maxIterations: 1, status, ...(status === 'running' ? { pid: running } : {}) });
  }
  db.close(); // the last connection checkpoints the WAL into the file
}

/** Garbage over the root page of an index: the loops table stays readable, quick_check fails. */
function damageIndex(path: string): void {
  const db = new Database(path, { readonly: true });
  const root = (db.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'loops_started'").get() as { rootpage: number }).rootpage;
  const pageSize = db.pragma('page_size', { simple: true }) as number;
  db.close();
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.alloc(pageSize, 0xa5), 0, pageSize, (root - 1) * pageSize);
  closeSync(fd);
}

test('a damaged DB whose running loop still has a live runner is not replaced (doctor names it); once the runner is gone it is salvaged', async () => {
  const t = makeTempHome('ralph-doc');
  const runner = await standInRunner(t.home, 'l2-0000');
  const exited = new Promise((r) => runner.once('exit', r));
  try {
    const dbPath = join(t.home, 'ralph.db');
    dbWithLoops(dbPath, runner.pid!);
    damageIndex(dbPath);
    const damaged = readFileSync(dbPath);

    const refused = await ralph(['doctor'], { env: t.env });
    assert.is(refused.code, 1, refused.stdout);
    assert.match(refused.stdout, new RegExp(`PROBLEM\\s+db\\s+\\S+ralph\\.db is damaged \\(.+\\), but ralph processes still use it: loop l2-0000 \\(runner pid ${runner.pid}\\); stop them`));
    assert.ok(readFileSync(dbPath).equals(damaged), 'the DB was left as it was');
    assert.not.ok(readdirSync(t.home).some((f) => f.includes('.damaged-')));

    runner.kill('SIGKILL');
    await exited;
    const fixed = await ralph(['doctor'], { env: t.env });
    assert.is(fixed.code, 0, fixed.stdout + fixed.stderr);
    assert.match(fixed.stdout, /fixed\s+db\s+\S+ was damaged .*recovered 3 loop\(s\) into a new DB; the damaged file is kept as/);
    // The recovered running row's runner is gone: the loop check marks it failed.
    assert.match(fixed.stdout, /fixed\s+loops\s+marked 1 loop\(s\) whose runner is gone as failed: l2-0000/);
  } finally {
    runner.kill('SIGKILL');
    t.cleanup();
  }
});

test('a DB that SQLite reads but is not a session DB (SQLITE_ERROR) is reported and left alone, not salvaged', async () => {
  const t = makeTempHome('ralph-doc');
  try {
    const dbPath = join(t.home, 'ralph.db');
    const other = new Database(dbPath);
    other.exec('CREATE TABLE notes (text TEXT); INSERT INTO notes VALUES (\'mine\')');
    other.close();
    const before = readFileSync(dbPath);
    const r = await ralph(['doctor'], { env: t.env });
    assert.is(r.code, 1);
    assert.match(r.stdout, /PROBLEM\s+db\s+\S+ralph\.db: no such table: loops \(is it a ralph session DB\?\); it was left as it is/);
    assert.ok(readFileSync(dbPath).equals(before));
    assert.not.ok(readdirSync(t.home).some((f) => f.includes('.damaged-')));
  } finally {
    t.cleanup();
  }
});

test('doctor --no-repair on a DB of an older schema: reports, writes nothing, does not migrate it', async () => {
  const t = makeTempHome('ralph-doc');
  try {
    const dbPath = join(t.home, 'ralph.db');
    const old = new Database(dbPath);
    old.exec(SCHEMA.split(/^-- version: 2\s*$/m)[0]!);
    old.pragma('user_version = 1');
    old.prepare("INSERT INTO loops (id, name, location, work_dir, agent, status, max_iterations, started_at, updated_at) VALUES ('a-0000', 'a-0000', 'local', '/tmp', 'custom', 'completed', 1, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')").run();
    old.close();
    const before = readFileSync(dbPath);
    const r = await ralph(['doctor', '--no-repair'], { env: t.env });
    assert.match(r.stdout, /ok\s+db\s+\S+ralph\.db: intact, 1 loop\(s\)/);
    assert.match(r.stdout, /info\s+loops\s+\S+ralph\.db has schema version 1 \(this ralph's is \d+\): loops not checked/);
    assert.ok(readFileSync(dbPath).equals(before), 'the file is unchanged');
    const after = new Database(dbPath, { readonly: true });
    assert.is(after.pragma('user_version', { simple: true }), 1);
    after.close();
    assert.equal(readdirSync(t.home).filter((f) => f.startsWith('ralph.db')), ['ralph.db'], 'no WAL or journal made');
  } finally {
    t.cleanup();
  }
});

test.run();
