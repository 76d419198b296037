// Remote loops over a real OpenZiti network with the Node SDK on both sides (ralph's build,
// install/build-ziti-sdk.sh): the box's `ralph daemon --ziti-service S --ziti-backend sdk` binds S
// in-process, and every laptop command (remote add/test, git push through git-remote-ralph, status,
// attach with keystrokes, logs, stop) dials it in-process: no tunneler, no proxy, no local port.
// Every command exits when its work is done, although the SDK keeps a process's event loop alive.
// Without the ziti CLI (for the network) or the SDK build it skips with one line (CI fails instead).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { attachProcess } from './helpers/attach.js';
import { FIXTURES, exited, waitUntil, within, skipped } from './helpers/env.js';
import { startedIds } from './helpers/laptop.js';
import { zitiE2eOrSkip, type ZitiE2e } from './helpers/ziti-e2e.js';

const AGENT = join(FIXTURES, 'agent.mjs');
let z: ZitiE2e | null = null;

/** The ziti processes of this network: none may run, this backend needs no tunneler. */
const zitiClients = () => z!.net.zitiProcesses().filter((p) => / (tunnel|demo) /.test(p.cmdline));

test.before(async () => {
  z = await zitiE2eOrSkip({ service: 'ralph-sdk-e2e', backend: 'sdk' });
});

test.after(async () => {
  await z?.stop();
});

test('the daemon binds its service in-process; remote add checks it across the overlay, and exits', async () => {
  if (!z) return skipped('no ziti network or SDK build');
  assert.equal(z.daemon.addresses.slice(1), [`ziti:${z.net.service}`]);
  const started = Date.now();
  const add = await z.laptop.cli(['remote', 'add', 'box', '--ziti-service', z.net.service, '--ziti-identity', z.net.identities.client, '--repo', 'app']);
  assert.is(add.code, 0, add.stderr);
  assert.match(add.stdout, new RegExp(`^added remote box \\(ziti:${z.net.service}\\): daemon on \\S+, ralph \\d+\\.\\d+\\.\\d+$`, 'm'));
  assert.is(add.stderr, '');
  const tested = await z.laptop.cli(['remote', 'test', 'box']);
  assert.is(tested.code, 0, tested.stderr);
  assert.match(tested.stdout, /^remote box \(ziti:\S+\) answers\n(.|\n)*round trip\s+\d+\.\d ms$/m);
  assert.ok(Date.now() - started < 30_000, `two commands took ${Date.now() - started} ms`);
  assert.equal(zitiClients(), [], 'no ziti CLI process on either side');
});

let firstLoop = '';

test('git push over the SDK starts a loop that completes; status reconciles it; logs shows it; fetch brings ralph/<id>', async () => {
  if (!z) return skipped('no ziti network or SDK build');
  const pushed = await z.laptop.git(['rev-parse', 'HEAD']);
  const r = await z.laptop.gitResult(['push', '-o', `ralph.agent-cmd=node ${AGENT} work`, '-o', 'ralph.iterations=3', 'ralph-remote', 'feature']);
  assert.is(r.code, 0, r.stderr);
  const ids = startedIds(r);
  assert.is(ids.length, 1, r.stderr);
  firstLoop = ids[0]!;
  const row = (await z.laptop.status()).find((e) => e.id === firstLoop)!;
  assert.ok(row, 'the laptop has a row for the loop');
  assert.equal([row.location, row.remote, row.zitiService], ['remote', 'box', z.net.service]);

  const done = await waitUntil(async () => {
    const e = (await z!.laptop.status()).find((x) => x.id === firstLoop)!;
    return e.status === 'completed' ? e : null;
  }, { timeoutMs: 90_000, intervalMs: 300, what: `loop ${firstLoop} completed, seen through ralph status over the SDK` });
  assert.is(done.iteration, 2);

  const logs = await z.laptop.cli(['logs', firstLoop]);
  assert.is(logs.code, 0, logs.stderr);
  assert.match(logs.stdout, /<promise>COMPLETE<\/promise>/);

  await z.laptop.git(['fetch', '--quiet', 'ralph-remote']);
  assert.is(await z.laptop.git(['rev-parse', `ralph-remote/ralph/${firstLoop}~2`]), pushed, 'two agent commits on top of the pushed commit');
});

