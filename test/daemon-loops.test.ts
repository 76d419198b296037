// Loops on a daemon: loop.start from a real bare repo, events, attach through the loop channel,
// the concurrency limit, and faults (runner crash; daemon SIGKILL and restart with loops running).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { openDb } from '../store/db.js';
import { LoopStore } from '../store/loops.js';
import { join } from 'node:path';
import { LOOP_PROTOCOL } from '../loop/protocol.js';
import { ErrorCodes, RpcError, RpcPeer } from '../rpc/index.js';
import { makeTempHome, ralph, runCommand, waitUntil, alive } from './helpers/env.js';
import { killRunners, startDaemon, type DaemonHandle } from './helpers/daemon.js';
import { holdWriteLock } from './helpers/db-lock.js';
import { holdInstallLock } from './helpers/install-lock.js';

const t = makeTempHome('ralph-dl');
const gates = join(t.home, 'gates');
const agentScript = join(t.home, 'gated-agent.mjs');
let d: DaemonHandle;

// A stand-in agent: waits until the test opens its loop's gate (a file named after RALPH_LOOP_ID),
// then marks the next story of prd.json as passing and prints the promise when all pass.
const AGENT = `
import { existsSync, readFileSync, watch, writeFileSync } from 'node:fs';
import { join } from 'node:path';
const gate = join(process.argv[2], process.env.RALPH_LOOP_ID);
console.log('gated agent: waiting for ' + process.env.RALPH_LOOP_ID);
await new Promise((resolve) => {
  const w = watch(process.argv[2], () => { if (existsSync(gate)) { w.close(); resolve(); } });
  if (existsSync(gate)) { w.close(); resolve(); }
});
const prdPath = join(process.env.RALPH_TASK_DIR, 'prd.json');
const prd = JSON.parse(readFileSync(prdPath, 'utf8'));
const next = prd.userStories.find((s) => !s.passes);
if (next) { next.passes = true; writeFileSync(prdPath, JSON.stringify(prd, null, 2)); console.log('gated agent: story ' + next.id + ' done'); }
if (prd.userStories.every((s) => s.passes)) console.log('<promise>COMPLETE</promise>');
`;
const agentCmd = `node ${agentScript} ${gates}`;
const open = (loopId: string) => writeFileSync(join(gates, loopId), '');

