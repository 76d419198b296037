// `ralph tui` with remote loops: a real `ralph daemon` on loopback tcp (the box) runs a loop the
// laptop started; the TUI lists it beside a local loop with its location, shows its live output,
// types into its agent, survives the daemon being killed and restarted (reconnects, types again), and
// marks a remote that has vanished as unreachable, with why, without freezing.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDb } from '../store/db.js';
import { LoopStore } from '../store/loops.js';
import { CliWorld } from './helpers/cli.js';
import { killRunners, startDaemon, type DaemonHandle } from './helpers/daemon.js';
import { FIXTURES, RALPH_BIN, makeTempHome, waitUntil, type TempHome } from './helpers/env.js';
import { TestPager } from './helpers/pager.js';
import { Tmux } from './helpers/tmux.js';

const ECHO_AGENT = `node ${join(FIXTURES, 'agent.mjs')} echo`;

let laptop: CliWorld;
let box: TempHome;
let d: DaemonHandle;
let work: string;

function git(args: string[], cwd: string, env: NodeJS.ProcessEnv): void {
  const r = spawnSync('git', args, { cwd, env, encoding: 'utf8' });
  assert.is(r.status, 0, `git ${args.join(' ')}: ${r.stderr}`);
}

test.before(async () => {
  laptop = new CliWorld('ralph-tuil');
  box = makeTempHome('ralph-tuib');
  d = await startDaemon(box, { listen: ['tcp://127.0.0.1:0'] });
  // The box's bare repo by hand (no hooks): loops start with `ralph start --remote`.
  mkdirSync(join(box.home, 'repos'), { recursive: true });
  git(['init', '-q', '--bare', join(box.home, 'repos', 'app.git')], box.home, box.env);
  work = join(laptop.home.home, 'app');
  git(['init', '-q', '-b', 'main', work], laptop.home.home, laptop.env);
  writeFileSync(join(work, 'prd.json'), JSON.stringify({ project: 'app', userStories: [{ id: 'US-001', title: 'one', passes: false }] }));
  git(['add', '.'], work, laptop.env);
  git(['commit', '-qm', 'task'], work, laptop.env);
  git(['push', '-q', `file://${join(box.home, 'repos', 'app.git')}`, 'HEAD:refs/heads/feature'], work, laptop.env);
  const add = await laptop.ralph(['remote', 'add', 'box', '--address', d.tcp!, '--token-file', d.tokenFile, '--repo', 'app'], { cwd: work });
  assert.is(add.code, 0, add.stderr);
});

test.after(async () => {
  await d?.stop();
  killRunners(box.home);
  await laptop.cleanup();
  box.cleanup();
});

const rowOf = (screen: string, id: string) => screen.split('\n').find((l) => l.slice(2).startsWith(id + ' ')) ?? '';

async function select(tmux: Tmux, session: string, id: string): Promise<void> {
  // Esc (clear the filter) alone: Esc and a key in one read are Alt+key.
  await tmux.keys(session, 'Escape');
  await tmux.keys(session, '/');
  await tmux.text(session, id);
  await tmux.keys(session, 'Enter');
  await tmux.waitForScreen(session, `loop ${id} selected`, (s) => new RegExp(`^─ ${id} · `, 'm').test(s));
}

