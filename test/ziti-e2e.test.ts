// Remote loops over a real OpenZiti network: a controller and an edge router on loopback
// (install/ziti-dev-network.sh), the box's `ralph daemon --ziti-service S --ziti-backend tunnel`
// hosting S through a supervised `ziti tunnel host`, the laptop dialing S with its own identity
// through its shared, supervised `ziti tunnel proxy` (and once through `ziti demo zcat`).
// Every byte between laptop and box crosses the controller-authorised edge router: push, fetch,
// status, attach with keystrokes, an identity with no rights refused, tunnelers killed mid-attach,
// the proxy reused, restarted, stopped, and a stranger on its port refused.
// Without a ziti CLI it skips with one line; with RALPH_REQUIRE_ZITI=1 (CI) that is a failure.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { FIXTURES, RALPH_BIN, exited, ralph, runCommand, waitUntil, skipped, type RunResult, type TempHome } from './helpers/env.js';
import type { DaemonHandle } from './helpers/daemon.js';
import type { StatusJsonEntry } from './helpers/cli.js';
import { endProxyOwners, proxyOwners, type ZitiNetwork } from './helpers/ziti-network.js';
import { startedIds } from './helpers/laptop.js';
import { zitiE2eOrSkip, type ZitiE2e } from './helpers/ziti-e2e.js';

const AGENT = join(FIXTURES, 'agent.mjs');
let z: ZitiE2e | null = null;
let net: ZitiNetwork | null = null;
let laptop: TempHome;
let box: TempHome;
let env: NodeJS.ProcessEnv;
let work: string;
let d: DaemonHandle;

const git = (args: string[]): Promise<string> => z!.laptop.git(args);
const cli = (args: string[]): Promise<RunResult> => z!.laptop.cli(args);
const status = (): Promise<StatusJsonEntry[]> => z!.laptop.status();
const useIdentity = (file: string): void => z!.useIdentity(file);
/** The box's `ziti tunnel host` processes (not their watchdogs). */
const tunnelers = () => net!.zitiProcesses().filter((p) => p.cmdline.includes('tunnel host') && !p.cmdline.includes('ralph-ziti-watchdog'));
/** The laptop's `ziti tunnel proxy` processes (not their watchdogs). */
const proxyTunnelers = () => net!.zitiProcesses().filter((p) => p.cmdline.includes('tunnel proxy') && !p.cmdline.includes('ralph-ziti-watchdog'));
/** What the laptop's proxy processes say of themselves (RALPH_ZITI_PROXY_DIR/KEY.json). */
const proxyStates = () => proxyOwners(env.RALPH_ZITI_PROXY_DIR);
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

test.before(async () => {
  z = await zitiE2eOrSkip({ service: 'ralph-e2e', backend: 'tunnel' });
  if (!z) return;
  ({ net, laptopHome: laptop, box, daemon: d } = z);
  ({ env, work } = z.laptop);
});

test.after(async () => {
  if (net) endProxyOwners(env.RALPH_ZITI_PROXY_DIR);
  await z?.stop();
});

test('the daemon hosts its service over OpenZiti; remote add --ziti-service/--ziti-identity checks it across the overlay', async () => {
  if (!net) return skipped('no ziti network');
  assert.equal(d.addresses.slice(1), [`ziti:${net.service}`]);
  const add = await cli(['remote', 'add', 'box', '--ziti-service', net.service, '--ziti-identity', net.identities.client, '--repo', 'app']);
  assert.is(add.code, 0, add.stderr);
  assert.match(add.stdout, new RegExp(`^added remote box \\(ziti:${net.service}\\): daemon on \\S+, ralph \\d+\\.\\d+\\.\\d+$`, 'm'));
});

let firstLoop = '';

