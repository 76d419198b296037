// `ralph tui` over the real OpenZiti dev network (install/ziti-dev-network.sh: a controller and an
// edge router on loopback): the box's daemon hosts its service with `ziti tunnel host`, the laptop
// reaches it through its shared `ziti tunnel proxy`. The TUI lists the remote loop with its location,
// shows its live output, and what is typed in interactive mode reaches the agent across the overlay.
// Skipped with one line when no ziti CLI is installed (RALPH_REQUIRE_ZITI=1 makes that a failure).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { killRunners, startDaemon, type DaemonHandle } from './helpers/daemon.js';
import { FIXTURES, makeTempHome, ralph, waitUntil, skipped, type TempHome } from './helpers/env.js';
import { Tmux } from './helpers/tmux.js';
import { endProxyOwners, zitiNetworkOrSkip, type ZitiNetwork } from './helpers/ziti-network.js';

let net: ZitiNetwork | null = null;
let laptop: TempHome;
let box: TempHome;
let env: NodeJS.ProcessEnv;
let d: DaemonHandle;
let work: string;

function git(args: string[], cwd: string, gitEnv: NodeJS.ProcessEnv): void {
  const r = spawnSync('git', args, { cwd, env: gitEnv, encoding: 'utf8' });
  assert.is(r.status, 0, `git ${args.join(' ')}: ${r.stderr}`);
}

test.before(async () => {
  net = await zitiNetworkOrSkip('ralph-tui');
  if (!net) return;
  laptop = makeTempHome('ralph-tzl');
  box = makeTempHome('ralph-tzb');
  env = { ...laptop.env, ...net.env, RALPH_ZITI_PROXY_DIR: join(laptop.home, 'zp') };
  d = await startDaemon(box, {
    args: ['--ziti-service', net.service, '--ziti-identity', net.identities.daemon, '--ziti-backend', 'tunnel'],
    env: { ...net.env, RALPH_ZITI_HOST_PORT: String(net.hostPort) },
    readyTimeoutMs: 40_000,
  });
  // The box's bare repo by hand, filled over file:// (both homes are on this machine): the branch is
  // there, and the loop is started over Ziti with `ralph start --remote`.
  mkdirSync(join(box.home, 'repos'), { recursive: true });
  git(['init', '-q', '--bare', join(box.home, 'repos', 'app.git')], box.home, box.env);
  work = join(laptop.home, 'app');
  git(['init', '-q', '-b', 'main', work], laptop.home, laptop.env);
  writeFileSync(join(work, 'prd.json'), JSON.stringify({ project: 'app', userStories: [{ id: 'US-001', title: 'one', passes: false }] }));
  git(['add', '.'], work, laptop.env);
  git(['commit', '-qm', 'task'], work, laptop.env);
  git(['push', '-q', `file://${join(box.home, 'repos', 'app.git')}`, 'HEAD:refs/heads/feature'], work, laptop.env);
  const add = await ralph(['remote', 'add', 'box', '--ziti-service', net.service, '--ziti-identity', net.identities.client, '--repo', 'app'], { env, cwd: work, timeoutMs: 60_000 });
  assert.is(add.code, 0, add.stderr);
});

test.after(async () => {
  try {
    endProxyOwners(env?.RALPH_ZITI_PROXY_DIR);
    await d?.stop();
    if (box) killRunners(box.home);
  } finally {
    await net?.stop();
    laptop?.cleanup();
    box?.cleanup();
  }
});

test('a remote loop over OpenZiti in the tui: listed with its location, live output, typed text reaches the agent', async () => {
  if (!net) return skipped('no ziti network');
  const agent = `node ${join(FIXTURES, 'agent.mjs')} echo`;
  const start = await ralph(['start', '--remote', 'box', '--branch', 'feature', '--agent-cmd', agent, '--max-iterations', '1'], { env, cwd: work, timeoutMs: 60_000 });
  assert.is(start.code, 0, start.stderr);
  const id = start.stdout.trim();
  const tmux = new Tmux(env);
  try {
    await tmux.start('t', ['tui']);
    const listed = await tmux.waitForScreen('t', 'the remote loop listed', (s) => s.split('\n').some((l) => l.slice(2).startsWith(id + ' ') && /\bbox\s+running/.test(l)), 60_000);
    assert.match(listed, new RegExp(`^─ ${id} · running`, 'm'), 'the only loop is selected');
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
});

test.run();