async function git(args: string[], cwd: string): Promise<string> {
  const r = await runCommand('git', args, { env: t.env, cwd, timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

test.before(async () => {
  mkdirSync(gates);
  writeFileSync(agentScript, AGENT);
  // The daemon's bare repo x.git gets branch `feature` with a two-story prd.json, pushed over file://.
  const bare = join(t.home, 'repos', 'x.git');
  mkdirSync(join(t.home, 'repos'), { recursive: true });
  await git(['init', '--quiet', '--bare', bare], t.home);
  const work = join(t.home, 'work');
  mkdirSync(work);
  await git(['init', '--quiet', '-b', 'feature'], work);
  const prd = {
    project: 'x',
    branchName: 'feature',
    userStories: [
      { id: 'US-1', title: 'one', passes: false, priority: 1 },
      { id: 'US-2', title: 'two', passes: false, priority: 2 },
    ],
  };
  writeFileSync(join(work, 'prd.json'), JSON.stringify(prd, null, 2));
  await git(['add', 'prd.json'], work);
  await git(['commit', '--quiet', '-m', 'task'], work);
  await git(['push', '--quiet', `file://${bare}`, 'feature'], work);
  // amp is not installed here; its package is a file that does not exist, so no install reaches npm's registry.
  writeFileSync(join(t.home, 'config.json'), JSON.stringify({ remotes: {}, agentPackages: { amp: join(t.home, 'no-such-amp.tgz') } }));
  d = await startDaemon(t, { listen: ['tcp://127.0.0.1:0'], maxLoops: 2 });
});

test.after(async () => {
  await d?.stop();
  killRunners(t.home);
  t.cleanup();
});

test('loop.start from a pushed branch runs to completion; events, list, logs and push.result agree', async () => {
  const sub = await d.subscribe();
  const control = await d.control();
  const head = await git(['rev-parse', 'refs/heads/feature'], join(t.home, 'repos', 'x.git'));
  const r: any = await control.request('loop.start', { repo: 'x', branch: 'feature', agentCmd, maxIterations: 5, pushId: 'push-1' }, { timeoutMs: 30_000 });
  assert.match(r.loopId, /^feature-[0-9a-f]{4}$/);
  assert.is(r.worktree, join(t.home, 'worktrees', r.loopId));
  assert.is(r.maxIterations, 5);
  assert.is(r.agent, 'custom');
  // The worktree sits on ralph/<id> at the pushed commit.
  assert.is(await git(['rev-parse', '--abbrev-ref', 'HEAD'], r.worktree), `ralph/${r.loopId}`);
  assert.is(await git(['rev-parse', 'HEAD'], r.worktree), head);

  const started = await sub.next('loop.started', r.loopId);
  assert.is(started.branch, 'feature');
  assert.is(started.repo, 'x');
  assert.is(started.baseCommit, head);
  assert.is(started.pushId, 'push-1');
  open(r.loopId);
  const done = await sub.next('loop.completed', r.loopId);
  assert.is(done.status, 'completed');
  assert.is(done.iteration, 2);

  const list: any[] = await control.request('loop.list', {});
  assert.is(list.find((l) => l.loopId === r.loopId)?.status, 'completed');
  const pushed: any[] = await control.request('push.result', { pushId: 'push-1' });
  assert.equal(pushed.map((l) => l.loopId), [r.loopId]);
  const logs: any = await control.request('loop.logs', { loopId: r.loopId });
  assert.is(logs.status, 'completed');
  assert.is(logs.seq, 0);
  assert.match(logs.data, /gated agent: story US-2 done/);
  assert.is(Buffer.byteLength(logs.data), logs.endSeq);
  // From an offset, bounded.
  const tail: any = await control.request('loop.logs', { loopId: r.loopId, fromSeq: 10, maxBytes: 5 });
  assert.is(tail.seq, 10);
  assert.is(Buffer.byteLength(tail.data), 5);
  // An ended loop cannot be attached; the error says how it ended and where its output is.
  try {
    await d.open({ channel: 'loop', loop: r.loopId });
    assert.unreachable('attach to an ended loop');
  } catch (err) {
    assert.is((err as RpcError).code, ErrorCodes.Refused);
    assert.match((err as Error).message, /is not running: it completed/);
    assert.match((err as Error).message, /loop\.logs/);
  }
  sub.peer.close();
  control.close();
});

test('a bad start leaves no row: unknown repo, unknown branch, missing task dir', async () => {
  const control = await d.control();
  const before = ((await control.request('loop.list', {})) as any[]).length;
  const err = (p: Promise<unknown>) => p.then(() => null, (e: RpcError) => e);
  const noRepo = await err(control.request('loop.start', { repo: 'nope', branch: 'feature', agentCmd }));
  assert.is(noRepo?.code, ErrorCodes.NotFound);
  const badRepo = await err(control.request('loop.start', { repo: '../x', branch: 'feature', agentCmd }));
  assert.is(badRepo?.code, ErrorCodes.InvalidParams);
  const noBranch = await err(control.request('loop.start', { repo: 'x', branch: 'nope', agentCmd }));
  assert.is(noBranch?.code, ErrorCodes.NotFound);
  assert.match(noBranch!.message, /no branch nope in repo x/);
  assert.is(((await control.request('loop.list', {})) as any[]).length, before);
  // Past the checks, a failure leaves a failed row with the reason, and no worktree.
  const noTask = await err(
    control.request('loop.start', { repo: 'x', branch: 'feature', agentCmd, task: 'no/such/dir', iterationTimeoutMs: 90_000, stallTimeoutMs: 30_000 }, { timeoutMs: 30_000 }),
  );
  assert.ok(noTask);
  const loopId = (noTask!.data as any).loopId as string;
  assert.match(noTask!.message, new RegExp(`loop ${loopId} failed to start`));
  const row = ((await control.request('loop.list', {})) as any[]).find((l) => l.loopId === loopId);
  assert.is(row.status, 'failed');
  assert.ok(row.reason);
  assert.not.ok(existsSync(join(t.home, 'worktrees', loopId)));
  // The failed row keeps the settings asked for, so `ralph resume` goes on with them.
  const db = new Database(join(t.home, 'ralph.db'), { readonly: true });
  const settings = db.prepare('SELECT iteration_timeout_ms AS it, stall_timeout_ms AS st FROM loops WHERE id = ?').get(loopId);
  db.close();
  assert.equal(settings, { it: 90_000, st: 30_000 });
  control.close();
});

test('the session DB locked by another process: loop.start is answered "busy" while the lock is held, other clients are served, the daemon starts loops once it is free', async () => {
  const control = await d.control();
  const err = (p: Promise<unknown>) => p.then(() => null, (e: RpcError) => e);
  const lock = holdWriteLock(join(t.home, 'ralph.db'));
  try {
    await lock.locked;
    // Held until lock.release() below, by construction.
    const busy = await err(control.request('loop.start', { repo: 'x', branch: 'feature', agentCmd }, { timeoutMs: 30_000 })) as RpcError | null;
    assert.instance(busy, RpcError);
    assert.is(busy!.code, ErrorCodes.Busy);
    assert.match(busy!.message, /^loop \S+ failed to start: the session DB is busy \(locked by another process\); try again$/);
    assert.not.ok(existsSync(join(t.home, 'worktrees', (busy!.data as any).loopId)), 'its worktree is removed');
    // Another client meanwhile: reads are served during the lock, and the daemon is alive.
    const other = await d.control();
    const list: any[] = await other.request('loop.list', {}, { timeoutMs: 5000 });
    assert.not.ok(list.some((l) => l.loopId === (busy!.data as any).loopId), 'no row for the start that could not write one');
    assert.is(((await other.request('daemon.info', {}, { timeoutMs: 5000 })) as any).loopsRunning, 0);
    other.close();
    await lock.release();
  } finally {
    lock.kill();
  }

  const sub = await d.subscribe();
  const r: any = await control.request('loop.start', { repo: 'x', branch: 'feature', agentCmd }, { timeoutMs: 30_000 });
  open(r.loopId);
  assert.is((await sub.next('loop.completed', r.loopId)).status, 'completed');
  sub.peer.close();
  control.close();
});

test('attach through the loop channel: subscribe, see output, see completion', async () => {
  const control = await d.control();
  const r: any = await control.request('loop.start', { repo: 'x', branch: 'feature', agentCmd, maxIterations: 5 }, { timeoutMs: 30_000 });
  const { stream } = await d.open({ channel: 'loop', loop: r.loopId });
  const loop = new RpcPeer(stream);
  let output = '';
  let nextSeq = 0;
  loop.onNotification('output', (p: any, _peer, payload) => {
    assert.is(p.seq, nextSeq, 'output is gap-free');
    nextSeq = p.seq + payload!.length;
    output += payload!.toString();
  });
  const completed = new Promise<any>((resolve) => loop.onNotification('completed', resolve));
  const sub: any = await loop.request('subscribe', { protocol: LOOP_PROTOCOL, fromSeq: 0 }, { timeoutMs: 5000 });
  assert.is(sub.seq, 0);
  const status: any = await loop.request('status', {}, { timeoutMs: 5000 });
  assert.is(status.id, r.loopId);
  await waitUntil(() => output.includes(`waiting for ${r.loopId}`), { what: 'the agent to say it waits' });
  open(r.loopId);
  const done = await completed;
  assert.is(done.status, 'completed');
  await waitUntil(() => nextSeq >= done.seq, { what: 'all output before completed' });
  assert.match(output, /story US-2 done/);
  loop.close();
  control.close();
});

test('over the concurrency limit loop.start answers -32002 and starts nothing', async () => {
  const control = await d.control();
  const a: any = await control.request('loop.start', { repo: 'x', branch: 'feature', agentCmd }, { timeoutMs: 30_000 });
  const b: any = await control.request('loop.start', { repo: 'x', branch: 'feature', agentCmd }, { timeoutMs: 30_000 });
  const before = ((await control.request('loop.list', {})) as any[]).length;
  try {
    await control.request('loop.start', { repo: 'x', branch: 'feature', agentCmd }, { timeoutMs: 30_000 });
    assert.unreachable('third loop over a limit of 2');
  } catch (err) {
    assert.is((err as RpcError).code, ErrorCodes.Busy);
    assert.match((err as Error).message, /limit is 2/);
  }
  assert.is(((await control.request('loop.list', {})) as any[]).length, before);
  const info: any = await control.request('daemon.info', {});
  assert.is(info.loopsRunning, 2);
  const sub = await d.subscribe();
  open(a.loopId);
  open(b.loopId);
  await sub.next('loop.completed', a.loopId);
  await sub.next('loop.completed', b.loopId);
  sub.peer.close();
  control.close();
});

test('two pushes of one branch at once start one loop; a push while it runs is refused, one with ralph.restart starts beside it; other starts are not held', async () => {
  const control = await d.control();
  const push = (pushId: string, extra: object = {}) =>
    control.request('loop.start', { repo: 'x.git', branch: 'feature', agentCmd, pushId, ...extra }, { timeoutMs: 30_000 }).then(
      (r: any) => ({ loopId: r.loopId as string }),
      (err: RpcError) => err,
    );
  // Both past pre-receive before either row is written: the daemon is where they meet.
  const both = await Promise.all([push('push-a'), push('push-b')]);
  const started = both.filter((r): r is { loopId: string } => !(r instanceof RpcError));
  const refused = both.filter((r): r is RpcError => r instanceof RpcError);
  assert.is(started.length, 1, JSON.stringify(both));
  const a = started[0]!.loopId;
  assert.is(refused[0]!.code, ErrorCodes.Refused);
  assert.is(refused[0]!.message, `loop ${a} is still starting on feature; wait, ralph stop ${a}, or push with -o ralph.restart`);

  const later = await push('push-c');
  assert.instance(later, RpcError);
  assert.is((later as RpcError).message, `loop ${a} is still running on feature; wait, ralph stop ${a}, or push with -o ralph.restart`);
  // ralph.restart: pre-receive has stopped the old loop, which may still be ending.
  const restarted = await push('push-d', { restart: true });
  assert.not.instance(restarted, RpcError, String(restarted));
  const b = (restarted as { loopId: string }).loopId;
  const bad = await control.request('loop.start', { repo: 'x', branch: 'feature', agentCmd, pushId: 'push-e', restart: 'yes' }).then(() => null, (e: RpcError) => e);
  assert.is(bad?.code, ErrorCodes.InvalidParams);

  const rows = (await control.request('loop.list', {})) as any[];
  assert.equal(rows.filter((r) => !['completed', 'failed', 'stopped'].includes(r.status)).map((r) => r.loopId).sort(), [a, b].sort());
  const sub = await d.subscribe();
  open(a);
  open(b);
  await sub.next('loop.completed', a);
  await sub.next('loop.completed', b);
  sub.peer.close();
  control.close();
});

test('a runner killed while the daemon watches is recorded failed and announced', async () => {
  const sub = await d.subscribe();
  const control = await d.control();
  const r: any = await control.request('loop.start', { repo: 'x', branch: 'feature', agentCmd }, { timeoutMs: 30_000 });
  const row = ((await control.request('loop.list', {})) as any[]).find((l) => l.loopId === r.loopId);
  assert.ok(row);
  const pid = await runnerPid(r.loopId);
  process.kill(pid, 'SIGKILL');
  const failed = await sub.next('loop.failed', r.loopId);
  assert.is(failed.status, 'failed');
  assert.match(failed.reason, /runner exited unexpectedly/);
  sub.peer.close();
  control.close();
});

test('a runner killed while another process holds the DB lock: the daemon says so and serves on; once the lock goes the loop is recorded failed and announced', async () => {
  const sub = await d.subscribe();
  const control = await d.control();
  const r: any = await control.request('loop.start', { repo: 'x', branch: 'feature', agentCmd }, { timeoutMs: 30_000 });
  const pid = await runnerPid(r.loopId);
  const lock = holdWriteLock(join(t.home, 'ralph.db'));
  try {
    await lock.locked;
    process.kill(pid, 'SIGKILL');
    // The supervisor cannot write the loop's end while the lock is held: it says so and looks again.
    await d.waitForLog(new RegExp(`loop ${r.loopId}: the session DB is busy \\(locked by another process\\); looking at it again`), 30_000);
    const info: any = await control.request('daemon.info', {}, { timeoutMs: 5000 });
    assert.ok(info, 'the daemon answers while the lock is held');
    assert.not.ok(sub.events.some((e) => e.params?.loopId === r.loopId && e.method === 'loop.failed'), 'nothing announced before it is recorded');
    await lock.release();
  } finally {
    lock.kill();
  }
  const failed = await sub.next('loop.failed', r.loopId);
  assert.is(failed.status, 'failed');
  assert.match(failed.reason, /runner exited unexpectedly/);
  const row = ((await control.request('loop.list', {})) as any[]).find((l) => l.loopId === r.loopId);
  assert.is(row.status, 'failed');
  sub.peer.close();
  control.close();
});

test('loop.resume goes on from ralph/<id> once: a doubled request and a later one are refused, naming the loop that took over; a loop whose branch is gone is refused', async () => {
  const sub = await d.subscribe();
  const control = await d.control();
  const err = (p: Promise<unknown>) => p.then((v: any) => v, (e: RpcError) => e);
  const r: any = await control.request('loop.start', { repo: 'x', branch: 'feature', agentCmd, stallTimeoutMs: 600_000 }, { timeoutMs: 30_000 });
  process.kill(await runnerPid(r.loopId), 'SIGKILL');
  await sub.next('loop.failed', r.loopId);

  // A client that timed out and retried, or a double command: both requests arrive together.
  const both = await Promise.all([1, 2].map(() => err(control.request('loop.resume', { loopId: r.loopId }, { timeoutMs: 30_000 }))));
  const started = both.filter((x) => !(x instanceof RpcError));
  const refused = both.filter((x) => x instanceof RpcError) as RpcError[];
  assert.is(started.length, 1, JSON.stringify(both.map((x) => (x instanceof RpcError ? x.message : x))));
  assert.is(refused[0]!.code, ErrorCodes.Refused);
  assert.is(refused[0]!.message, `loop ${r.loopId} is being resumed right now (by another request); see ralph status`);
  const next = started[0] as any;
  const later = await err(control.request('loop.resume', { loopId: r.loopId }, { timeoutMs: 30_000 }));
  assert.instance(later, RpcError);
  assert.match(later.message, new RegExp(`^loop ${r.loopId} was already resumed: loop ${next.loopId} goes on from it \\((starting|running)\\); see ralph status$`));
  const list: any[] = await control.request('loop.list', {});
  assert.equal(list.filter((l) => l.resumedFrom === r.loopId).map((l) => l.loopId), [next.loopId]);
  const db = new Database(join(t.home, 'ralph.db'), { readonly: true });
  assert.is((db.prepare('SELECT stall_timeout_ms AS st FROM loops WHERE id = ?').get(next.loopId) as any).st, 600_000);
  db.close();
  open(next.loopId);
  await sub.next('loop.completed', next.loopId);

  // The agent's work lives on ralph/<id>: without it, resuming would silently start over.
  const gone: any = await control.request('loop.start', { repo: 'x', branch: 'feature', agentCmd }, { timeoutMs: 30_000 });
  process.kill(await runnerPid(gone.loopId), 'SIGKILL');
  await sub.next('loop.failed', gone.loopId);
  await git(['update-ref', '-d', `refs/heads/ralph/${gone.loopId}`], join(t.home, 'repos', 'x.git'));
  const noBranch = await err(control.request('loop.resume', { loopId: gone.loopId }, { timeoutMs: 30_000 }));
  assert.instance(noBranch, RpcError);
  assert.is(noBranch.code, ErrorCodes.Refused);
  assert.match(noBranch.message, new RegExp(`^loop ${gone.loopId} cannot be resumed: its branch ralph/${gone.loopId} is gone from repo x on \\S+, and with it the agent's work; push feature again to start a new loop$`));
  const after: any[] = await control.request('loop.list', {});
  assert.not.ok(after.some((l) => l.resumedFrom === gone.loopId), 'nothing started');
  sub.peer.close();
  control.close();
});

test('daemon SIGKILL + restart: loops keep running and are re-adopted; one killed meanwhile is failed', async () => {
  let control = await d.control();
  const keep: any = await control.request('loop.start', { repo: 'x', branch: 'feature', agentCmd }, { timeoutMs: 30_000 });
  const doomed: any = await control.request('loop.start', { repo: 'x', branch: 'feature', agentCmd }, { timeoutMs: 30_000 });
  const keepPid = await runnerPid(keep.loopId);
  const doomedPid = await runnerPid(doomed.loopId);
  control.close();

  await d.kill();
  assert.ok(alive(keepPid), 'the runner outlives its daemon');
  process.kill(doomedPid, 'SIGKILL');
  await waitUntil(() => !alive(doomedPid), { what: 'the killed runner to go' });
  // A loop whose runner died before a reboot, its pid now another process's: dead all the same.
  const other = spawn('sleep', ['600'], { stdio: 'ignore' });
  await once(other, 'spawn');
  const reused = insertRunningRow('reused-0000', other.pid!);

  try {
    d = await startDaemon(t, { listen: ['tcp://127.0.0.1:0'], maxLoops: 2 });
    control = await d.control();
    const list: any[] = await control.request('loop.list', {});
    assert.is(list.find((l) => l.loopId === keep.loopId)?.status, 'running');
    const gone = list.find((l) => l.loopId === doomed.loopId);
    assert.is(gone?.status, 'failed');
    assert.match(gone.reason, /runner exited unexpectedly/);
    const notOurs = list.find((l) => l.loopId === reused);
    assert.is(notOurs?.status, 'failed', 'a live pid that is not its runner');
    assert.is(notOurs.reason, 'runner exited unexpectedly (found dead when the daemon started)');
    assert.ok(alive(other.pid!), 'the other process is left alone');
    assert.is(((await control.request('daemon.info', {})) as any).loopsRunning, 1, 'it holds no slot');
  } finally {
    other.kill('SIGKILL');
  }

  // Attach and events work again through the new daemon.
  const sub = await d.subscribe();
  const { stream } = await d.open({ channel: 'loop', loop: keep.loopId });
  const loop = new RpcPeer(stream);
  let output = '';
  loop.onNotification('output', (_p, _peer, payload) => (output += payload!.toString()));
  await loop.request('subscribe', { protocol: LOOP_PROTOCOL, fromSeq: 0 }, { timeoutMs: 5000 });
  await waitUntil(() => output.includes(`waiting for ${keep.loopId}`), { what: 'replayed output' });
  open(keep.loopId);
  const done = await sub.next('loop.completed', keep.loopId);
  assert.is(done.status, 'completed');
  await waitUntil(() => output.includes('story US-2 done'), { what: 'live output after re-adoption' });
  loop.close();
  sub.peer.close();
  control.close();
});

test('a daemon SIGKILLed while a loop starts (its agent installing): the next daemon fails that loop, and ralph prune removes its worktree and its unused branch', async () => {
  const bare = join(t.home, 'repos', 'x.git');
  const lock = await holdInstallLock(t.home);
  let id: string;
  try {
    const control = await d.control();
    const start = control.request('loop.start', { repo: 'x', branch: 'feature', agent: 'amp' }, { timeoutMs: 60_000 }).catch((e: Error) => e);
    const waiting = await d.waitForLog(/loop feature-[0-9a-f]{4}: ralph: waiting for another agent install to finish/);
    id = /loop (feature-[0-9a-f]{4}):/.exec(waiting)![1]!;
    // The row comes before the worktree and the install: the loop shows as starting all along.
    const row = ((await control.request('loop.list', {})) as any[]).find((l) => l.loopId === id);
    assert.is(row?.status, 'starting');
    assert.ok(existsSync(join(t.home, 'worktrees', id)));
    await d.kill();
    assert.instance(await start, Error, 'the start ends with its daemon');
  } finally {
    await lock.release();
  }

  d = await startDaemon(t, { listen: ['tcp://127.0.0.1:0'], maxLoops: 2 });
  const control = await d.control();
  const row = ((await control.request('loop.list', {})) as any[]).find((l) => l.loopId === id);
  assert.is(row.status, 'failed');
  assert.is(row.reason, 'the daemon stopped while the loop was starting');
  assert.is(((await control.request('daemon.info', {})) as any).loopsRunning, 0, 'it holds no slot');
  control.close();

  const refs = async () => (await git(['for-each-ref', '--format=%(refname)', 'refs/heads/ralph/'], bare)).split('\n');
  const before = await refs();
  assert.ok(before.includes(`refs/heads/ralph/${id}`));
  const pruned = await ralph(['prune'], { env: t.env });
  assert.is(pruned.code, 0, pruned.stderr);
  assert.match(pruned.stdout, new RegExp(`^removed ${join(t.home, 'worktrees', id)} \\(loop ${id}, failed; its runner never ran, so its branch ralph/${id} is removed too\\)$`, 'm'));
  assert.not.ok(existsSync(join(t.home, 'worktrees', id)));
  const left = await refs();
  assert.not.ok(left.includes(`refs/heads/ralph/${id}`));
  // Every loop whose runner ran keeps its branch: the agent's work stays fetchable.
  const db = new Database(join(t.home, 'ralph.db'), { readonly: true });
  const ran = (db.prepare('SELECT id FROM loops WHERE pid IS NOT NULL').all() as Array<{ id: string }>).map((r) => `refs/heads/ralph/${r.id}`);
  db.close();
  const ranBefore = ran.filter((r) => before.includes(r));
  assert.ok(ranBefore.length > 0);
  assert.equal(ranBefore.filter((r) => !left.includes(r)), []);
});

/** A `running` row of repo x, branch feature, whose runner pid is `pid` (the daemon must be down). */
function insertRunningRow(id: string, pid: number): string {
  const db = openDb(join(t.home, 'ralph.db'));
  try {
    new LoopStore(db).insert({ id, name: id, location: 'local', workDir: join(t.home, 'worktrees', id), agent: 'custom', maxIterations: 3, repo: 'x', branch: 'feature', status: 'running', pid });
  } finally {
    db.close();
  }
  return id;
}

/** The runner pid the DB records for a loop (written by the runner once its socket listens). */
async function runnerPid(loopId: string): Promise<number> {
  const Database = (await import('better-sqlite3')).default;
  const db = new Database(join(t.home, 'ralph.db'), { readonly: true });
  try {
    const row = db.prepare('SELECT pid FROM loops WHERE id = ?').get(loopId) as { pid: number | null } | undefined;
    if (!row?.pid) throw new Error(`no pid for ${loopId}`);
    return row.pid;
  } finally {
    db.close();
  }
}

test.run();