test('git push over Ziti starts a loop that runs to completion; status reconciles it; git fetch brings ralph/<id>', async () => {
  if (!net) return skipped('no ziti network');
  const pushed = await git(['rev-parse', 'HEAD']);
  const r = await runCommand('git', ['push', '-o', `ralph.agent-cmd=node ${AGENT} work`, '-o', 'ralph.iterations=3', 'ralph-remote', 'feature'], { env, cwd: work, timeoutMs: 90_000 });
  assert.is(r.code, 0, r.stderr);
  const ids = startedIds(r);
  assert.is(ids.length, 1, r.stderr);
  firstLoop = ids[0]!;
  const row = (await status()).find((e) => e.id === firstLoop)!;
  assert.ok(row, 'the laptop has a row for the loop');
  assert.is(row.location, 'remote');
  assert.is(row.remote, 'box');
  assert.is(row.zitiService, net.service);

  const done = await waitUntil(async () => {
    const e = (await status()).find((x) => x.id === firstLoop)!;
    return e.status === 'completed' ? e : null;
  }, { timeoutMs: 90_000, intervalMs: 300, what: `loop ${firstLoop} completed, seen through ralph status over Ziti` });
  assert.is(done.iteration, 2);
  assert.match(String(done.reason), /stories pass/);

  await git(['fetch', '--quiet', 'ralph-remote']);
  assert.is(await git(['rev-parse', `ralph-remote/ralph/${firstLoop}~2`]), pushed, 'two agent commits on top of the pushed commit');
  assert.match(await git(['log', '-1', '--format=%s', `ralph-remote/ralph/${firstLoop}`]), /US-2/);
});

