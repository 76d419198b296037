// `ralph ziti setup` against a real OpenZiti network (install/ziti-dev-network.sh): it creates the
// service, configs, policies and enrolled identities; a second run and --dry-run change nothing; the
// two commands it prints really work, over both Ziti backends on the same network: a daemon started
// from the printed command with the box identity, `ralph remote add` from the printed command with
// the laptop's, `remote test` and a push whose loop completes — first with the `ziti tunnel`
// processes (RALPH_ZITI_BACKEND=tunnel on both sides), then, that daemon stopped (a service has one
// host at a time), the same printed daemon command with RALPH_ZITI_BACKEND=sdk and a second laptop
// on the SDK (ralph's build; no tunneler runs). The dev network's own catch-all router policies are
// deleted first, so only what setup made lets anything through.
// Without a ziti CLI it skips with one line; with RALPH_REQUIRE_ZITI=1 (CI) that is a failure; the SDK
// test likewise without the SDK build (RALPH_REQUIRE_ZITI_SDK=1).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES, ROOT, makeTempHome, ralph, runCommand, waitUntil, skipped, type RunResult, type TempHome } from './helpers/env.js';
import { killRunners, startDaemon, type DaemonHandle } from './helpers/daemon.js';
import type { StatusJsonEntry } from './helpers/cli.js';
import { zitiNetworkOrSkip, zitiSdkOrSkip, type ZitiNetwork } from './helpers/ziti-network.js';

const SERVICE = 'ralph-st';
let net: ZitiNetwork | null = null;
let laptop: TempHome;
let box: TempHome;
let env: NodeJS.ProcessEnv;
let ids: string;
let work: string;
let d: DaemonHandle | undefined;
/** The second laptop, on the SDK backend. */
let laptopSdk: TempHome | undefined;

