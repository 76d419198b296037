// The session DB's schema migrations and the iterations table: a DB written by an older ralph keeps
// every row, gains the new fields, and the loop totals are the sums of the runs.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import Database from 'better-sqlite3';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, readConfig, writeConfig } from '../store/config.js';
import { openDb } from '../store/db.js';
import { IterationStore } from '../store/iterations.js';
import { LoopStore } from '../store/loops.js';

const SCHEMA = readFileSync(join(process.cwd(), 'schema.sql'), 'utf8');

function tempDb(): { path: string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'ralph-store-'));
  return { path: join(dir, 'ralph.db'), cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

test('migration 2: a version-1 DB keeps its rows and gains paused, timeouts, usage and iterations', () => {
  const { path, cleanup } = tempDb();
  try {
    // A DB as ralph wrote it before: only the version-1 section of schema.sql applied.
    const v1 = SCHEMA.split(/^-- version: 2\s*$/m)[0]!;
    const old = new Database(path);
    old.exec(v1);
    old.pragma('user_version = 1');
    old
      .prepare(
        `INSERT INTO loops (id, name, location, work_dir, agent, status, iteration, max_iterations, started_at, updated_at, reason)
         VALUES ('old-1a2b', 'old-1a2b', 'local', '/w', 'claude', 'completed', 3, 10, '2026-11-01T00:00:00.000Z', '2026-11-01T00:00:00.000Z', 'all 3 stories pass')`,
      )
      .run();
    old.close();

    const db = openDb(path);
    assert.is(db.pragma('user_version', { simple: true }), 2);
    const store = new LoopStore(db);
    const row = store.get('old-1a2b')!;
    assert.is(row.status, 'completed');
    assert.is(row.reason, 'all 3 stories pass');
    assert.is(row.iteration, 3);
    assert.is(row.costUsd, null, 'usage unknown for an old loop');
    assert.is(store.find('old-1a2b')?.id, 'old-1a2b', 'the name index survived the rebuild');

    store.insert({ id: 'new-0001', name: 'new-0001', location: 'local', workDir: '/w', agent: 'claude', maxIterations: 5 });
    store.update('new-0001', { status: 'paused', pausedUntil: '2026-12-02T10:00:00.000Z', reason: 'rate limited' });
    assert.equal(store.listOpen().map((r) => r.id), ['new-0001'], 'paused is an open status');
    assert.ok(store.finish('new-0001', 'stopped', 'stopped by request'), 'a paused loop can end');
    assert.throws(() => store.update('new-0001', { status: 'sleeping' as never }), /CHECK constraint/);
    db.close();
  } finally {
    cleanup();
  }
});

test('iterations: one row per run, loop totals are the sums, null while no run said', () => {
  const { path, cleanup } = tempDb();
  try {
    const db = openDb(path);
    const its = new IterationStore(db);
    const loops = new LoopStore(db);
    loops.insert({ id: 'x', name: 'x', location: 'local', workDir: '/w', agent: 'claude', maxIterations: 10, status: 'running' });
    const totals = () => {
      loops.updateUsageTotals('x');
      const r = loops.get('x')!;
      return { inputTokens: r.inputTokens, outputTokens: r.outputTokens, cacheReadTokens: r.cacheReadTokens, cacheWriteTokens: r.cacheWriteTokens, costUsd: r.costUsd };
    };
    assert.equal(totals(), { inputTokens: null, outputTokens: null, cacheReadTokens: null, cacheWriteTokens: null, costUsd: null });
    const a = its.start('x', 1, 'claude', 'US-001', '2026-12-02T10:00:00.000Z');
    its.finish(
      a,
      { model: 'claude-sonnet', outcome: 'ok', exitCode: 0, reason: null, inputTokens: 100, outputTokens: 20, cacheReadTokens: 5, cacheWriteTokens: 1, costUsd: 0.01 },
      '2026-12-02T10:00:01.500Z',
    );
    const b = its.start('x', 2, 'claude', 'US-002');
    its.finish(b, { model: null, outcome: 'failed', exitCode: 1, reason: 'Invalid API key', inputTokens: 50, outputTokens: 0, cacheReadTokens: null, cacheWriteTokens: null, costUsd: 0.02 });
    const rows = its.list('x');
    assert.is(rows.length, 2);
    assert.is(rows[0]!.durationMs, 1500);
    assert.is(rows[1]!.reason, 'Invalid API key');
    const t = totals();
    assert.is(t.inputTokens, 150);
    assert.is(t.outputTokens, 20);
    assert.is(t.cacheReadTokens, 5);
    assert.ok(Math.abs(t.costUsd! - 0.03) < 1e-9);
    db.close();
  } finally {
    cleanup();
  }
});

test('the config holds tokens: written 0600 even over a tmp file an earlier crash left open to others', () => {
  const { path: db, cleanup } = tempDb();
  const path = join(db, '..', 'config.json');
  try {
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, 'left by a crash');
    chmodSync(tmp, 0o644);
    const token = 'a'.repeat(64);
    writeConfig({ remotes: { box: { name: 'box', address: 'tcp://127.0.0.1:7000', token } } }, path);
    assert.is((statSync(path).mode & 0o777).toString(8), '600');
    assert.not.ok(existsSync(tmp));
    assert.is(readConfig(path).remotes.box!.token, token);
  } finally {
    cleanup();
  }
});

test('the session DB and its WAL files are readable by their owner only, an older 0644 DB included', () => {
  const { path, cleanup } = tempDb();
  const mode = (p: string) => statSync(p).mode & 0o777;
  try {
    const db = openDb(path);
    db.exec('CREATE TABLE probe (x); INSERT INTO probe VALUES (1)'); // a write: the WAL and its index exist
    for (const p of [path, `${path}-wal`, `${path}-shm`]) assert.is(mode(p), 0o600, p);
    db.close();

    chmodSync(path, 0o644);
    openDb(path).close();
    assert.is(mode(path), 0o600, 'tightened when opened');
  } finally {
    cleanup();
  }
});

test('a config whose token is not a daemon token is refused when read, naming the remote', () => {
  const { path: db, cleanup } = tempDb();
  const path = join(db, '..', 'config.json');
  try {
    writeFileSync(path, JSON.stringify({ remotes: { box: { address: 'tcp://127.0.0.1:7000', token: 'secret with spaces\n' } } }));
    let err: Error | undefined;
    try {
      readConfig(path);
    } catch (e) {
      err = e as Error;
    }
    assert.instance(err, ConfigError);
    assert.match(err!.message, /config\.json: remote box: "token" is not a daemon token .*; fix or remove the file$/);
  } finally {
    cleanup();
  }
});

test('a remote whose address is missing, not a string, or which is not an object is refused, each said as it is', () => {
  const { path: db, cleanup } = tempDb();
  const path = join(db, '..', 'config.json');
  const cases: [unknown, RegExp][] = [
    [{}, /remote box has no "address"; fix or remove the file$/],
    [{ address: 5 }, /remote box: "address" must be a string; fix or remove the file$/],
    [['tcp:127.0.0.1:7000'], /remote box must be an object; fix or remove the file$/],
  ];
  try {
    for (const [box, said] of cases) {
      writeFileSync(path, JSON.stringify({ remotes: { box } }));
      assert.throws(() => readConfig(path), (err: Error) => err instanceof ConfigError && said.test(err.message));
    }
  } finally {
    cleanup();
  }
});

test.run();