test('attach over Ziti streams output and types into the agent; the daemon-side tunneler killed mid-attach: attach reconnects and resumes from seq, nothing lost or doubled', async () => {
  if (!net) return skipped('no ziti network');
  const COUNT = 400; // 16 s of output: room for two tunneler restarts and the reconnects after them
  await git(['switch', '--quiet', '-c', 'typing']);
  const agentCmd = `FIXTURE_SLOW_MS=40 FIXTURE_SLOW_COUNT=${COUNT} node ${AGENT} echo,slow,work,work`;
  const r = await runCommand('git', ['push', '-o', `ralph.agent-cmd=${agentCmd}`, '-o', 'ralph.iterations=2', 'ralph-remote', 'typing'], { env, cwd: work, timeoutMs: 90_000 });
  assert.is(r.code, 0, r.stderr);
  const id = startedIds(r)[0]!;
  assert.ok(id, r.stderr);

  const child = spawn(process.execPath, [RALPH_BIN, 'attach', id], { env, cwd: work, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (x) => (stdout += x));
  child.stderr.on('data', (x) => (stderr += x));
  try {
    await waitUntil(() => stdout.includes('ECHO READY'), { timeoutMs: 30_000, what: `the echo agent's first words through attach; stderr: ${stderr}` });
    child.stdin.write('i');
    await waitUntil(() => stderr.includes('interactive —'), { timeoutMs: 15_000, what: 'interactive mode' });
    child.stdin.write('typed across the overlay\rq\r\x1d');
    await waitUntil(() => stdout.includes('typed across the overlay'), { timeoutMs: 15_000, what: 'the agent echoing what was typed' });

    // Mid-stream, the box's tunneler dies: the client sees end-of-stream, the daemon restarts the
    // tunneler, attach reconnects and asks for output from the last seq it had.
    await waitUntil(() => /slow line 30\b/.test(stdout), { timeoutMs: 30_000, what: 'slow output under way' });
    const hosts = tunnelers();
    assert.is(hosts.length, 1, JSON.stringify(hosts));
    process.kill(hosts[0]!.pid, 'SIGKILL');
    await d.waitForLog(/ziti tunnel host restarted/, 30_000);
    await waitUntil(() => /reconnected/.test(stderr), { timeoutMs: 30_000, what: 'attach reconnected after the tunneler restart' });
    const seenBefore = (stdout.match(/slow line \d+/g) ?? []).length;
    await waitUntil(() => (stdout.match(/slow line \d+/g) ?? []).length > seenBefore + 5, { timeoutMs: 30_000, what: 'output flowing again' });
    // And the laptop's side: its proxy's tunneler dies; the proxy process starts another, and
    // attach dials again through it.
    const proxies = proxyTunnelers();
    assert.is(proxies.length, 1, JSON.stringify(proxies));
    process.kill(proxies[0]!.pid, 'SIGKILL');
    await waitUntil(() => (stderr.match(/reconnected/g) ?? []).length >= 2, { timeoutMs: 30_000, what: "attach reconnected after the laptop's tunneler died" });
    assert.is(proxyTunnelers().length, 1);
    assert.is.not(proxyTunnelers()[0]!.pid, proxies[0]!.pid);
    const end = await exited(child);
    assert.is(end.code, 0, stderr);
    assert.match(stderr, /connection lost .*reconnecting/);
    assert.match(stderr, /reconnected/);
    const again = tunnelers();
    assert.is(again.length, 1);
    assert.is.not(again[0]!.pid, hosts[0]!.pid);

    const seen = [...stdout.matchAll(/slow line (\d+)\b/g)].map((m) => Number(m[1]));
    assert.equal(seen, Array.from({ length: COUNT }, (_, i) => i + 1), 'every slow line exactly once, in order');
    assert.match(stdout, /<promise>COMPLETE<\/promise>/);
    assert.match(stderr, new RegExp(`ralph: loop ${id} completed`));
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
});

test('an identity with no Dial policy is refused by OpenZiti: push, status, attach fail with a clear message, and the daemon sees nothing', async () => {
  if (!net) return skipped('no ziti network');
  await git(['switch', '--quiet', 'feature']);
  const r = await runCommand('git', ['push', '-o', `ralph.agent-cmd=FIXTURE_SLOW_MS=200 FIXTURE_SLOW_COUNT=100000 node ${AGENT} slow`, 'ralph-remote', 'feature:long'], { env, cwd: work, timeoutMs: 90_000 });
  assert.is(r.code, 0, r.stderr);
  const id = startedIds(r)[0]!;
  await waitUntil(async () => (await status()).find((e) => e.id === id)?.status === 'running', { timeoutMs: 30_000, intervalMs: 300, what: `loop ${id} running` });

  const logBefore = d.log().length;
  useIdentity(net.identities.intruder);
  try {
    const mayNot = new RegExp(`identity ${net.identities.intruder} may not dial service ${net.service}`);
    const tested = await cli(['remote', 'test', 'box']);
    assert.is.not(tested.code, 0);
    assert.match(tested.stderr, mayNot);

    const push = await runCommand('git', ['push', 'ralph-remote', 'feature:intruded'], { env, cwd: work, timeoutMs: 60_000 });
    assert.is.not(push.code, 0);
    assert.match(push.stderr, mayNot);

    // A generous timeout: the reason must come back, and a loaded machine is slow to start a proxy.
    const table = await cli(['status', '--timeout', '20000']);
    assert.is(table.code, 0, table.stderr);
    assert.match(table.stdout, new RegExp(`^${id}\\s+box \\(unreachable\\)\\s+running`, 'm'));
    assert.match(table.stderr, mayNot, `status says why the remote is unreachable: ${table.stderr}`);

    const attach = await cli(['attach', id]);
    assert.is.not(attach.code, 0);
    assert.match(attach.stderr, mayNot);
  } finally {
    useIdentity(net.identities.client);
  }
  const after = d.log().slice(logBefore);
  assert.not.match(after, /from 127\.0\.0\.1/, `the daemon saw a connection: ${after}`);

  // The rightful identity again: stop reaches the loop over Ziti.
  const stop = await cli(['stop', id]);
  assert.is(stop.code, 0, stop.stderr);
  assert.match(stop.stdout, new RegExp(`${id}.*stopped`));
  const table2 = await cli(['status']);
  assert.match(table2.stdout, new RegExp(`^${id}\\s+box\\s+stopped`, 'm'), table2.stdout + table2.stderr);
});

test("the laptop's proxy: shared by commands, a stranger on its port gains nothing, stopped on demand or when idle, never orphaned; zcat still works", async () => {
  if (!net) return skipped('no ziti network');
  // Shared: two commands, one proxy process, one tunneler.
  const first = await cli(['remote', 'test', 'box']);
  assert.is(first.code, 0, first.stderr);
  const [state] = proxyStates().filter((p) => alive(p.pid));
  assert.ok(state, 'a proxy process runs');
  assert.match(first.stdout, new RegExp(`via\\s+ziti tunnel proxy \\(pid ${state!.pid},`));
  const second = await cli(['status', '--json']);
  assert.is(second.code, 0, second.stderr);
  assert.equal(proxyStates().filter((p) => alive(p.pid)).map((p) => p.pid), [state!.pid]);
  assert.is(proxyTunnelers().length, 1);

  // A stranger reaching the proxy's port (it listens on 0.0.0.0) gets the daemon's challenge and,
  // with no enrolled key to answer it, a refusal: no hello reply, nothing run.
  const logBefore = d.log().length;
  const heard = await new Promise<string>((resolve, reject) => {
    const sock = tcpConnect({ host: '127.0.0.1', port: state!.port });
    let text = '';
    sock.setEncoding('utf8');
    sock.on('data', (x: string) => {
      text += x;
      if (text.split('\n').length === 2) sock.write('{"jsonrpc":"2.0","id":0,"method":"hello","params":{"version":1,"channel":"control"}}\n');
    });
    sock.once('close', () => resolve(text));
    sock.once('error', reject);
  });
  const lines = heard.split('\n').filter(Boolean);
  assert.match(lines[0]!, /^ralph-ziti-auth 1 /);
  assert.is(lines[1], 'refused no proof of identity: expected {"v":1,"chain":…,"sig":…}');
  assert.is(lines.length, 2, heard);
  const logged = await d.waitForLog(/refused a connection: no proof of identity/, 10_000);
  assert.not.match(d.log().slice(logBefore), /channel|hello|attached|subscribed/, logged);

  // Stopped on demand, with its tunneler.
  const off = await cli(['remote', 'disconnect', 'box']);
  assert.is(off.code, 0, off.stderr);
  assert.match(off.stdout, new RegExp(`stopped the OpenZiti proxy of remote box \\(pid ${state!.pid}\\)`));
  assert.not.ok(alive(state!.pid));
  await waitUntil(() => proxyTunnelers().length === 0, { timeoutMs: 10_000, intervalMs: 100, what: 'its tunneler gone' });
  assert.equal(proxyStates(), [], 'its state file removed');

  // Killed outright: the watchdog ends its tunneler; the next command starts a fresh proxy.
  assert.is((await cli(['remote', 'test', 'box'])).code, 0);
  const [killed] = proxyStates();
  process.kill(killed!.pid, 'SIGKILL');
  await waitUntil(() => proxyTunnelers().length === 0, { timeoutMs: 15_000, intervalMs: 100, what: 'no orphaned tunneler after the proxy was killed' });
  // Two commands at once find no proxy: both start one, one of them claims the socket, both are served.
  const [again, alongside] = await Promise.all([cli(['remote', 'test', 'box']), cli(['status', '--json'])]);
  assert.is(again.code, 0, again.stderr);
  assert.is(alongside.code, 0, alongside.stderr);
  const running = proxyStates().filter((p) => alive(p.pid));
  assert.is(running.length, 1, JSON.stringify(running));
  assert.is.not(running[0]!.pid, killed!.pid);
  assert.is(proxyTunnelers().length, 1);

  // Idle: a proxy nobody uses ends by itself, and takes its port with it.
  await cli(['remote', 'disconnect', 'box']);
  const idle = await ralph(['remote', 'test', 'box'], { env: { ...env, RALPH_ZITI_PROXY_IDLE_MS: '300' }, cwd: work, timeoutMs: 60_000 });
  assert.is(idle.code, 0, idle.stderr);
  // Read from the command's own output: the state file may be gone already, the proxy with it.
  const via = /ziti tunnel proxy \(pid (\d+), port (\d+) on all interfaces/.exec(idle.stdout);
  assert.ok(via, idle.stdout);
  const short = { pid: Number(via![1]), port: Number(via![2]) };
  await waitUntil(() => !alive(short!.pid) && proxyTunnelers().length === 0, { timeoutMs: 15_000, intervalMs: 100, what: 'the idle proxy gone' });
  const refused = await new Promise<string>((resolve) => {
    const sock = tcpConnect({ host: '127.0.0.1', port: short!.port });
    sock.once('connect', () => (sock.destroy(), resolve('connected')));
    sock.once('error', (e: NodeJS.ErrnoException) => resolve(String(e.code)));
  });
  assert.is(refused, 'ECONNREFUSED');

  // The other client mode: one `ziti demo zcat` per connection, no proxy at all.
  const zcat = await ralph(['status', '--json'], { env: { ...env, RALPH_ZITI_CLIENT: 'zcat' }, cwd: work, timeoutMs: 60_000 });
  assert.is(zcat.code, 0, zcat.stderr);
  assert.ok((JSON.parse(zcat.stdout) as StatusJsonEntry[]).some((e) => e.location === 'remote'), zcat.stdout);
  assert.equal(proxyStates(), [], 'zcat mode starts no proxy');
});

test('nothing is left behind: a daemon killed with SIGKILL takes its tunneler with it; then the laptop hears "no daemon is hosting"', async () => {
  if (!net) return skipped('no ziti network');
  const ours = () => net!.zitiProcesses().filter((p) => / (tunnel host|demo) /.test(p.cmdline));
  const [host] = tunnelers();
  assert.ok(host, 'one tunneler');
  // Its private TMPDIR (the CLI agent's socket) goes with it.
  const privateDir = /(?:^|\0)TMPDIR=([^\0]*)/.exec(readFileSync(`/proc/${host!.pid}/environ`, 'utf8'))?.[1];
  assert.ok(privateDir && existsSync(privateDir), `the tunneler's TMPDIR: ${privateDir}`);
  await d.kill();
  // The watchdog reads end-of-file on its pipe from the dead daemon and ends the tunneler (TERM: ~1.3 s).
  await waitUntil(() => ours().length === 0, { timeoutMs: 15_000, intervalMs: 100, what: `no ziti process left; still: ${JSON.stringify(ours())}` });
  assert.not.ok(existsSync(privateDir!), `${privateDir} removed`);
  const tested = await cli(['remote', 'test', 'box']);
  assert.is.not(tested.code, 0);
  assert.match(tested.stderr, new RegExp(`no daemon is hosting ${net.service}`));
  assert.equal(ours(), [], 'no zcat outlives its command');
});

test('clear errors, each one line: a controller that cannot be reached; a daemon without its host port; a daemon identity that may not bind', async () => {
  if (!net) return skipped('no ziti network');
  const identity = JSON.parse(readFileSync(net.identities.client, 'utf8'));
  identity.ztAPI = 'https://127.0.0.1:9/edge/client/v1';
  const unreachable = join(laptop.home, 'unreachable.json');
  writeFileSync(unreachable, JSON.stringify(identity));
  useIdentity(unreachable);
  try {
    const tested = await cli(['remote', 'test', 'box']);
    assert.is.not(tested.code, 0);
    assert.match(tested.stderr, new RegExp(`cannot reach the OpenZiti controller https://127\\.0\\.0\\.1:9 named by identity ${unreachable}`));
  } finally {
    useIdentity(net.identities.client);
  }

  const daemon = (identityFile: string, extra: Record<string, string>) =>
    ralph(['daemon', '--home', join(box.home, 'other'), '--ziti-service', net!.service, '--ziti-identity', identityFile, '--ziti-backend', 'tunnel'], {
      env: { ...box.env, ...net!.env, ...extra },
      timeoutMs: 30_000,
    });
  const noPort = await daemon(net.identities.daemon, { RALPH_ZITI_HOST_PORT: '' });
  assert.is.not(noPort.code, 0);
  assert.match(noPort.stderr, /needs the local port that service \S+ host\.v1 config forwards to: set RALPH_ZITI_HOST_PORT=PORT/);
  const mayNotBind = await daemon(net.identities.intruder, { RALPH_ZITI_HOST_PORT: String(net.hostPort) });
  assert.is.not(mayNotBind.code, 0);
  assert.match(mayNotBind.stderr, new RegExp(`identity ${net.identities.intruder} may not host service ${net.service}`));
  assert.equal(net.zitiProcesses().filter((p) => / (tunnel host|demo) /.test(p.cmdline)), []);
});

test.run();