test('a remote loop over tcp beside a local one: listed with its location, live, typed into; the daemon killed and restarted: reconnects; a vanished remote: marked unreachable with why', async () => {
  const start = await laptop.ralph(['start', '--remote', 'box', '--branch', 'feature', '--agent-cmd', ECHO_AGENT, '--max-iterations', '2'], { cwd: work });
  assert.is(start.code, 0, start.stderr);
  const remoteId = start.stdout.trim();
  const localId = await laptop.startLoop({ steps: 'echo' });
  // A loop recorded for a remote whose box has gone away since (nothing listens at its address).
  const config = JSON.parse(readFileSync(laptop.env.RALPH_CONFIG!, 'utf8'));
  config.remotes.gone = { address: 'tcp://127.0.0.1:9', token: 'of-a-box-long-gone', repo: 'app' };
  writeFileSync(laptop.env.RALPH_CONFIG!, JSON.stringify(config, null, 2));
  const store = new LoopStore(openDb(join(laptop.home.home, 'ralph.db')));
  store.insert({ id: 'lost-0001', name: 'lost-0001', location: 'remote', remote: 'gone', remoteLoopId: 'lost-0001', workDir: '/srv/app', agent: 'claude', maxIterations: 5, status: 'running' });
  store.db.close();

  const pager = new TestPager(laptop.home.home);
  const tmux = new Tmux({ ...laptop.env, PAGER: pager.command });
  try {
    await tmux.start('t', ['tui']);
    const listed = await tmux.waitForScreen('t', 'local and remote loops listed', (s) => /\bbox\b/.test(rowOf(s, remoteId)) && /\blocal\b/.test(rowOf(s, localId)) && rowOf(s, 'lost-0001') !== '');
    assert.match(rowOf(listed, remoteId), /box\s+running/);

    await select(tmux, 't', remoteId);
    await tmux.waitForScreen('t', "the remote agent's screen", (s) => s.includes('ECHO READY'));
    await tmux.keys('t', 'i');
    await tmux.waitForScreen('t', 'interactive mode', (s) => s.includes('INTERACTIVE'));
    await tmux.text('t', 'over the daemon');
    await tmux.waitForScreen('t', 'the remote echo', (s) => s.includes('over the daemon'));
    const boxLog = () => {
      try {
        return readFileSync(join(box.home, 'logs', `${remoteId}.log`), 'utf8');
      } catch {
        return '';
      }
    };
    await waitUntil(() => boxLog().includes('over the daemon'), { what: "the typed text in the box's log" });
    await tmux.keys('t', 'C-]');

    // l: the remote log, read from the daemon page by page, whole in the pager.
    await tmux.keys('t', 'l');
    const paged = await tmux.waitForScreen('t', 'the remote log in the pager', (s) => /PAGER READY \d+/.test(s));
    assert.is(Number(/PAGER READY (\d+)/.exec(paged)![1]), Buffer.byteLength(boxLog()));
    await tmux.text('t', 'q');
    await tmux.keys('t', 'Enter');
    await tmux.waitForScreen('t', 'back from the pager', (s) => s.includes('↑↓/jk select') && s.includes('over the daemon'));

    // The daemon dies: its loop runs on, the TUI says it lost the connection and that the box does not answer.
    await d.kill();
    await tmux.waitForScreen('t', 'the lost connection noticed', (s) => /^─ .*(reconnecting|unreachable)/m.test(s), 30_000);
    await tmux.waitForScreen('t', 'box marked unreachable', (s) => /box ×/.test(rowOf(s, remoteId)), 30_000);
    // Keys still work at once meanwhile (nothing waits on the dead box).
    await tmux.keys('t', '?');
    await tmux.waitForScreen('t', 'the help, while the box is away', (s) => s.includes('any key closes this help'), 3000);
    await tmux.keys('t', 'x');

    // The daemon comes back on the same address: the pane reconnects, typing reaches the agent again.
    d = await startDaemon(box, { listen: [d.tcp!] });
    await tmux.waitForScreen('t', 'box reachable again', (s) => /box\s+running/.test(rowOf(s, remoteId)) && !/box ×/.test(rowOf(s, remoteId)), 30_000);
    await tmux.waitForScreen('t', 'the pane live again', (s) => !/^─ .*(reconnecting|unreachable)/m.test(s) && s.includes('over the daemon'), 30_000);
    await tmux.keys('t', 'i');
    await tmux.waitForScreen('t', 'interactive mode again', (s) => s.includes('INTERACTIVE'));
    await tmux.text('t', 'after the restart');
    await waitUntil(() => boxLog().includes('after the restart'), { what: 'typing after the daemon restart', timeoutMs: 20_000 });
    await tmux.keys('t', 'C-]');

    // The vanished remote: marked, and why, in the header of its loop.
    await select(tmux, 't', 'lost-0001');
    const lost = await tmux.waitForScreen('t', 'why the remote is unreachable', (s) => /gone ×/.test(rowOf(s, 'lost-0001')) && s.includes('remote gone does not answer:'), 30_000);
    assert.match(lost, /remote gone \(tcp:\/\/127\.0\.0\.1:9\): unreachable: nothing is listening there/);
    assert.match(lost, /^─ lost-0001 · running · .*gone unreachable/m);

    await tmux.keys('t', 'q');
    const status = await tmux.exitStatus('t');
    assert.is(status, '0', await tmux.screen('t'));
  } finally {
    await tmux.kill();
  }
});

test.run();