test('attach over the SDK: live output, keystrokes into the agent, the final status, exit 0', async () => {
  if (!z) return skipped('no ziti network or SDK build');
  await z.laptop.git(['switch', '--quiet', '-c', 'typing']);
  const agentCmd = `FIXTURE_SLOW_MS=20 FIXTURE_SLOW_COUNT=100 node ${AGENT} echo,slow,work,work`;
  const r = await z.laptop.gitResult(['push', '-o', `ralph.agent-cmd=${agentCmd}`, '-o', 'ralph.iterations=2', 'ralph-remote', 'typing']);
  assert.is(r.code, 0, r.stderr);
  const id = startedIds(r)[0]!;
  assert.ok(id, r.stderr);

  const a = attachProcess(id, z.laptop.env, { cwd: z.laptop.work });
  try {
    await a.stdout('ECHO READY', 30_000);
    a.keys('i');
    await a.stderr('interactive —', 15_000);
    a.keys('typed through the SDK\rq\r\x1d');
    await a.stdout('typed through the SDK', 15_000);
    const end = await within(exited(a.child), 120_000, 'attach to exit at the loop\'s end');
    assert.is(end.code, 0, a.errors());
    const seen = [...a.output().matchAll(/slow line (\d+)\b/g)].map((m) => Number(m[1]));
    assert.equal(seen, Array.from({ length: 100 }, (_, i) => i + 1), 'every slow line exactly once, in order');
    assert.match(a.errors(), new RegExp(`ralph: loop ${id} completed`));
  } finally {
    if (a.child.exitCode === null) a.child.kill('SIGKILL');
  }
});

test('stop over the SDK; an identity with no Dial policy is refused in one line by every command', async () => {
  if (!z) return skipped('no ziti network or SDK build');
  await z.laptop.git(['switch', '--quiet', 'feature']);
  const r = await z.laptop.gitResult(['push', '-o', `ralph.agent-cmd=FIXTURE_SLOW_MS=200 FIXTURE_SLOW_COUNT=100000 node ${AGENT} slow`, 'ralph-remote', 'feature:long']);
  assert.is(r.code, 0, r.stderr);
  const id = startedIds(r)[0]!;
  await waitUntil(async () => (await z!.laptop.status()).find((e) => e.id === id)?.status === 'running', { timeoutMs: 30_000, intervalMs: 300, what: `loop ${id} running` });

  z.useIdentity(z.net.identities.intruder);
  try {
    const mayNot = new RegExp(`^ralph: .*identity ${z.net.identities.intruder} may not dial service ${z.net.service} `, 'm');
    const tested = await z.laptop.cli(['remote', 'test', 'box']);
    assert.is.not(tested.code, 0);
    assert.match(tested.stderr, mayNot);
    assert.is(tested.stderr.trim().split('\n').length, 1, tested.stderr);
    const push = await z.laptop.gitResult(['push', 'ralph-remote', 'feature:intruded']);
    assert.is.not(push.code, 0);
    assert.match(push.stderr, new RegExp(`identity ${z.net.identities.intruder} may not dial service ${z.net.service}`));
    const attach = await z.laptop.cli(['attach', id]);
    assert.is.not(attach.code, 0);
    assert.match(attach.stderr, mayNot);
  } finally {
    z.useIdentity(z.net.identities.client);
  }

  const stop = await z.laptop.cli(['stop', id]);
  assert.is(stop.code, 0, stop.stderr);
  assert.match(stop.stdout, new RegExp(`${id}.*stopped`));
  const table = await z.laptop.cli(['status']);
  assert.match(table.stdout, new RegExp(`^${id}\\s+box\\s+stopped`, 'm'), table.stdout + table.stderr);
});

test('the daemon killed: its service is unbound with it, and the laptop hears "no daemon is hosting"', async () => {
  if (!z) return skipped('no ziti network or SDK build');
  await z.daemon.kill();
  const tested = await waitUntil(async () => {
    const r = await z!.laptop.cli(['remote', 'test', 'box']);
    return r.code !== 0 && /no daemon is hosting/.test(r.stderr) ? r : null;
  }, { timeoutMs: 30_000, intervalMs: 500, what: 'remote test saying nobody hosts the service' });
  assert.match(tested.stderr, new RegExp(`^ralph: remote box \\(ziti:${z.net.service}\\): unreachable: no daemon is hosting ${z.net.service} \\(`), tested.stderr);
  assert.is(tested.stderr.trim().split('\n').length, 1, tested.stderr);
});

test.run();
