// Faults with nothing lost: the session DB locked by another writer for as long as the test says, a damaged session DB
// (and `ralph doctor` recovering it), every ralph process SIGKILLed at once. Each ends with a clear
// message, the DB intact, and every loop either going on or marked failed with a reason.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { LOOP_PROTOCOL } from '../loop/protocol.js';
import { runnerLogPath } from '../loop/launch.js';
import { RpcPeer } from '../rpc/peer.js';
import { killRunners, startDaemon } from './helpers/daemon.js';
import { holdWriteLock } from './helpers/db-lock.js';
import { alive, makeTempHome, ralph, RALPH_BIN, waitUntil, type TempHome } from './helpers/env.js';
import { fixtureAgentCmd, LoopHarness } from './helpers/loop.js';
import { makeTaskRepo, type TaskRepo } from './helpers/task.js';

function integrity(dbPath: string): string {
  const db = new Database(dbPath, { readonly: true });
  try {
    return db.pragma('integrity_check', { simple: true }) as string;
  } finally {
    db.close();
  }
}

test('the DB locked by another writer: the loop runs on and ends, its row catches up, status reads, a new run waits and starts', async () => {
  const h = new LoopHarness('ralph-flt');
  let lock: ReturnType<typeof holdWriteLock> | undefined;
  try {
    const repo = h.repo({ stories: 2 });
    const gate = join(repo.dir, '.gate');
    const loop = await h.start({ repo, steps: 'wait,slow,work', env: { FIXTURE_GATE: gate, FIXTURE_SLOW_MS: '5', FIXTURE_SLOW_COUNT: '100' } });
    const client = await h.connect(loop);
    await client.subscribe({ fromSeq: 0 });
    // Held from here until lock.release() below.
    lock = holdWriteLock(h.paths.db);
    await lock.locked;
    writeFileSync(gate, '');

    // Another `ralph run` meanwhile: it waits for the lock (no error) and starts once it is free.
    const second = h.repo({ stories: 1 });
    const run = ralph(['run', second.dir, '--agent-cmd', fixtureAgentCmd('work')], { env: h.home.env, timeoutMs: 60_000 });
    // Status reads while the lock is held.
    const status = await ralph(['status', '--json'], { env: h.home.env });
    assert.is(status.code, 0, status.stderr);
    assert.is(JSON.parse(status.stdout).find((r: any) => r.id === loop.row.id)?.status, 'running');

    // Both iterations and the end happen during the lock: the runner never waits on the DB.
    const end = await client.waitForEnd();
    assert.is(end.status, 'completed');
    assert.is(client.output, readFileSync(loop.row.logPath!, 'utf8'));
    // Still held: the runner could not have written its final row yet.
    assert.is(h.row(loop.row.id).status, 'running', 'the row waits for the lock');

    await lock.release();
    const row = await waitUntil(() => {
      const r = h.row(loop.row.id);
      return r.status === 'completed' ? r : undefined;
    }, { what: 'the held final row to be written' });
    assert.is(row.iteration, 2);
    assert.match(row.reason!, /all 2 stories pass/);
    assert.match(readFileSync(runnerLogPath(h.paths, loop.row.id), 'utf8'), /session DB .* is locked by another process/);
    await h.exited(loop.pid);

    const started = await run;
    assert.is(started.code, 0, started.stderr);
    const id = started.stdout.trim();
    await waitUntil(() => h.row(id)?.status === 'completed', { what: 'the second loop to complete' });
    assert.is(integrity(h.paths.db), 'ok');
  } finally {
    lock?.kill();
    await h.cleanup();
  }
});

/** Task repos a test made: removed in its finally. */
function repos(): { make(stories: number): TaskRepo; cleanup(): void } {
  const made: TaskRepo[] = [];
  return {
    make(stories) {
      const r = makeTaskRepo({ stories });
      made.push(r);
      return r;
    },
    cleanup: () => made.splice(0).forEach((r) => r.cleanup()),
  };
}

