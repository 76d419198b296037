// Push → loop, for real: two RALPH_HOMEs on this machine play the laptop and the remote box. The box
// runs `ralph daemon` on loopback tcp; the laptop pushes with plain git through `ralph://box/app`
// (git finds git-remote-ralph on PATH), and the loops run the fixture agent on the box.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { join } from 'node:path';
import { FIXTURES, RALPH_BIN, makeTempHome, waitUntil, type RunResult } from './helpers/env.js';
import { killRunners, startDaemon, type DaemonHandle } from './helpers/daemon.js';
import { Laptop, withGitRemoteHelper } from './helpers/laptop.js';
import { holdInstallLock } from './helpers/install-lock.js';

const laptop = makeTempHome('ralph-gl');
const box = makeTempHome('ralph-gb');
const work = join(laptop.home, 'app');
const env: NodeJS.ProcessEnv = withGitRemoteHelper(laptop.home, laptop.env);
const agent = join(FIXTURES, 'agent.mjs');
const workAgent = `node ${agent} work`;
// Runs until stopped: a loop that is still running when the next push comes.
const slowAgent = `FIXTURE_SLOW_MS=200 FIXTURE_SLOW_COUNT=100000 node ${agent} slow`;
let d: DaemonHandle;

/** Runs a command to completion with no stdin (git may exit before reading any). */
function runCommand(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: opts.env ?? env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (x) => (stdout += x));
    child.stderr.on('data', (x) => (stderr += x));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${cmd} ${args.join(' ')}: no exit within ${opts.timeoutMs ?? 60_000} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.timeoutMs ?? 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

function ralph(args: string[], opts: { env: NodeJS.ProcessEnv; cwd?: string }): Promise<RunResult> {
  return runCommand(process.execPath, [RALPH_BIN, ...args], opts);
}
let events: Awaited<ReturnType<DaemonHandle['subscribe']>>;

