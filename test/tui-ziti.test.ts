// `ralph tui` over the real OpenZiti dev network (install/ziti-dev-network.sh: a controller and an
// edge router on loopback), over both Ziti backends on the same network, one after the other (a
// service has one host at a time): first the box's daemon hosts its service with `ziti tunnel host`
// and the laptop reaches it through its shared `ziti tunnel proxy`; then a fresh box and laptop do
// the same with the Node SDK (ralph's build) in-process on both sides (`--ziti-backend sdk`,
// RALPH_ZITI_BACKEND=sdk): no tunneler, no proxy. Each time the TUI lists the remote loop with its
// location, shows its live output, and what is typed in interactive mode reaches the agent across
// the overlay. Skipped with one line when no ziti CLI is installed, the SDK part likewise without
// the SDK build (RALPH_REQUIRE_ZITI=1 / RALPH_REQUIRE_ZITI_SDK=1 make those failures).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { killRunners, startDaemon, type DaemonHandle } from './helpers/daemon.js';
import { FIXTURES, makeTempHome, ralph, waitUntil, skipped, type TempHome } from './helpers/env.js';
import { Tmux } from './helpers/tmux.js';
import { endProxyOwners, zitiNetworkOrSkip, zitiSdkOrSkip, type ZitiNetwork } from './helpers/ziti-network.js';

let net: ZitiNetwork | null = null;
/** One box (its daemon) and one laptop (its checkout `app`, its remote `box`) on one backend. */
interface Pair {
  laptop: TempHome;
  box: TempHome;
  env: NodeJS.ProcessEnv;
  d?: DaemonHandle;
  work: string;
}
const pairs: Pair[] = [];

function git(args: string[], cwd: string, gitEnv: NodeJS.ProcessEnv): void {
  const r = spawnSync('git', args, { cwd, env: gitEnv, encoding: 'utf8' });
  assert.is(r.status, 0, `git ${args.join(' ')}: ${r.stderr}`);
}

/** A box whose daemon hosts the network's service with `backend`, and a laptop that reaches it with
 * the same backend (its remote `box`, its checkout with a pushed branch `feature`). */
async function startPair(n: ZitiNetwork, backend: 'tunnel' | 'sdk'): Promise<Pair> {
  const laptop = makeTempHome('ralph-tzl');
  const box = makeTempHome('ralph-tzb');
  const env: NodeJS.ProcessEnv = { ...laptop.env, ...n.env, RALPH_ZITI_PROXY_DIR: join(laptop.home, 'zp'), RALPH_ZITI_BACKEND: backend };
  const pair: Pair = { laptop, box, env, work: join(laptop.home, 'app') };
  pairs.push(pair);
  pair.d = await startDaemon(box, {
    args: ['--ziti-service', n.service, '--ziti-identity', n.identities.daemon, '--ziti-backend', backend],
    // The SDK binds in-process: no local port (and the service's host.v1 config goes unused).
    env: backend === 'tunnel' ? { ...n.env, RALPH_ZITI_HOST_PORT: String(n.hostPort) } : n.env,
    readyTimeoutMs: 40_000,
  });
  // The box's bare repo by hand, filled over file:// (both homes are on this machine): the branch is
  // there, and the loop is started over Ziti with `ralph start --remote`.
  mkdirSync(join(box.home, 'repos'), { recursive: true });
  git(['init', '-q', '--bare', join(box.home, 'repos', 'app.git')], box.home, box.env);
  const work = pair.work;
  git(['init', '-q', '-b', 'main', work], laptop.home, laptop.env);
  writeFileSync(join(work, 'prd.json'), JSON.stringify({ project: 'app', userStories: [{ id: 'US-001', title: 'one', passes: false }] }));
  git(['add', '.'], work, laptop.env);
  git(['commit', '-qm', 'task'], work, laptop.env);
  git(['push', '-q', `file://${join(box.home, 'repos', 'app.git')}`, 'HEAD:refs/heads/feature'], work, laptop.env);
  const add = await ralph(['remote', 'add', 'box', '--ziti-service', n.service, '--ziti-identity', n.identities.client, '--repo', 'app'], { env, cwd: work, timeoutMs: 60_000 });
  assert.is(add.code, 0, add.stderr);
  return pair;
}