/** `ziti <args>` as the dev network's logged-in admin; JSON output parsed when asked. */
const ziti = async (args: string[]): Promise<string> => {
  const r = await runCommand(net!.ziti, args, { env, timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`ziti ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
};
const list = async (type: string, filter = 'true limit none'): Promise<Array<Record<string, any>>> =>
  JSON.parse(await ziti(['edge', 'list', type, filter, '-j'])).data;
/** Everything setup may touch, as the controller holds it (to prove a run changed nothing). */
const snapshot = async (): Promise<string> => {
  const parts = [];
  for (const type of ['configs', 'services', 'service-policies', 'edge-router-policies', 'service-edge-router-policies', 'identities']) {
    parts.push((await list(type)).map((e) => `${type} ${e.name} ${e.updatedAt} ${JSON.stringify(e.roleAttributes ?? null)}`).sort());
  }
  return JSON.stringify(parts);
};
const setup = (args: string[], extraEnv: Record<string, string> = {}): Promise<RunResult> =>
  ralph(['ziti', 'setup', '--service', SERVICE, '--out', ids, '--host-port', String(net!.hostPort), ...args], { env: { ...env, ...extraEnv }, cwd: laptop.home, timeoutMs: 120_000 });
/** The printed command that starts with `prefix` (e.g. "ralph daemon"), split into words. */
const printed = (out: string, prefix: string): string[] => {
  const line = out.split('\n').map((l) => l.trim()).find((l) => l.startsWith(prefix + ' '));
  assert.ok(line, `setup printed a "${prefix} …" command:\n${out}`);
  assert.not.match(line!, /'/, 'no quoting needed for these paths');
  return line!.split(/\s+/);
};

test.before(async () => {
  net = await zitiNetworkOrSkip('ralph-unused');
  if (!net) return;
  laptop = makeTempHome('ralph-stl');
  box = makeTempHome('ralph-stb');
  env = laptopEnv(laptop, 'tunnel');
  ids = join(laptop.home, 'ids');
  mkdirSync(ids);
  // Only setup's own policies may give its identities and service the routers.
  await ziti(['edge', 'delete', 'edge-router-policy', 'ralph-all-routers']);
  await ziti(['edge', 'delete', 'service-edge-router-policy', 'ralph-all-services']);
});

test.after(async () => {
  try {
    await d?.stop();
    if (box) killRunners(box.home);
    if (net) await ralph(['remote', 'disconnect', 'ralph-st-box'], { env, cwd: work, timeoutMs: 20_000 }).catch(() => undefined);
  } finally {
    await net?.stop();
    laptop?.cleanup();
    laptopSdk?.cleanup();
    box?.cleanup();
  }
});

test('--dry-run prints the ziti edge commands and changes nothing', async () => {
  if (!net) return skipped('no ziti network');
  const before = await snapshot();
  const r = await setup(['--dry-run']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^dry run on OpenZiti controller https:\/\/127\.0\.0\.1:\d+ \(logged in as admin\): nothing is changed\.$/m);
  for (const cmd of [
    `ziti edge create config ralph-st-host host.v1 '{"protocol":"tcp","address":"127.0.0.1","port":${net.hostPort}}'`,
    `ziti edge create service ralph-st --configs ralph-st-host,ralph-st-intercept`,
    `ziti edge create identity ralph-st-box --role-attributes ralph-st-hosts --jwt-output-file ${ids}/ralph-st-box.jwt`,
    `ziti edge enroll ${ids}/ralph-st-laptop.jwt --out ${ids}/ralph-st-laptop.json --rm`,
    `ziti edge create service-policy ralph-st-bind Bind --service-roles @ralph-st --identity-roles '#ralph-st-hosts'`,
    `ziti edge create service-policy ralph-st-dial Dial --service-roles @ralph-st --identity-roles '#ralph-st-clients'`,
    `ziti edge create edge-router-policy ralph-st-edge-routers --edge-router-roles '#all' --identity-roles '#ralph-st-hosts,#ralph-st-clients'`,
    `ziti edge create service-edge-router-policy ralph-st-service-edge-routers --edge-router-roles '#all' --service-roles @ralph-st`,
  ]) {
    assert.ok(r.stdout.includes(`  ${cmd}\n`), `dry run prints: ${cmd}\n${r.stdout}`);
  }
  assert.is(await snapshot(), before, 'the controller holds exactly what it held');
  assert.equal(readdirSync(ids), [], 'no identity file written');
});

let firstRun = '';

test('setup creates the service, both configs, the four policies and two enrolled identities (0600), and prints the next two commands', async () => {
  if (!net) return skipped('no ziti network');
  const r = await setup([]);
  assert.is(r.code, 0, r.stderr);
  firstRun = r.stdout;
  assert.is((r.stdout.match(/^ {2}created /gm) ?? []).length, 9, r.stdout);
  assert.match(r.stdout, /^Done: 9 of 9 created or updated; identity files are 0600\.$/m);
  assert.equal(readdirSync(ids).sort(), ['ralph-st-box.json', 'ralph-st-laptop.json'], 'only the identity files; no JWT left behind');
  for (const f of readdirSync(ids)) assert.is(statSync(join(ids, f)).mode & 0o777, 0o600, f);

  const [service] = await list('services', `name="${SERVICE}"`);
  const configs = await list('configs', `name in ["ralph-st-host","ralph-st-intercept"]`);
  assert.equal(service!.configs.sort(), configs.map((c) => c.id).sort());
  const host = configs.find((c) => c.name === 'ralph-st-host')!;
  assert.is(host.configType.name, 'host.v1');
  assert.equal(host.data, { protocol: 'tcp', address: '127.0.0.1', port: net.hostPort });
  assert.is(configs.find((c) => c.name === 'ralph-st-intercept')!.configType.name, 'intercept.v1');
  const policies = await list('service-policies', `name in ["ralph-st-bind","ralph-st-dial"]`);
  assert.equal(policies.map((p) => `${p.name} ${p.type} ${p.identityRoles}`).sort(), ['ralph-st-bind Bind #ralph-st-hosts', 'ralph-st-dial Dial #ralph-st-clients']);
  const [boxId] = await list('identities', 'name="ralph-st-box"');
  assert.equal(boxId!.roleAttributes, ['ralph-st-hosts']);
  assert.ok(boxId!.authenticators.cert, 'the box identity is enrolled');

  assert.equal(printed(r.stdout, 'ralph daemon'), ['ralph', 'daemon', '--ziti-service', SERVICE, '--ziti-identity', join(ids, 'ralph-st-box.json'), '--ziti-host-port', String(net.hostPort)]);
  assert.equal(printed(r.stdout, 'ralph remote add'), ['ralph', 'remote', 'add', 'ralph-st-box', '--ziti-service', SERVICE, '--ziti-identity', join(ids, 'ralph-st-laptop.json')]);
});

test('a second run changes nothing and says so; so does --dry-run', async () => {
  if (!net) return skipped('no ziti network');
  const before = await snapshot();
  const r = await setup([]);
  assert.is(r.code, 0, r.stderr);
  assert.is((r.stdout.match(/^ {2}kept {4}/gm) ?? []).length, 9, r.stdout);
  assert.match(r.stdout, /^Nothing to change: everything was already in place\.$/m);
  const dry = await setup(['--dry-run']);
  assert.is(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /^Nothing to do: everything is already in place\.$/m);
  assert.not.match(dry.stdout, /^ {2}ziti /m);
  assert.is(await snapshot(), before, 'nothing on the controller changed');
  assert.equal(printed(r.stdout, 'ralph daemon'), printed(firstRun, 'ralph daemon'));
});

/** A laptop's RALPH_HOME with git-remote-ralph on PATH and the network's admin login; `backend` as RALPH_ZITI_BACKEND. */
function laptopEnv(home: TempHome, backend: 'tunnel' | 'sdk'): NodeJS.ProcessEnv {
  const bin = join(home.home, 'bin');
  mkdirSync(bin);
  symlinkSync(join(ROOT, 'dist', 'cli', 'git-remote-ralph.js'), join(bin, 'git-remote-ralph'));
  return {
    ...home.env,
    ...net!.env,
    ZITI_CONFIG_DIR: join(net!.home, 'cli'),
    ZITI_CHECK_VERSION: 'false',
    PATH: `${bin}:${process.env.PATH}`,
    RALPH_ZITI_PROXY_DIR: join(home.home, 'zp'),
    RALPH_ZITI_BACKEND: backend,
  };
}

/** The printed daemon command started on the box with `backend`; on a laptop (its env, its home)
 * with the same backend the printed `remote add`, then `remote test`, and a push whose loop completes. */
async function printedCommandsWork(backend: 'tunnel' | 'sdk', lenv: NodeJS.ProcessEnv, home: string): Promise<void> {
  const daemonArgs = printed(firstRun, 'ralph daemon').slice(2);
  d = await startDaemon(box, { args: daemonArgs, env: { RALPH_ZITI_BIN: net!.ziti, RALPH_ZITI_BACKEND: backend }, readyTimeoutMs: 60_000 });
  assert.equal(d.addresses.slice(1), [`ziti:${SERVICE}`]);

  const dir = join(home, 'app');
  mkdirSync(dir);
  const git = async (args: string[]) => {
    const r = await runCommand('git', args, { env: lenv, cwd: dir, timeoutMs: 90_000 });
    assert.is(r.code, 0, `git ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  await git(['init', '--quiet', '-b', 'feature']);
  writeFileSync(join(dir, 'prd.json'), JSON.stringify({ project: 'app', userStories: [{ id: 'US-1', title: 'one', passes: false, priority: 1 }] }) + '\n');
  await git(['add', 'prd.json']);
  await git(['commit', '--quiet', '-m', 'task']);

  const add = await ralph(printed(firstRun, 'ralph remote add').slice(1), { env: lenv, cwd: dir, timeoutMs: 60_000 });
  assert.is(add.code, 0, add.stderr);
  assert.match(add.stdout, /^added remote ralph-st-box \(ziti:ralph-st\): daemon on /m);
  const t = await ralph(['remote', 'test', 'ralph-st-box'], { env: lenv, cwd: dir, timeoutMs: 60_000 });
  assert.is(t.code, 0, t.stderr);
  assert.match(t.stdout, /^remote ralph-st-box \(ziti:ralph-st\) answers$/m);

  // A branch of its own per backend: the box's repo keeps the one pushed before.
  const branch = backend === 'tunnel' ? 'feature' : `feature-${backend}`;
  const push = await runCommand('git', ['push', '-o', `ralph.agent-cmd=node ${join(FIXTURES, 'agent.mjs')} work`, 'ralph-remote', `feature:${branch}`], { env: lenv, cwd: dir, timeoutMs: 90_000 });
  assert.is(push.code, 0, push.stderr);
  const id = /^remote: ralph: started loop (\S+) /m.exec(push.stderr)?.[1];
  assert.ok(id, push.stderr);
  await waitUntil(
    async () => {
      const r = await ralph(['status', '--json'], { env: lenv, cwd: dir, timeoutMs: 60_000 });
      return (JSON.parse(r.stdout) as StatusJsonEntry[]).find((e) => e.id === id)?.status === 'completed';
    },
    { timeoutMs: 90_000, intervalMs: 500, what: `loop ${id} completed over the service setup made (${backend} backend)` },
  );
  await git(['fetch', '--quiet', 'ralph-remote']);
  assert.match((await git(['log', '-1', '--format=%s', `ralph-remote/ralph/${id}`])).stdout, /US-1/);
}

test('the printed commands work: the daemon hosts the service with the box identity; the laptop adds the remote, tests it, and a pushed loop completes', async () => {
  if (!net) return skipped('no ziti network');
  work = join(laptop.home, 'app');
  await printedCommandsWork('tunnel', env, laptop.home);
});

test('the printed commands work over the SDK backend too: the same daemon command with RALPH_ZITI_BACKEND=sdk, a laptop on the SDK', async () => {
  if (!net) return skipped('no ziti network');
  if (!(await zitiSdkOrSkip())) return skipped('no OpenZiti SDK build');
  // One host per service: the tunnel daemon (and the first laptop's proxy) go first.
  await d?.stop();
  d = undefined;
  killRunners(box.home);
  if (work) await ralph(['remote', 'disconnect', 'ralph-st-box'], { env, cwd: work, timeoutMs: 20_000 }).catch(() => undefined);
  laptopSdk = makeTempHome('ralph-sts');
  await printedCommandsWork('sdk', laptopEnv(laptopSdk, 'sdk'), laptopSdk.home);
  assert.equal(net.zitiProcesses().filter((x) => / (tunnel|demo) /.test(x.cmdline)), [], 'no ziti tunneler on either side');
});

test('a laptop added later gets only its identity; a half-done identity (created, never enrolled, token expired) is enrolled', async () => {
  if (!net) return skipped('no ziti network');
  // As if an earlier run stopped after `create identity`, and its token ran out: one with a token
  // valid for one minute counts as expired (enrolling takes a while), so setup makes a new one.
  await ziti(['edge', 'create', 'identity', 'ralph-st-half', '--jwt-output-file', '/dev/null']);
  const [half] = await list('identities', 'name="ralph-st-half"');
  await ziti(['edge', 'delete', 'enrollment', half!.enrollment.ott.id]);
  await ziti(['edge', 'create', 'enrollment', 'ott', 'ralph-st-half', '--duration', '1', '--jwt-output-file', '/dev/null']);

  const r = await setup(['--laptop', 'ralph-st-laptop', 'ralph-st-laptop2', 'ralph-st-half']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /^ {2}created identity ralph-st-laptop2 /m);
  assert.match(r.stdout, /^ {2}updated identity ralph-st-half /m);
  assert.is((r.stdout.match(/^ {2}kept /gm) ?? []).length, 9, r.stdout);
  assert.equal(readdirSync(ids).sort(), ['ralph-st-box.json', 'ralph-st-half.json', 'ralph-st-laptop.json', 'ralph-st-laptop2.json']);
  const [enrolled] = await list('identities', 'name="ralph-st-half"');
  assert.ok(enrolled!.authenticators.cert, 'enrolled now');
  assert.equal(enrolled!.roleAttributes, ['ralph-st-clients']);
  assert.is((r.stdout.match(/^ {2}ralph remote add ralph-st-box /gm) ?? []).length, 3, 'one remote add per laptop');
});

test('errors are one line and change nothing: not logged in, a stray identity file, bad names', async () => {
  if (!net) return skipped('no ziti network');
  const before = await snapshot();
  const empty = join(laptop.home, 'no-login');
  mkdirSync(empty);
  const r1 = await setup([], { ZITI_CONFIG_DIR: empty });
  assert.is(r1.code, 1);
  assert.is(r1.stderr, 'ralph: not logged in to an OpenZiti controller: run `ziti edge login <controller URL> -u <admin user>` first\n');

  writeFileSync(join(ids, 'stray.json'), '{}');
  const r2 = await setup(['--laptop', 'stray']);
  assert.is(r2.code, 1);
  assert.is(r2.stderr, `ralph: ${ids}/stray.json exists, but the controller has no identity stray: it belongs to another network; move it away or use another --out directory\n`);

  const r3 = await setup(['--box', 'user']);
  assert.is(r3.code, 1);
  assert.match(r3.stderr, /^ralph: bad identity name "user": the ziti CLI reserves it; choose another\n$/);
  const r4 = await ralph(['ziti', 'setup', '--service', 'bad name'], { env, cwd: laptop.home });
  assert.is(r4.code, 1);
  assert.match(r4.stderr, /^ralph: bad service name "bad name": /);
  assert.is(await snapshot(), before);
});

test.run();