async function git(args: string[], cwd = work): Promise<string> {
  const r = await runCommand('git', args, { env, cwd, timeoutMs: 60_000 });
  if (r.code !== 0) throw new Error(`git ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
  return r.stdout.trim();
}

function push(args: string[], cwd = work): Promise<RunResult> {
  return runCommand('git', ['push', ...args], { env, cwd, timeoutMs: 90_000 });
}

/** The loop ids of `remote: ralph: started loop <id> (...)` lines, with the whole lines. */
function started(r: RunResult): Array<{ id: string; line: string }> {
  return [...r.stderr.matchAll(/^remote: (ralph: started loop (\S+) .*?)\s*$/gm)].map((m) => ({ id: m[2]!, line: m[1]! }));
}

async function commitOn(branch: string, file: string): Promise<void> {
  await git(['switch', '--quiet', branch]);
  writeFileSync(join(work, file), `${file} ${Date.now()}\n`);
  await git(['add', file]);
  await git(['commit', '--quiet', '-m', `change ${file}`]);
}

async function daemonLoop(loopId: string): Promise<any> {
  const control = await d.control();
  try {
    const loops: any[] = await control.request('loop.list', {}, { timeoutMs: 5000 });
    return loops.find((l) => l.loopId === loopId);
  } finally {
    control.close();
  }
}

test.before(async () => {
  // amp is not installed here; its package is a file that does not exist, so no install reaches npm's registry.
  writeFileSync(join(box.home, 'config.json'), JSON.stringify({ remotes: {}, agentPackages: { amp: join(box.home, 'no-such-amp.tgz') } }));
  d = await startDaemon(box, { listen: ['tcp://127.0.0.1:0'], maxLoops: 8, env: { npm_config_offline: 'true', npm_config_cache: join(box.home, 'npm-cache') } });
  events = await d.subscribe();
  await Laptop.withTwoStoryTask(env, work);
  const added = await ralph(['remote', 'add', 'box', '--address', d.tcp!, '--token-file', d.tokenFile, '--repo', 'app'], { env, cwd: work });
  assert.is(added.code, 0, added.stderr);
});

test.after(async () => {
  await d?.stop();
  killRunners(box.home);
  laptop.cleanup();
  box.cleanup();
});

let firstLoop = '';

test('git push starts a loop (push options honoured), it completes, git fetch brings ralph/<id> home', async () => {
  const r = await push(['-o', `ralph.agent-cmd=${workAgent}`, '-o', 'ralph.iterations=3', 'ralph-remote', 'feature']);
  assert.is(r.code, 0, r.stderr);
  const loops = started(r);
  assert.is(loops.length, 1, r.stderr);
  const id = loops[0]!.id;
  assert.match(id, /^feature-[0-9a-f]{4}$/);
  assert.is(loops[0]!.line, `ralph: started loop ${id} (custom, 3 iterations) — ralph attach ${id}`);
  assert.not.match(r.stderr, /\x1b\[[0-9;]*[A-HJ]/, 'no cursor-control escapes');
  firstLoop = id;

  const done = await events.next('loop.completed', id, 60_000);
  assert.is(done.iteration, 2);
  assert.is(done.maxIterations, 3);

  // The helper wrote the local row right after the push.
  const st = await ralph(['status', '--json'], { env, cwd: work });
  const row = JSON.parse(st.stdout).find((x: any) => x.id === id);
  assert.ok(row, st.stdout);
  assert.is(row.location, 'remote');
  assert.is(row.remote, 'box');
  assert.is(row.branch, 'feature');

  await git(['fetch', '--quiet', 'ralph-remote']);
  const base = await git(['rev-parse', 'feature']);
  assert.is(await git(['rev-parse', `ralph-remote/ralph/${id}~2`]), base, 'two agent commits on top of the pushed commit');
  assert.match(await git(['log', '-1', '--format=%s', `ralph-remote/ralph/${id}`]), /US-2/);
});

let slowLoop = '';

test('a push to a branch whose loop still runs is refused with one line; -o ralph.restart stops it and starts anew', async () => {
  await git(['switch', '--quiet', '-c', 'slow', 'feature']);
  const first = await push(['-o', `ralph.agent-cmd=${slowAgent}`, 'ralph-remote', 'slow']);
  assert.is(first.code, 0, first.stderr);
  const id = started(first)[0]?.id;
  assert.ok(id, first.stderr);
  await waitUntil(async () => (await daemonLoop(id!))?.status === 'running', { what: `loop ${id} running` });

  await commitOn('slow', 'a.txt');
  const refused = await push(['ralph-remote', 'slow']);
  assert.is.not(refused.code, 0);
  const lines = refused.stderr.split('\n').filter((l) => l.startsWith('remote: ralph:'));
  assert.equal(
    lines.map((l) => l.trimEnd()),
    [`remote: ralph: loop ${id} is still running on slow; wait, ralph stop ${id}, or push with -o ralph.restart`],
    refused.stderr,
  );
  assert.match(refused.stderr, /\[remote rejected\] slow -> slow \(pre-receive hook declined\)/);
  // A delete of that branch is refused the same way.
  const del = await push(['ralph-remote', ':slow']);
  assert.is.not(del.code, 0);
  assert.match(del.stderr, new RegExp(`loop ${id} is still running on slow`));

  const restart = await push(['-o', 'ralph.restart', '-o', `ralph.agent-cmd=${slowAgent}`, 'ralph-remote', 'slow']);
  assert.is(restart.code, 0, restart.stderr);
  assert.match(restart.stderr, new RegExp(`remote: ralph: stopped loop ${id} on slow \\(ralph.restart\\)`));
  const next = started(restart)[0]?.id;
  assert.ok(next && next !== id, restart.stderr);
  await events.next('loop.stopped', id!, 30_000);
  slowLoop = next!;
});

test('a push to a branch whose loop is still starting (its agent installing) is refused; -o ralph.restart calls that start off and starts anew', async () => {
  await git(['switch', '--quiet', '-c', 'gated', 'feature']);
  // Another agent install holds the lock: the first loop's start waits there, its row and worktree made.
  const lock = await holdInstallLock(box.home);
  try {
    const first = push(['-o', 'ralph.agent=amp', 'ralph-remote', 'gated']);
    const waiting = await d.waitForLog(/loop gated-[0-9a-f]{4}: ralph: waiting for another agent install to finish/);
    const id = /loop (gated-[0-9a-f]{4}):/.exec(waiting)![1]!;
    assert.is((await daemonLoop(id))?.status, 'starting');

    await commitOn('gated', 'b.txt');
    const refused = await push(['ralph-remote', 'gated']);
    assert.is.not(refused.code, 0);
    assert.equal(
      refused.stderr.split('\n').filter((l) => l.startsWith('remote: ralph:')).map((l) => l.trimEnd()),
      [`remote: ralph: loop ${id} is still starting on gated; wait, ralph stop ${id}, or push with -o ralph.restart`],
      refused.stderr,
    );
    assert.match(refused.stderr, /\[remote rejected\] gated -> gated \(pre-receive hook declined\)/);

    const restart = await push(['-o', 'ralph.restart', '-o', `ralph.agent-cmd=${workAgent}`, '-o', 'ralph.iterations=3', 'ralph-remote', 'gated']);
    assert.is(restart.code, 0, restart.stderr);
    assert.match(restart.stderr, new RegExp(`remote: ralph: stopped loop ${id} on gated \\(ralph.restart\\)`));
    const next = started(restart)[0]?.id;
    assert.ok(next && next !== id, restart.stderr);
    assert.is((await events.next('loop.stopped', id)).reason, 'stopped while it was starting');
    await events.next('loop.completed', next, 60_000);

    // The install goes on; the stopped start then gives up and removes what it made.
    await lock.release();
    const r = await first;
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`remote: ralph: no loop started for gated: loop ${id} was stopped while it was starting`));
    assert.is((await daemonLoop(id))?.status, 'stopped');
    assert.not.ok(existsSync(join(box.home, 'worktrees', id)), 'its worktree is removed');
  } finally {
    await lock.release();
  }
});

test('two concurrent pushes of different branches both start their loops', async () => {
  await git(['switch', '--quiet', '-c', 'one', 'feature']);
  await git(['switch', '--quiet', '-c', 'two', 'feature']);
  const opts = ['-o', `ralph.agent-cmd=${workAgent}`, '-o', 'ralph.iterations=3', 'ralph-remote'];
  const [a, b] = await Promise.all([push([...opts, 'one']), push([...opts, 'two'])]);
  assert.is(a.code, 0, a.stderr);
  assert.is(b.code, 0, b.stderr);
  const ida = started(a)[0]?.id;
  const idb = started(b)[0]?.id;
  assert.match(ida ?? '', /^one-/, a.stderr);
  assert.match(idb ?? '', /^two-/, b.stderr);
  await Promise.all([events.next('loop.completed', ida, 60_000), events.next('loop.completed', idb, 60_000)]);
  assert.not.match(d.log(), /index\.lock|is busy|already exists/);
});

test('bad repo names, unknown remotes and bad push options are refused with one clear line', async () => {
  const bad = await push([`ralph://box/../etc`, 'feature']);
  assert.is(bad.code, 128, bad.stderr);
  assert.match(bad.stderr, /^ralph: .*bad repo name "\.\.\/etc": '\.\.' is not allowed/m);

  const nobody = await push([`ralph://nobody/app`, 'feature']);
  assert.is(nobody.code, 128);
  assert.match(nobody.stderr, /^ralph: no remote "nobody" \(ralph remote add nobody --address \.\.\.\)$/m);

  await git(['switch', '--quiet', '-c', 'opts', 'feature']);
  const opt = await push(['-o', 'ralph.iterations=zero', 'ralph-remote', 'opts']);
  assert.is.not(opt.code, 0);
  assert.match(opt.stderr, /remote: ralph: push option ralph\.iterations must be a whole number from 1 to 100000, got "zero"/);
  assert.is(started(opt).length, 0);
  assert.is(await git(['ls-remote', 'ralph-remote', 'refs/heads/opts']), '', 'the push changed nothing on the box');
  // Over the daemon's limit: refused before the push lands, not by a loop that then fails to start.
  const long = await push(['-o', 'ralph.iteration-timeout=2w', 'ralph-remote', 'opts']);
  assert.is.not(long.code, 0);
  assert.match(long.stderr, /remote: ralph: push option ralph\.iteration-timeout must be from 1s to 7d, got "2w"/);
  assert.is(started(long).length, 0);
  assert.is(await git(['ls-remote', 'ralph-remote', 'refs/heads/opts']), '', 'the push changed nothing on the box');

  const noStart = await push(['-o', 'ralph.no-start', 'ralph-remote', 'opts']);
  assert.is(noStart.code, 0, noStart.stderr);
  assert.match(noStart.stderr, /remote: ralph: ralph\.no-start: no loop started for opts/);
  assert.is(started(noStart).length, 0);
});

