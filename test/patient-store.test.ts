// The runner's patient store over a real SQLite DB that another connection locks: a read that cannot
// be done says why (never "no such loop"), and the usage totals, queued behind a run's held finish,
// are the sums of the runs once the lock goes.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { DbFaultError } from '../store/db-fault.js';
import { openDb } from '../store/db.js';
import { LoopStore } from '../store/loops.js';
import { PatientLoopStore } from '../store/patient-store.js';

function world() {
  const dir = mkdtempSync(join(tmpdir(), 'ralph-patient-'));
  const dbPath = join(dir, 'ralph.db');
  const db = openDb(dbPath, { busyTimeoutMs: 50 });
  new LoopStore(db).insert({ id: 'p-0001', name: 'p', location: 'local', workDir: dir, agent: 'claude', maxIterations: 5 });
  const logged: string[] = [];
  const store = new PatientLoopStore(db, dbPath, (l) => logged.push(l));
  // Another process's connection, as `ralph` commands or a second runner have.
  const other = new Database(dbPath);
  const cleanup = () => {
    store.close();
    other.close();
    db.close();
    rmSync(dir, { recursive: true, force: true });
  };
  return { dbPath, store, other, logged, cleanup };
}

test('a read the DB cannot take now throws its fault in the user\'s terms, not "no such loop"', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ralph-patient-'));
  const dbPath = join(dir, 'ralph.db');
  try {
    const setup = openDb(dbPath);
    new LoopStore(setup).insert({ id: 'p-0001', name: 'p', location: 'local', workDir: dir, agent: 'claude', maxIterations: 5 });
    setup.close();
    // Another connection holds the DB exclusively (readers too are locked out), before the runner's reads it.
    const other = new Database(dbPath);
    other.pragma('locking_mode = EXCLUSIVE');
    other.exec('BEGIN EXCLUSIVE; UPDATE loops SET name = name; COMMIT');
    const db = new Database(dbPath);
    db.pragma('busy_timeout = 50');
    const store = new PatientLoopStore(db, dbPath, () => {});
    let thrown: unknown;
    try {
      store.get('p-0001');
    } catch (err) {
      thrown = err;
    }
    assert.instance(thrown, DbFaultError);
    assert.match((thrown as Error).message, new RegExp(`^the session DB ${dbPath} is locked by another process`));
    other.close();
    assert.is(store.get('p-0001')?.id, 'p-0001', 'read once the lock goes');
    store.close();
    db.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('usage totals queued behind held run records are the sums of the runs once the lock goes', async () => {
  const w = world();
  try {
    const its = w.store.iterations;
    const usage = (input: number, cost: number | null) => ({ inputTokens: input, outputTokens: 10, cacheReadTokens: null, cacheWriteTokens: 5, costUsd: cost });
    const first = its.start('p-0001', 1, 'claude', null);
    its.finish(first, { model: 'm', outcome: 'ok', exitCode: 0, reason: null, ...usage(100, 0.5) });
    w.store.updateUsageTotals('p-0001');
    w.other.exec('BEGIN IMMEDIATE');
    // While another writer holds the lock: a run starts and ends, and the totals are asked for.
    const second = its.start('p-0001', 2, 'claude', null);
    assert.ok(second < 0, 'a stand-in id while the row cannot be written');
    its.finish(second, { model: 'm', outcome: 'ok', exitCode: 0, reason: null, ...usage(250, null) });
    w.store.updateUsageTotals('p-0001');
    assert.match(w.logged.join('\n'), /is locked by another process/);
    w.other.exec('COMMIT');
    assert.ok(await w.store.settled(10_000), 'the held writes reached the DB');
    const row = new LoopStore(w.other).get('p-0001')!;
    assert.equal(
      [row.inputTokens, row.outputTokens, row.cacheReadTokens, row.cacheWriteTokens, row.costUsd],
      [350, 20, null, 10, 0.5],
      'the second run counts although its finish was held',
    );
    const runs = w.other.prepare('SELECT iteration, input_tokens AS input, outcome FROM iterations ORDER BY id').all();
    assert.equal(runs, [
      { iteration: 1, input: 100, outcome: 'ok' },
      { iteration: 2, input: 250, outcome: 'ok' },
    ]);
  } finally {
    w.cleanup();
  }
});

test.run();
