// The laptop side of remotes, against a stand-in daemon on loopback tcp: `ralph remote add|list|
// remove|test`, `ralph start --remote`, recording remote loops, reconciliation (bounded, with honest
// "unreachable"), completion events, and the loop channel through the daemon.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dialRemoteLoop } from '../client/remote-loop.js';
import { reconcileRemoteRows, reconcileRow, UNKNOWN_TO_DAEMON_REASON } from '../client/reconcile.js';
import { recordPushedLoops } from '../client/record.js';
import { watchRemoteCompletions } from '../client/events.js';
import { dialDaemon, findRemote } from '../client/daemon.js';
import { PROTOCOL_VERSION, type DaemonLoop } from '../daemon/protocol.js';
import { LoopFeed } from '../client/loop-feed.js';
import { LOOP_PROTOCOL } from '../loop/protocol.js';
import { RpcPeer } from '../rpc/peer.js';
import { readConfig, writeConfig } from '../store/config.js';
import { openDb } from '../store/db.js';
import { LoopStore, NO_USAGE } from '../store/loops.js';
import { makeTempHome, ralph, waitUntil, type TempHome } from './helpers/env.js';
import { deadAddress, startSilentServer, startStubDaemon, type StubDaemon } from './remote-stub-daemon.js';

let t: TempHome;
let stub: StubDaemon;
let store: LoopStore;
let repoN = 0;

test.before(async () => {
  t = makeTempHome('ralph-remote');
  // The in-process calls below read the same config and DB as the CLI processes.
  process.env.RALPH_HOME = t.home;
  process.env.RALPH_CONFIG = t.env.RALPH_CONFIG;
  stub = await startStubDaemon({ host: 'box-host' });
  store = new LoopStore(openDb(join(t.home, 'ralph.db')));
});

test.after(async () => {
  store.db.close();
  await stub.close();
  t.cleanup();
});

/** A fresh git repository named `name` (its directory name is the default repo name). */
async function newRepo(name = `project${++repoN}`): Promise<string> {
  const dir = join(t.home, 'repos-here', name);
  mkdirSync(dir, { recursive: true });
  git(['init', '-q', dir], t.home);
  return dir;
}