test('ls-remote and clone go through the helper', async () => {
  const refs = await git(['ls-remote', 'ralph-remote']);
  assert.match(refs, /\trefs\/heads\/feature$/m);
  assert.match(refs, new RegExp(`\\trefs/heads/ralph/${firstLoop}$`, 'm'));
  const clone = join(laptop.home, 'clone');
  const r = await runCommand('git', ['clone', '--quiet', 'ralph://box/app', clone], { env, cwd: laptop.home, timeoutMs: 60_000 });
  assert.is(r.code, 0, r.stderr);
  assert.ok(existsSync(join(clone, 'prd.json')), 'the clone checked out a branch');
  const missing = await runCommand('git', ['ls-remote', 'ralph://box/nothing-here'], { env, cwd: laptop.home, timeoutMs: 30_000 });
  assert.is.not(missing.code, 0);
  assert.match(missing.stderr, /ralph: .*no repo "nothing-here" on this daemon; push to it first/, missing.stderr);
});

/** Pids of git processes serving this box's repo `app` right now. */
function gitServing(): number[] {
  const needle = join(box.home, 'repos', 'app.git');
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (cmd.includes(needle) && cmd.some((a) => /(upload|receive)-pack$/.test(a))) pids.push(Number(p));
    } catch {
      /* gone */
    }
  }
  return pids;
}