/** Ends a pair's daemon, runners and shared proxy (the service is free for the next host). */
async function stopPair(p: Pair): Promise<void> {
  endProxyOwners(p.env.RALPH_ZITI_PROXY_DIR);
  await p.d?.stop();
  p.d = undefined;
  killRunners(p.box.home);
}

/** The TUI on the laptop: the remote loop listed, its live output, typed text reaching the agent. */
async function tuiOverZiti(p: Pair): Promise<void> {
  const { env, work, box } = p;
  const agent = `node ${join(FIXTURES, 'agent.mjs')} echo`;
  const start = await ralph(['start', '--remote', 'box', '--branch', 'feature', '--agent-cmd', agent, '--max-iterations', '1'], { env, cwd: work, timeoutMs: 60_000 });
  assert.is(start.code, 0, start.stderr);
  const id = start.stdout.trim();
  const tmux = new Tmux(env);
  try {
    await tmux.start('t', ['tui']);
    const listed = await tmux.waitForScreen('t', 'the remote loop listed', (s) => s.split('\n').some((l) => l.slice(2).startsWith(id + ' ') && /\bbox\s+running/.test(l)), 60_000);
    assert.match(listed, new RegExp(`^─ ${id} · running`, 'm'), `the only loop is selected:\n${listed}`);
    await tmux.waitForScreen('t', "the agent's screen across the overlay", (s) => s.includes('ECHO READY'), 60_000);
    await tmux.keys('t', 'i');
    await tmux.waitForScreen('t', 'interactive mode', (s) => s.includes('INTERACTIVE'));
    await tmux.text('t', 'across ziti');
    await tmux.waitForScreen('t', 'the echo back across the overlay', (s) => s.includes('across ziti'), 30_000);
    await waitUntil(() => {
      try {
        return readFileSync(join(box.home, 'logs', `${id}.log`), 'utf8').includes('across ziti');
      } catch {
        return false;
      }
    }, { what: "the typed text in the box's log" });
    await tmux.keys('t', 'C-]');
    await tmux.waitForScreen('t', 'watch mode again', (s) => !s.includes('INTERACTIVE'));
    await tmux.keys('t', 'q');
    const status = await tmux.exitStatus('t');
    assert.is(status, '0', await tmux.screen('t'));
  } finally {
    await tmux.kill();
  }
}

test.before(async () => {
  net = await zitiNetworkOrSkip('ralph-tui');
});

test.after(async () => {
  try {
    for (const p of pairs) await stopPair(p);
  } finally {
    await net?.stop();
    for (const p of pairs) {
      p.laptop.cleanup();
      p.box.cleanup();
    }
  }
});

test('tunnel backend: a remote loop over OpenZiti in the tui: listed with its location, live output, typed text reaches the agent', async () => {
  if (!net) return skipped('no ziti network');
  const p = await startPair(net, 'tunnel');
  await tuiOverZiti(p);
  await stopPair(p);
});

test('SDK backend (daemon and laptop in-process): the same in the tui, and no ziti tunneler runs', async () => {
  if (!net) return skipped('no ziti network');
  if (!(await zitiSdkOrSkip())) return skipped('no OpenZiti SDK build');
  // The tunnel pair is stopped first (also when its test failed): one host per service.
  for (const p of pairs) await stopPair(p);
  const p = await startPair(net, 'sdk');
  await tuiOverZiti(p);
  assert.equal(net.zitiProcesses().filter((x) => / (tunnel|demo) /.test(x.cmdline)), [], 'no ziti CLI process on either side');
});

test.run();