async function runToEnd(t: TempHome, made: ReturnType<typeof repos>, stories = 1): Promise<string> {
  const repo = made.make(stories);
  const r = await ralph(['run', repo.dir, '--agent-cmd', fixtureAgentCmd('work')], { env: t.env });
  assert.is(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  const logs = await ralph(['logs', '-f', id], { env: t.env, timeoutMs: 60_000 });
  assert.is(logs.code, 0, logs.stderr);
  return id;
}

/**
 * Waits until no runner of this home is left, then folds the WAL into the DB file so that damage
 * done to the file is damage to the data. (The last connection to close checkpoints on its own,
 * but two closing at once, or this probe's read, can each leave it to the other.)
 */
async function runnersGone(t: TempHome, ids: string[]): Promise<void> {
  const db = new Database(join(t.home, 'ralph.db'));
  try {
    const pids = ids.map((id) => (db.prepare('SELECT pid FROM loops WHERE id = ?').get(id) as { pid: number }).pid);
    await waitUntil(() => pids.every((p) => !alive(p)), { what: 'the runners to exit' });
    db.pragma('wal_checkpoint(TRUNCATE)');
  } finally {
    db.close();
  }
}

test('a truncated session DB: one clear line from every command; ralph doctor recovers its loops and keeps the damaged file', async () => {
  const t = makeTempHome('ralph-flt');
  const made = repos();
  try {
    const ids = [await runToEnd(t, made), await runToEnd(t, made)];
    await runnersGone(t, ids);
    const dbPath = join(t.home, 'ralph.db');
    assert.not.ok(existsSync(dbPath + '-wal') && statSync(dbPath + '-wal').size > 0, 'the WAL was checkpointed');
    // Cut the file short right after the loops table's page: the pages after it (indexes, the
    // iterations table) are gone, as after a write that never reached the disk.
    const probe = new Database(dbPath, { readonly: true });
    const root = (probe.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'loops'").get() as { rootpage: number }).rootpage;
    const pageSize = probe.pragma('page_size', { simple: true }) as number;
    probe.close();
    assert.ok(root * pageSize < statSync(dbPath).size, 'something is cut off');
    truncateSync(dbPath, root * pageSize);

    for (const args of [['status'], ['logs', ids[0]!], ['run', made.make(1).dir, '--agent-cmd', 'true']]) {
      const r = await ralph(args, { env: t.env });
      assert.is(r.code, 1, `ralph ${args[0]}`);
      assert.is(r.stdout, '');
      assert.match(r.stderr, /^ralph: the session DB \S+ralph\.db is damaged \(database disk image is malformed\); run `ralph doctor` to check it and recover its loops\n$/);
    }

    const doctor = await ralph(['doctor'], { env: t.env });
    assert.is(doctor.code, 0, doctor.stdout + doctor.stderr);
    assert.match(doctor.stdout, /fixed\s+db\s+\S+ was damaged .*recovered 2 loop\(s\) into a new DB; the damaged file is kept as \S+ralph\.db\.damaged-/);
    assert.ok(readdirSync(t.home).some((f) => f.startsWith('ralph.db.damaged-')));
    assert.is(integrity(dbPath), 'ok');

    const status = await ralph(['status', '--json'], { env: t.env });
    assert.is(status.code, 0, status.stderr);
    const rows = JSON.parse(status.stdout);
    for (const id of ids) assert.is(rows.find((r: any) => r.id === id)?.status, 'completed');
    const again = await ralph(['doctor'], { env: t.env });
    assert.is(again.code, 0);
    assert.match(again.stdout, /all is well\n$/);
    await runToEnd(t, made);
  } finally {
    killRunners(t.home);
    t.cleanup();
    made.cleanup();
  }
});

test('a DB whose header is destroyed: one clear line; doctor starts a new DB and says it recovered nothing', async () => {
  const t = makeTempHome('ralph-flt');
  const made = repos();
  try {
    const id = await runToEnd(t, made);
    await runnersGone(t, [id]);
    const dbPath = join(t.home, 'ralph.db');
    writeFileSync(dbPath, Buffer.concat([Buffer.alloc(100, 0x55), readFileSync(dbPath).subarray(100)]));
    const r = await ralph(['status'], { env: t.env });
    assert.is(r.code, 1);
    assert.match(r.stderr, /^ralph: the session DB \S+ is damaged \(file is not a database\); run `ralph doctor`.*\n$/);
    const doctor = await ralph(['doctor'], { env: t.env });
    assert.is(doctor.code, 0, doctor.stdout + doctor.stderr);
    assert.match(doctor.stdout, /recovered 0 loop\(s\) into a new DB; the damaged file is kept as/);
    assert.is((await ralph(['status'], { env: t.env })).code, 0);
  } finally {
    killRunners(t.home);
    t.cleanup();
    made.cleanup();
  }
});

/** Every process whose parent is `pid`, recursively. */
function descendants(pid: number): number[] {
  const out: number[] = [];
  const parentOf = new Map<number, number>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      parentOf.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* gone */
    }
  }
  const walk = (p: number) => {
    for (const [child, parent] of parentOf) if (parent === p) (out.push(child), walk(child));
  };
  walk(pid);
  return out;
}