function git(args: string[], cwd: string): string {
  const r = spawnSync('git', args, { cwd, env: t.env, encoding: 'utf8' });
  assert.is(r.status, 0, `git ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function gitRemotes(dir: string): Promise<string> {
  return git(['remote', '-v'], dir);
}

function forgetRemotes(): void {
  writeConfig({ remotes: {} });
}

test('remote add --no-check saves the remote (0600) and adds the git remote; list shows it; remove takes both away', async () => {
  forgetRemotes();
  const repo = await newRepo('myproject');
  const add = await ralph(['remote', 'add', 'box', '--address', 'tcp://127.0.0.1:7420', '--no-check'], { env: t.env, cwd: repo });
  assert.is(add.code, 0, add.stderr);
  assert.match(add.stdout, /added remote box \(tcp:\/\/127\.0\.0\.1:7420\) \(not checked\)/);
  assert.match(add.stdout, /git remote ralph-remote → ralph:\/\/box\/myproject; start a loop with: git push ralph-remote <branch>/);
  assert.is(statSync(t.env.RALPH_CONFIG!).mode & 0o777, 0o600);
  assert.equal(readConfig().remotes.box, { name: 'box', address: 'tcp://127.0.0.1:7420', gitRemote: 'ralph-remote', repo: 'myproject' });
  assert.match(await gitRemotes(repo), /^ralph-remote\tralph:\/\/box\/myproject \(push\)$/m);

  const list = await ralph(['remote', 'list'], { env: t.env });
  assert.match(list.stdout, /^NAME\s+ADDRESS\s+REPO\s+GIT REMOTE/);
  assert.match(list.stdout, /^box\s+tcp:\/\/127\.0\.0\.1:7420\s+myproject\s+ralph-remote$/m);
  const json = JSON.parse((await ralph(['remote', 'list', '--json'], { env: t.env })).stdout);
  assert.equal(json, [{ name: 'box', address: 'tcp://127.0.0.1:7420', gitRemote: 'ralph-remote', repo: 'myproject' }]);

  const dup = await ralph(['remote', 'add', 'box', '--address', 'tcp://127.0.0.1:7421', '--no-check'], { env: t.env, cwd: repo });
  assert.is(dup.code, 1);
  assert.match(dup.stderr, /^ralph: remote box already exists \(tcp:\/\/127\.0\.0\.1:7420\); remove it first/);

  const rm = await ralph(['remote', 'remove', 'box'], { env: t.env, cwd: repo });
  assert.is(rm.code, 0, rm.stderr);
  assert.match(rm.stdout, /removed remote box\nremoved git remote ralph-remote/);
  assert.equal(readConfig().remotes, {});
  assert.is(await gitRemotes(repo), '');

  const again = await ralph(['remote', 'remove', 'box'], { env: t.env });
  assert.is(again.code, 1);
  assert.match(again.stderr, /^ralph: no remote named "box"/);

  // outside a git repository: the remote is saved, no git remote is touched
  const outside = join(t.home, 'not-a-repo');
  mkdirSync(outside);
  const bare = await ralph(['remote', 'add', 'far', '--address', 'tcp://127.0.0.1:7420', '--no-check'], { env: t.env, cwd: outside });
  assert.is(bare.code, 0, bare.stderr);
  assert.match(bare.stdout, /not in a git repository: no git remote added/);
  assert.equal(readConfig().remotes.far, { name: 'far', address: 'tcp://127.0.0.1:7420' });

  // a Ziti remote: service and identity file (kept as an absolute path)
  writeFileSync(join(outside, 'laptop.json'), '{}');
  const z = await ralph(['remote', 'add', 'zbox', '--ziti-service', 'ralph-box', '--ziti-identity', 'laptop.json', '--no-check'], { env: t.env, cwd: outside });
  assert.is(z.code, 0, z.stderr);
  assert.equal(readConfig().remotes.zbox, { name: 'zbox', address: 'ziti:ralph-box', zitiIdentity: join(outside, 'laptop.json') });
});

test('remote add checks the daemon; remote test shows host, version, agents, loops and round trip', async () => {
  forgetRemotes();
  const repo = await newRepo();
  const add = await ralph(['remote', 'add', 'live', '--address', stub.address, '--git-remote', 'box', '--repo', 'shared/app'], {
    env: t.env,
    cwd: repo,
  });
  assert.is(add.code, 0, add.stderr);
  assert.match(add.stdout, /added remote live \(tcp:\/\/127\.0\.0\.1:\d+\): daemon on box-host, ralph 0\.1\.0/);
  assert.match(await gitRemotes(repo), /^box\tralph:\/\/live\/shared\/app \(fetch\)$/m);

  const tested = await ralph(['remote', 'test', 'live'], { env: t.env });
  assert.is(tested.code, 0, tested.stderr);
  assert.match(tested.stdout, /^remote live \(tcp:\/\/127\.0\.0\.1:\d+\) answers$/m);
  assert.match(tested.stdout, /^ {2}host {8}box-host$/m);
  assert.match(tested.stdout, /^ {2}version {5}ralph 0\.1\.0 \(protocol 1\)$/m);
  assert.match(tested.stdout, /^ {2}agents {6}claude \(installed on first use: opencode\)$/m);
  assert.match(tested.stdout, /^ {2}loops {7}\d+ running \(at most 4\)$/m);
  assert.match(tested.stdout, /^ {2}round trip {2}\d+\.\d ms$/m);

  const unknown = await ralph(['remote', 'test', 'nope'], { env: t.env });
  assert.is(unknown.code, 1);
  assert.match(unknown.stderr, /^ralph: no remote named "nope" \(known: live\); add it with: ralph remote add nope --ssh \[USER@\]HOST \(or --address, --ziti-service\)\n$/);
});

test('remote add to a dead address, or to a daemon that never answers: one clear line, nothing saved', async () => {
  forgetRemotes();
  const repo = await newRepo();
  const dead = await deadAddress();
  const r = await ralph(['remote', 'add', 'gone', '--address', dead], { env: t.env, cwd: repo });
  assert.is(r.code, 1);
  assert.is(r.stderr.split('\n').filter(Boolean).length, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`^ralph: remote gone \\(${dead.replace(/\./g, '\\.')}\\): unreachable: nothing is listening there; nothing saved \\(--no-check adds it anyway\\)\\n$`));
  assert.equal(readConfig().remotes, {});
  assert.is(await gitRemotes(repo), '');

  const silent = await startSilentServer();
  try {
    const started = Date.now();
    const s = await ralph(['remote', 'add', 'hung', '--address', silent.address], { env: t.env, cwd: repo });
    assert.is(s.code, 1);
    assert.match(s.stderr, /^ralph: remote hung \(tcp:\/\/127\.0\.0\.1:\d+\): timed out waiting for the daemon's hello reply \(5000 ms\); nothing saved/);
    assert.ok(Date.now() - started < 9000, 'bounded by the check timeout');
    assert.equal(readConfig().remotes, {});
  } finally {
    await silent.close();
  }
});

test('remote add refuses bad input and a git remote that points elsewhere, saving nothing', async () => {
  forgetRemotes();
  const repo = await newRepo();
  git(['remote', 'add', 'ralph-remote', 'https://example.invalid/x.git'], repo);
  const clash = await ralph(['remote', 'add', 'box', '--address', stub.address], { env: t.env, cwd: repo });
  assert.is(clash.code, 1);
  assert.match(clash.stderr, /^ralph: git remote ralph-remote already exists with URL https:\/\/example\.invalid\/x\.git; choose another with --git-remote NAME/);
  assert.equal(readConfig().remotes, {});

  const cases: Array<[string[], RegExp]> = [
    [['remote', 'add', 'a/b', '--address', stub.address], /bad remote name "a\/b"/],
    [['remote', 'add', 'x', '--address', 'http://host:1'], /unsupported address "http:\/\/host:1"/],
    [['remote', 'add', 'x', '--address', 'tcp://host'], /bad tcp address "tcp:\/\/host": expected tcp:\/\/HOST:PORT/],
    [['remote', 'add', 'x'], /how is remote x reached\? give --ssh \[USER@\]HOST\[:PORT\], --address tcp:\/\/HOST:PORT --token-file FILE, or --ziti-service NAME --ziti-identity FILE/],
    [['remote', 'add', 'x', '--ziti-service', 'ralph-box', '--ziti-identity', '/nonexistent/id.json'], /no identity file at \/nonexistent\/id\.json/],
    [['remote', 'add', 'x', '--address', stub.address, '--repo', '../etc'], /bad repo name "\.\.\/etc": '\.\.' is not allowed/],
    // the daemon's own rule and words (store/names.ts), not a look-alike
    [['remote', 'add', 'x', '--address', stub.address, '--repo', 'team/app.lock'], /bad repo name "team\/app\.lock": a part ends with '\.lock'/],
  ];
  for (const [args, re] of cases) {
    const r = await ralph(args, { env: { ...t.env, RALPH_ZITI_IDENTITY: '' }, cwd: repo });
    assert.is(r.code, 1, args.join(' '));
    assert.match(r.stderr, re);
    assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
  assert.equal(readConfig().remotes, {});
});

test('start --remote asks the daemon to start a loop, records it locally, prints the id and the attach hint', async () => {
  forgetRemotes();
  const repo = await newRepo('webapp');
  const added = await ralph(['remote', 'add', 'box', '--address', stub.address], { env: t.env, cwd: repo });
  assert.is(added.code, 0, added.stderr);
  const r = await ralph(['start', '--remote', 'box', '--branch', 'feature', '--agent', 'opencode', '--max-iterations', '7', '--task', 'tasks/a'], {
    env: t.env,
    cwd: repo,
  });
  assert.is(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  assert.match(id, /^feature-[0-9a-f]{4}$/);
  assert.is(r.stderr, `ralph: started loop ${id} on box (opencode, 7 iterations) — ralph attach ${id}\n`);
  assert.equal(stub.startCalls.at(-1), { repo: 'webapp', branch: 'feature', agent: 'opencode', maxIterations: 7, task: 'tasks/a' });

  const row = store.get(id)!;
  assert.is(row.location, 'remote');
  assert.is(row.remote, 'box');
  assert.is(row.remoteLoopId, id);
  assert.is(row.repo, 'webapp');
  assert.is(row.branch, 'feature');
  assert.is(row.baseCommit, 'c0ffee');
  assert.is(row.agent, 'opencode');
  assert.is(row.status, 'running');
  assert.is(row.maxIterations, 7);
  assert.is(row.workDir, `/srv/ralph/worktrees/${id}`);
  assert.is(row.host, 'box-host');
  assert.is(row.zitiService, null);
  assert.ok(row.lastSeenAt);

  const bad = await ralph(['start', '--remote', 'box', '--branch', 'missing'], { env: t.env, cwd: repo });
  assert.is(bad.code, 1);
  assert.is(bad.stderr, 'ralph: cannot start a loop on box (webapp missing): no branch missing in repo webapp\n');
  const noRemote = await ralph(['start', '--remote', 'nope', '--branch', 'x'], { env: t.env, cwd: repo });
  assert.match(noRemote.stderr, /^ralph: no remote named "nope"/);
  const calls = stub.startCalls.length;
  const badRepo = await ralph(['start', '--remote', 'box', '--branch', 'x', '--repo', 'a/b/c'], { env: t.env, cwd: repo });
  assert.is(badRepo.code, 1);
  assert.match(badRepo.stderr, /^ralph: bad repo name "a\/b\/c": more than one level of folders/);
  assert.is(stub.startCalls.length, calls, 'refused before asking the daemon');
});

function daemonLoop(loopId: string, over: Partial<DaemonLoop> = {}): DaemonLoop {
  const now = new Date().toISOString();
  return {
    loopId,
    name: loopId,
    repo: 'app',
    branch: 'main',
    baseCommit: 'abc',
    worktree: `/w/${loopId}`,
    agent: 'claude',
    status: 'running',
    iteration: 2,
    maxIterations: 10,
    currentStory: 'US-002',
    startedAt: now,
    updatedAt: now,
    endedAt: null,
    reason: null,
    pushId: 'push-1',
    pausedUntil: null,
    resumedFrom: null,
    usage: NO_USAGE,
    ...over,
  };
}

test('recordPushedLoops: one row per loop, idempotent, a taken id gets the remote name, ziti fields kept', () => {
  const remote = { name: 'zbox', address: 'ziti:ralph-zbox', zitiIdentity: '/keys/laptop.json' };
  store.insert({ id: 'taken-0001', name: 'taken-0001', location: 'local', workDir: '/tmp', agent: 'claude', maxIterations: 1 });
  const rows = recordPushedLoops(store, remote, [daemonLoop('fresh-0001'), daemonLoop('taken-0001')], { host: 'zhost' });
  assert.equal(
    rows.map((r) => r.id),
    ['fresh-0001', 'taken-0001-zbox'],
  );
  assert.is(rows[0]!.zitiService, 'ralph-zbox');
  assert.is(rows[0]!.identityPath, '/keys/laptop.json');
  assert.is(rows[0]!.pushId, 'push-1');
  assert.is(rows[0]!.currentStory, 'US-002');
  const again = recordPushedLoops(store, remote, [daemonLoop('fresh-0001', { iteration: 3 })]);
  assert.is(again[0]!.id, 'fresh-0001');
  assert.is(again[0]!.iteration, 3);
  assert.is(store.list().filter((r) => r.remote === 'zbox').length, 2, 'no duplicate');
});

test('reconcile: a loop that finished while nobody was connected is final after reconciliation', async () => {
  forgetRemotes();
  writeConfig({ remotes: { box: { name: 'box', address: stub.address } } });
  const remote = findRemote(readConfig(), 'box');
  const { stream } = await dialDaemon(remote, { version: PROTOCOL_VERSION, channel: 'control' });
  const peer = new RpcPeer(stream);
  const started = (await peer.request('loop.start', { repo: 'app', branch: 'recon' })) as { loopId: string };
  peer.close();
  const [row] = recordPushedLoops(store, remote, [stub.loops.get(started.loopId)!]);
  assert.is(row!.status, 'running');

  stub.loops.get(started.loopId)!.iteration = 4;
  stub.finish(started.loopId, 'completed', 'all stories pass');
  const reach = await reconcileRemoteRows(store, { timeoutMs: 3000 });
  assert.is(reach.get('box'), 'ok');
  const now = store.get(row!.id)!;
  assert.is(now.status, 'completed');
  assert.is(now.reason, 'all stories pass');
  assert.is(now.iteration, 4);
  assert.ok(now.endedAt);

  // a loop the daemon does not know (its DB was replaced, say) is closed with a reason
  recordPushedLoops(store, remote, [daemonLoop('ghost-0001')]);
  stub.loops.delete('ghost-0001');
  await reconcileRemoteRows(store, { timeoutMs: 3000 });
  assert.is(store.findRemote('box', 'ghost-0001')!.status, 'failed');
  assert.is(store.findRemote('box', 'ghost-0001')!.reason, UNKNOWN_TO_DAEMON_REASON);

  // what `ralph status` shows
  const status = await ralph(['status', '--json'], { env: t.env });
  assert.is(status.code, 0, status.stderr);
  const entry = (JSON.parse(status.stdout) as Array<{ id: string; status: string }>).find((e) => e.id === row!.id);
  assert.is(entry?.status, 'completed');
});

test('reconcile: a dead daemon and one that never answers are both "unreachable", promptly; rows keep their state', async () => {
  const silent = await startSilentServer();
  try {
    writeConfig({
      remotes: {
        dead: { name: 'dead', address: await deadAddress() },
        hung: { name: 'hung', address: silent.address },
        box: { name: 'box', address: stub.address },
      },
    });
    const config = readConfig();
    const deadRow = recordPushedLoops(store, findRemote(config, 'dead'), [daemonLoop('d-0001')])[0]!;
    const hungRow = recordPushedLoops(store, findRemote(config, 'hung'), [daemonLoop('h-0001')])[0]!;
    const live = stub.loops.values().next().value as DaemonLoop;
    const liveLoop = recordPushedLoops(store, findRemote(config, 'box'), [daemonLoop('live-0001')])[0]!;
    stub.loops.set('live-0001', daemonLoop('live-0001', { iteration: 5 }));
    assert.ok(live);

    const started = Date.now();
    const reach = await reconcileRemoteRows(store, { timeoutMs: 800 });
    const took = Date.now() - started;
    assert.ok(took < 1500, `returned in ${took} ms`);
    assert.is(reach.get('dead'), 'unreachable');
    assert.is(reach.get('hung'), 'unreachable');
    assert.is(reach.get('box'), 'ok', 'the others do not hold up a reachable one');
    assert.ok(silent.accepted() >= 1, 'the hung daemon was really dialled');
    for (const r of [deadRow, hungRow]) {
      const now = store.get(r.id)!;
      assert.is(now.status, 'running');
      assert.is(now.iteration, 2);
      assert.is(now.lastSeenAt, r.lastSeenAt);
    }
    assert.is(store.get(liveLoop.id)!.iteration, 5);

    const { reachability } = await reconcileRow(store, store.get(hungRow.id)!, { timeoutMs: 500 });
    assert.is(reachability, 'unreachable');

    // `ralph status` with the same remotes returns promptly and says which are unreachable
    const s0 = Date.now();
    const status = await ralph(['status', '--timeout', '800'], { env: t.env });
    assert.is(status.code, 0, status.stderr);
    assert.ok(Date.now() - s0 < 5000, `status returned in ${Date.now() - s0} ms`);
    assert.match(status.stdout, /^d-0001\s+dead \(unreachable\)\s+running\b/m);
    assert.match(status.stdout, /^h-0001\s+hung \(unreachable\)\s+running\b/m);
  } finally {
    await silent.close();
    // close the rows so later tests do not dial these remotes
    for (const id of ['d-0001', 'h-0001']) {
      const r = store.findRemote(id.startsWith('d') ? 'dead' : 'hung', id);
      if (r) store.finish(r.id, 'stopped', 'test over');
    }
  }
});

test('completion events from a connected daemon update the local row at once', async () => {
  writeConfig({ remotes: { box: { name: 'box', address: stub.address } } });
  const remote = findRemote(readConfig(), 'box');
  const row = recordPushedLoops(store, remote, [daemonLoop('evt-0001')])[0]!;
  stub.loops.set('evt-0001', daemonLoop('evt-0001'));
  const seen: string[] = [];
  const watch = await watchRemoteCompletions(store, remote, { onEvent: (e, loop) => seen.push(`${e} ${loop.loopId}`) });
  try {
    stub.finish('evt-0001', 'stopped', 'stopped by user');
    await waitUntil(() => store.get(row.id)!.status === 'stopped', { timeoutMs: 5000, what: 'the stopped event applied' });
    assert.is(store.get(row.id)!.reason, 'stopped by user');
    assert.equal(seen, ['loop.stopped evt-0001']);
  } finally {
    watch.close();
  }
  assert.match(await watch.closed, /done/);
});

test('dialRemoteLoop: the stream after hello speaks the loop protocol (keystrokes in, output out)', async () => {
  writeConfig({ remotes: { box: { name: 'box', address: stub.address } } });
  const remote = findRemote(readConfig(), 'box');
  stub.loops.set('tty-0001', daemonLoop('tty-0001'));
  const row = recordPushedLoops(store, remote, [daemonLoop('tty-0001')])[0]!;
  const peer = new RpcPeer(await dialRemoteLoop(row, { timeoutMs: 3000 }));
  try {
    const got: string[] = [];
    const echoed = new Promise<void>((resolve) =>
      peer.onNotification('output', (_p, _peer, payload) => {
        got.push(payload!.toString());
        if (got.join('').includes('echo:\x1b')) resolve();
      }),
    );
    const sub = (await peer.request('subscribe', { protocol: LOOP_PROTOCOL })) as { status: string };
    assert.is(sub.status, 'running');
    await peer.request('write', { data: 'y\r' });
    await peer.request('write', { data: '\x1b' });
    await echoed;
    assert.is(stub.written('tty-0001'), 'y\r\x1b');
    const completed = new Promise((resolve) => peer.onNotification('completed', resolve));
    stub.finish('tty-0001', 'completed', null);
    assert.equal(((await completed) as { status: string }).status, 'completed');
  } finally {
    peer.close();
  }

  // a loop the daemon does not have: the daemon's refusal, naming the remote
  const ghost = recordPushedLoops(store, remote, [daemonLoop('nowhere-0001')])[0]!;
  try {
    await dialRemoteLoop(ghost, { timeoutMs: 3000 });
    assert.unreachable('should refuse');
  } catch (err) {
    assert.match((err as Error).message, /^remote box \(tcp:\/\/127\.0\.0\.1:\d+\): the daemon refused: no loop nowhere-0001 on box-host$/);
  }
  store.finish(ghost.id, 'failed', 'test over');
});

test('LoopFeed speaks loop protocol 2 and still reads a runner an older ralph started (protocol 1): keys in, output out, byte for byte', async () => {
  const old = await startStubDaemon({ host: 'old-box', loopProtocol: 1 });
  try {
    for (const [label, daemon] of [['protocol 2', stub], ['protocol 1', old]] as const) {
      writeConfig({ remotes: { [label.replace(' ', '')]: { name: label.replace(' ', ''), address: daemon.address } } });
      const remote = findRemote(readConfig(), label.replace(' ', ''));
      const loopId = `feed-${label.slice(-1)}000`;
      daemon.loops.set(loopId, daemonLoop(loopId));
      const row = recordPushedLoops(store, remote, [daemonLoop(loopId)])[0]!;
      const chunks: Buffer[] = [];
      let seqs = '';
      const feed = new LoopFeed({
        connect: async () => new RpcPeer(await dialRemoteLoop(row, { timeoutMs: 3000 })),
        endedWhileAway: async () => undefined,
        replay: 'none',
        onOutput: (data, seq) => {
          seqs += `${seq} `;
          chunks.push(data);
        },
      });
      await feed.start();
      assert.ok(feed.write('é1'), `${label}: connected`);
      assert.ok(feed.write('日2'));
      await waitUntil(() => Buffer.concat(chunks).toString().includes('echo:日2'), { what: `${label}: both echoes` });
      assert.is(Buffer.concat(chunks).toString(), 'echo:é1echo:日2', label);
      assert.is(seqs, `0 ${Buffer.byteLength('echo:é1')} `, `${label}: each byte once, in order`);
      assert.is(daemon.written(loopId), 'é1日2');
      daemon.finish(loopId, 'completed', null);
      assert.is((await feed.ended).status, 'completed');
      store.finish(row.id, 'completed', 'test over');
    }
  } finally {
    await old.close();
  }
});

test.run();