/** Reads a raw git stream until the ref advertisement's flush packet (bounded). */
function readAdvertisement(stream: Duplex): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`no ref advertisement within 10 s; got ${JSON.stringify(text)}`)), 10_000);
    const onData = (b: Buffer) => {
      text += b.toString('latin1');
      if (text.endsWith('0000')) {
        clearTimeout(timer);
        stream.off('data', onData);
        resolve(text);
      }
    };
    stream.on('data', onData);
    stream.once('error', reject);
    stream.resume(); // the hello reader leaves the stream paused
  });
}

test('the git channel: a client half-close lets git finish and the daemon closes; a vanished client ends git', async () => {
  const polite = await d.open({ channel: 'git', service: 'git-upload-pack', repo: 'app' });
  assert.match(await readAdvertisement(polite.stream), /refs\/heads\/feature/);
  const ended = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the daemon did not end the stream within 10 s')), 10_000);
    polite.stream.once('end', () => (clearTimeout(timer), resolve()));
    polite.stream.resume();
  });
  polite.stream.end('0000'); // "nothing wanted", then EOF: upload-pack exits, the daemon ends the stream
  await ended;

  const rude = await d.open({ channel: 'git', service: 'git-upload-pack', repo: 'app' });
  await readAdvertisement(rude.stream);
  assert.is(gitServing().length, 1);
  rude.stream.destroy();
  await waitUntil(() => gitServing().length === 0, { what: 'git upload-pack to end' });
  assert.match(await git(['ls-remote', 'ralph-remote', 'refs/heads/feature']), /refs\/heads\/feature/, 'the daemon serves on');
});

test('ralph prune removes worktrees of finished loops, keeps running ones and every ralph/<id> branch', async () => {
  const boxEnv = box.env;
  const badDuration = await ralph(['prune', '--older-than', 'soon'], { env: boxEnv });
  assert.is(badDuration.code, 1);
  assert.match(badDuration.stderr, /--older-than must look like/);
  const recent = await ralph(['prune', '--older-than', '1d'], { env: boxEnv });
  assert.is(recent.code, 0, recent.stderr);
  assert.match(recent.stdout, /nothing to prune/);
  assert.ok(existsSync(join(box.home, 'worktrees', firstLoop)));

  const r = await ralph(['prune'], { env: boxEnv });
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`removed ${join(box.home, 'worktrees', firstLoop)} \\(loop ${firstLoop}, completed`));
  assert.match(r.stdout, new RegExp(`kept 1 worktree of loops still running: ${slowLoop}`));
  assert.not.ok(existsSync(join(box.home, 'worktrees', firstLoop)));
  assert.ok(existsSync(join(box.home, 'worktrees', slowLoop)));
  assert.match(await git(['ls-remote', 'ralph-remote', `refs/heads/ralph/${firstLoop}`]), /\S/, 'the branch stays fetchable');
  const list = await runCommand('git', ['worktree', 'list', '--porcelain'], { env: boxEnv, cwd: join(box.home, 'repos', 'app.git') });
  assert.not.match(list.stdout, new RegExp(firstLoop));
});

test.run();