test('every ralph process SIGKILLed at once: status marks the loops failed with a reason, doctor clears the sockets, a restarted daemon agrees and runs loops', async () => {
  const t = makeTempHome('ralph-flt');
  const made = repos();
  let d = await startDaemon(t, { listen: ['tcp://127.0.0.1:0'] });
  try {
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      const r = await ralph(['run', made.make(1).dir, '--agent-cmd', fixtureAgentCmd('slow,work')], {
        env: { ...t.env, FIXTURE_SLOW_MS: '50', FIXTURE_SLOW_COUNT: '100000' },
      });
      assert.is(r.code, 0, r.stderr);
      ids.push(r.stdout.trim());
    }
    const db = new Database(join(t.home, 'ralph.db'), { readonly: true });
    const runners = ids.map((id) => (db.prepare('SELECT pid FROM loops WHERE id = ?').get(id) as { pid: number }).pid);
    db.close();
    // Clients: a `ralph logs -f`, and a remote one through the daemon.
    const follower = spawn(process.execPath, [RALPH_BIN, 'logs', '-f', ids[0]!], { env: t.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let followed = '';
    follower.stdout.on('data', (c) => (followed += c));
    const { stream } = await d.open({ channel: 'loop', loop: ids[1]! });
    const remote = new RpcPeer(stream);
    await remote.request('subscribe', { protocol: LOOP_PROTOCOL, fromSeq: 0 }, { timeoutMs: 10_000 });
    await waitUntil(() => followed.includes('slow line 3'), { what: 'the follower to see output' });

    const everyone = [d.pid, follower.pid!, ...runners, ...runners.flatMap(descendants)];
    for (const pid of everyone) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone already */
      }
    }
    await waitUntil(() => everyone.every((p) => !alive(p) || /^State:\s+Z/m.test(readFileSync(`/proc/${p}/status`, 'utf8'))), {
      what: 'every process to be gone',
    });
    await d.stop().catch(() => null);
    remote.close();

    const status = await ralph(['status', '--json'], { env: t.env });
    assert.is(status.code, 0, status.stderr);
    for (const id of ids) {
      const row = JSON.parse(status.stdout).find((r: any) => r.id === id);
      assert.is(row.status, 'failed');
      assert.is(row.reason, 'runner exited unexpectedly');
    }
    assert.is(integrity(join(t.home, 'ralph.db')), 'ok');

    const doctor = await ralph(['doctor'], { env: t.env });
    assert.is(doctor.code, 0, doctor.stdout + doctor.stderr);
    assert.match(doctor.stdout, /fixed\s+sockets\s+removed 3 socket\(s\) nobody listens on: /);
    assert.match(doctor.stdout, /ok\s+db\s+\S+: intact, 2 loop\(s\)/);

    d = await startDaemon(t, { listen: ['tcp://127.0.0.1:0'] });
    const control = await d.control();
    const info: any = await control.request('daemon.info');
    assert.is(info.loopsRunning, 0);
    const list: any[] = await control.request('loop.list', {});
    for (const id of ids) assert.is(list.find((l) => l.loopId === id)?.status, 'failed');
    control.close();
    // The home works as before: a new loop runs to its end.
    await runToEnd(t, made);
  } finally {
    await d.stop().catch(() => null);
    killRunners(t.home);
    t.cleanup();
    made.cleanup();
  }
});

test.run();
