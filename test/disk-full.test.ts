// The disk under RALPH_HOME fills up while a loop floods its log: the loop ends `failed` with the
// reason (its agent stopped, so nothing more is lost), every client got all the output the runner
// had, `ralph status` and `ralph doctor` still work and say so; once space returns, the log catches
// up byte for byte, the row records the end, and new loops run. The home is a small tmpfs this test
// mounts itself (it needs root, or CAP_SYS_ADMIN; without it the file says why and skips).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statfsSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { OutputHistory } from '../loop/history.js';
import { runnerLogPath } from '../loop/launch.js';
import { homePaths } from '../store/paths.js';
import { alive, ralph, waitUntil, skipped, type TempHome } from './helpers/env.js';
import { fixtureAgentCmd, LoopClient } from './helpers/loop.js';
import { makeTaskRepo } from './helpers/task.js';

const MOUNT_MB = 12;

function mountTmpfs(sizeMb = MOUNT_MB): { dir: string; unmount(): void } | { skip: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ralph-full-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m,mode=0700`, 'ralph-test-full', dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    return { skip: `cannot mount a tmpfs here (${(r.stderr || r.error?.message || '').trim()}); the disk-full test needs root` };
  }
  return {
    dir,
    unmount: () => {
      spawnSync('umount', ['-l', dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Fills the file system under `dir` until no more than `leaveBytes` are free; returns the filler's path. */
function fill(dir: string, leaveBytes: number): string {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  const block = Buffer.alloc(64 * 1024, 0x2e);
  try {
    for (;;) {
      const { bavail, bsize } = statfsSync(dir);
      const room = bavail * bsize - leaveBytes;
      if (room <= 0) break;
      writeSync(fd, block, 0, Math.min(block.length, room));
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
  return path;
}

test('disk full under RALPH_HOME: the loop fails with the reason, clients lose nothing, and all is recorded once space returns', async () => {
  const m = mountTmpfs();
  if ('skip' in m) {
    return skipped(m.skip);
  }
  const home = m.dir;
  const t: TempHome = {
    home,
    env: { ...process.env, RALPH_HOME: home, RALPH_CONFIG: join(home, 'config.json') },
    cleanup: () => {},
  };
  const repo = makeTaskRepo({ stories: 1 });
  const gate = join(repo.dir, '.gate');
  let runnerPid = 0;
  const second = makeTaskRepo({ stories: 1 });
  try {
    const r = await ralph(['run', repo.dir, '--agent-cmd', fixtureAgentCmd('wait,flood,work')], {
      env: { ...t.env, FIXTURE_GATE: gate, FIXTURE_FLOOD_MB: '16' },
    });
    assert.is(r.code, 0, r.stderr);
    const id = r.stdout.trim();
    const paths = homePaths(home);
    const client = await LoopClient.connect(paths.socketFor(id));
    await client.subscribe({ fromSeq: 0 });
    const db = new Database(paths.db, { readonly: true });
    runnerPid = (db.prepare('SELECT pid FROM loops WHERE id = ?').get(id) as { pid: number }).pid;
    db.close();

    const filler = fill(home, 256 * 1024);
    writeFileSync(gate, '');
    const end = await client.waitForEnd();
    assert.is(end.status, 'failed');
    assert.match(end.reason!, /cannot write \S+\.log \(ENOSPC: the disk is full\); free some space and start the loop again/);
    assert.equal(client.gaps, []);

    // While the disk is full: status reads, doctor says what is wrong.
    const status = await ralph(['status', '--json'], { env: t.env });
    assert.is(status.code, 0, status.stderr);
    const doctor = await ralph(['doctor', '--no-repair'], { env: t.env });
    assert.match(doctor.stdout, /PROBLEM\s+home\s+\S+: \d+ MiB free; loops pause while the disk is full|PROBLEM\s+home\s+\S+: 0 MiB free/);

    rmSync(filler);
    // The runner writes what the log lacks, records the end, and leaves.
    await waitUntil(() => !alive(runnerPid), { what: 'the runner to finish up and exit', timeoutMs: 30_000 });
    assert.is(readFileSync(paths.logFor(id), 'utf8'), client.output, 'the log holds every byte the client got');
    const row = JSON.parse((await ralph(['status', '--json'], { env: t.env })).stdout).find((x: any) => x.id === id);
    assert.is(row.status, 'failed');
    assert.match(row.reason, /the disk is full/);
    assert.match(readFileSync(runnerLogPath(paths, id), 'utf8'), /cannot write .*ENOSPC/);
    const check = new Database(paths.db, { readonly: true });
    assert.is(check.pragma('integrity_check', { simple: true }), 'ok');
    check.close();

    // And the home works again.
    const again = await ralph(['run', second.dir, '--agent-cmd', fixtureAgentCmd('work')], { env: t.env });
    assert.is(again.code, 0, again.stderr);
    const logs = await ralph(['logs', '-f', again.stdout.trim()], { env: t.env, timeoutMs: 60_000 });
    assert.match(logs.stdout, /all 1 stories pass|story US-1 done/, logs.stdout + logs.stderr);
    client.close();
  } finally {
    if (runnerPid && alive(runnerPid)) process.kill(runnerPid, 'SIGKILL');
    repo.cleanup();
    second.cleanup();
    m.unmount();
  }
});

test('more output than memory holds while the log cannot be written: the log stays an exact prefix, and where it ends is told', () => {
  const m = mountTmpfs(1);
  if ('skip' in m) {
    console.log(m.skip);
    return;
  }
  const path = join(m.dir, 'loop.log');
  const h = new OutputHistory(path, { ringBytes: 64 * 1024, logBatchBytes: 8 * 1024 });
  try {
    const failed: string[] = [];
    const lost: number[] = [];
    h.on('logFailed', (err) => failed.push(err.code ?? err.message));
    h.on('logLost', (from) => lost.push(from));
    // Numbered lines: a byte at the wrong offset shows.
    let all = '';
    const say = (n: number) => {
      const line = `line ${String(n).padStart(6, '0')} ${'.'.repeat(40)}\n`;
      all += line;
      h.append(line);
    };
    for (let i = 0; i < 100; i++) say(i);
    h.flush();
    const filler = fill(m.dir, 0);
    for (let i = 100; i < 5000; i++) say(i); // ~250 KiB: far more than the ring
    assert.equal(failed, ['ENOSPC']);
    assert.is(lost.length, 1, 'told once');
    const from = lost[0]!;
    assert.ok(from >= 100 * 52 && from < h.endSeq - h.ringCapacity, `lost from ${from}`);
    rmSync(filler);
    assert.is(h.retryLog(), true, 'nothing more to try');
    for (let i = 5000; i < 5010; i++) say(i);
    h.flush();
    assert.is(h.logLostFrom, from);
    const log = readFileSync(path, 'utf8');
    assert.is(log.length, from, 'the log ends where the loss began');
    assert.ok(log === all.slice(0, from), 'the log is exactly the output up to there');
  } finally {
    h.close();
    m.unmount();
  }
});

test.run();
