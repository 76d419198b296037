// The pieces under the push flow, on real repos: repo names, push options, the hook scripts, loop
// worktrees (detached then on ralph/<id>, hook environment stripped), and the per-repo lock shared
// by separate processes.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { homePaths } from '../store/paths.js';
import { hookScript, shQuote } from '../hooks/install.js';
import { checkStartParams } from '../daemon/start-loop.js';
import { parsePushOptions, readPushOptions } from '../hooks/push-options.js';
import { MAX_TIMEOUT_MS } from '../store/duration.js';
import { parseRefLines } from '../hooks/refs.js';
import { callDaemon, LOOP_START_WAIT_MS, NoAnswerError, startNotAnsweredLine } from '../hooks/daemon.js';
import { helloReply, readHello } from '../daemon/hello.js';
import { LOOP_START_MAX_MS, PROTOCOL_VERSION } from '../daemon/protocol.js';
import { INSTALL_LOCK_TIMEOUT_MS, NPM_INSTALL_TIMEOUT_MS, VERSION_CHECK_TIMEOUT_MS } from '../install/limits.js';
import { listen } from '../transport/index.js';
import {
  checkRepoName,
  createLoopWorktree,
  ensureBareRepo,
  removeLoopWorktree,
  resolveBranchCommit,
  withRepoLock,
} from '../worktrees/index.js';
import { ROOT, makeTempHome } from './helpers/env.js';

const t = makeTempHome('ralph-gw');
const paths = homePaths(t.home);

function git(args: string[], cwd: string, env: NodeJS.ProcessEnv = t.env): Promise<string> {
  return new Promise((resolve, reject) =>
    execFile('git', args, { cwd, env }, (err, stdout, stderr) => (err ? reject(new Error(`git ${args.join(' ')}: ${stderr}`)) : resolve(stdout.trim()))),
  );
}

test.after(() => t.cleanup());

test('repo names: good ones pass (a trailing .git dropped), bad ones are refused with a clear message', () => {
  assert.is(checkRepoName('app'), 'app');
  assert.is(checkRepoName('team/app.git'), 'team/app');
  assert.is(checkRepoName('a_b-c.d'), 'a_b-c.d');
  const cases: Array<[string, RegExp]> = [
    ['', /it is empty/],
    ['../x', /'\.\.' is not allowed/],
    ['a..b', /'\.\.' is not allowed/],
    ['a/b/c', /more than one level/],
    ['-x', /starts with '-' or '\.'/],
    ['.hidden', /starts with '-' or '\.'/],
    ['team/-x', /starts with '-' or '\.'/],
    ['/abs', /an empty path segment/],
    ['sp ace', /not allowed/],
    ['x'.repeat(101), /longer than 100/],
  ];
  for (const [name, why] of cases) {
    assert.throws(() => checkRepoName(name), (e: Error) => e.message.startsWith(`bad repo name ${JSON.stringify(name)}: `) && why.test(e.message), name);
  }
});

test('push options: values checked, unknown ralph.* options named, others ignored; ref lines parsed', () => {
  const env = { GIT_PUSH_OPTION_COUNT: '4', GIT_PUSH_OPTION_0: 'ralph.agent=opencode', GIT_PUSH_OPTION_1: 'ralph.iterations=20', GIT_PUSH_OPTION_2: 'ci.skip', GIT_PUSH_OPTION_3: 'ralph.restart' };
  assert.equal(parsePushOptions(readPushOptions(env)), {
    options: { agent: 'opencode', maxIterations: 20, noStart: false, restart: true },
    errors: [],
  });
  assert.equal(parsePushOptions(['ralph.iteration-timeout=45m', 'ralph.stall-timeout=90s', 'ralph.fallback-agent=codex']), {
    options: { iterationTimeoutMs: 45 * 60_000, stallTimeoutMs: 90_000, fallbackAgent: 'codex', noStart: false, restart: false },
    errors: [],
  });
  const { errors } = parsePushOptions([
    'ralph.agent=gpt',
    'ralph.iterations=0',
    'ralph.task=../up',
    'ralph.agent-cmd=',
    'ralph.colour=red',
    'ralph.no-start=maybe',
    'ralph.iteration-timeout=soon',
    'ralph.fallback-agent=gpt',
    'ralph.stall-timeout=2w',
  ]);
  assert.equal(errors, [
    'push option ralph.agent must be one of claude, opencode, codex, amp, got "gpt"',
    'push option ralph.iterations must be a whole number from 1 to 100000, got "0"',
    'push option ralph.task must be a path inside the repo, got "../up"',
    'push option ralph.agent-cmd needs a value (ralph.agent-cmd=...)',
    'unknown push option ralph.colour (known: ralph.agent, ralph.agent-cmd, ralph.iterations, ralph.task, ralph.iteration-timeout, ralph.stall-timeout, ralph.fallback-agent, ralph.no-start, ralph.restart)',
    'push option ralph.no-start takes no value (or true/false), got "maybe"',
    'push option ralph.iteration-timeout must be a duration such as 90s, 45m or 2h, got "soon"',
    'push option ralph.fallback-agent must be one of claude, opencode, codex, amp, got "gpt"',
    'push option ralph.stall-timeout must be from 1s to 7d, got "2w"',
  ]);
  // What passes the pre-receive hook is what the daemon's loop.start accepts: one limit, 7 days.
  const week = parsePushOptions(['ralph.iteration-timeout=7d', 'ralph.stall-timeout=1s']).options;
  assert.equal([week.iterationTimeoutMs, week.stallTimeoutMs], [MAX_TIMEOUT_MS, 1000]);
  const start = checkStartParams({ repo: 'r', branch: 'b', iterationTimeoutMs: week.iterationTimeoutMs, stallTimeoutMs: week.stallTimeoutMs });
  assert.equal([start.iterationTimeoutMs, start.stallTimeoutMs], [MAX_TIMEOUT_MS, 1000]);
  assert.throws(
    () => checkStartParams({ repo: 'r', branch: 'b', iterationTimeoutMs: MAX_TIMEOUT_MS + 1 }),
    (e: Error) => /^iterationTimeoutMs must be from 1s to 7d \(1000 to 604800000 ms\), got 604800001$/.test(e.message),
  );
  const z = '0'.repeat(40);
  const a = 'a'.repeat(40);
  assert.equal(
    parseRefLines(`${z} ${a} refs/heads/new\n${a} ${a.replace(/a/g, 'b')} refs/heads/ralph/x-1\n${a} ${z} refs/tags/v1\n`).map((u) => [u.kind, u.branch]),
    [
      ['create', 'new'],
      ['update', 'ralph/x-1'],
      ['delete', null],
    ],
  );
});

test('post-receive waits longer than loop.start may take (agent and fallback installs, each after a wait for the install lock); a wait that runs out says the loop may still start', async () => {
  // The hook used to give up after 10 minutes while an install may take 15, plus 15 waiting for the lock.
  assert.ok(LOOP_START_MAX_MS >= 2 * (INSTALL_LOCK_TIMEOUT_MS + NPM_INSTALL_TIMEOUT_MS + VERSION_CHECK_TIMEOUT_MS));
  assert.ok(LOOP_START_WAIT_MS > LOOP_START_MAX_MS);
  assert.is(startNotAnsweredLine('feature', LOOP_START_WAIT_MS), 'no answer yet about a loop for feature after 1h 8m; the daemon may still start it: see ralph status');

  // A daemon that says hello and then takes its time over loop.start.
  const socket = join(t.home, 'slow-daemon.sock');
  const slow = await listen(`unix:${socket}`);
  slow.onConnection((conn) => {
    conn.on('end', () => conn.end()); // the hook hung up
    void readHello(conn).then(({ id }) => {
      conn.write(helloReply(id, { version: PROTOCOL_VERSION, channel: 'control', host: 'box' }));
      conn.resume(); // reads the request, never answers it
    });
  });
  try {
    const err = await callDaemon(socket, 'loop.start', { repo: 'x', branch: 'feature' }, { timeoutMs: 300 }).then(
      () => null,
      (e: unknown) => e,
    );
    assert.instance(err, NoAnswerError);
    assert.is((err as NoAnswerError).waitedMs, 300);
  } finally {
    await slow.close();
  }
});

test('hook scripts exec this node and the hook program, quoted for sh', async () => {
  const script = hookScript('post-receive');
  assert.ok(script.startsWith('#!/bin/sh\n'));
  assert.ok(script.includes(`exec ${shQuote(process.execPath)} ${shQuote(join(ROOT, 'dist', 'hooks', 'post-receive.js'))} "$@"`), script);
  // Round trip of a nasty word through sh.
  const word = `it's a "dir" with $HOME and \`x\` ;|&`;
  const out = await new Promise<string>((resolve, reject) =>
    execFile('sh', ['-c', `printf %s ${shQuote(word)}`], (err, stdout) => (err ? reject(err) : resolve(stdout))),
  );
  assert.is(out, word);
});

test('a loop worktree is added detached at the commit, then put on ralph/<id>; no hook environment leaks in', async () => {
  const repo = await ensureBareRepo(paths, 'team/app');
  assert.ok(repo.created);
  assert.is(repo.dir, join(t.home, 'repos', 'team', 'app.git'));
  assert.is(await git(['config', 'receive.advertisePushOptions'], repo.dir), 'true');
  assert.match(readFileSync(join(repo.dir, 'hooks', 'pre-receive'), 'utf8'), /pre-receive\.js/);
  assert.is((await ensureBareRepo(paths, 'team/app')).created, false);

  const src = join(t.home, 'src');
  mkdirSync(src);
  await git(['init', '--quiet', '-b', 'feature'], src);
  writeFileSync(join(src, 'f.txt'), 'one\n');
  await git(['add', 'f.txt'], src);
  await git(['commit', '--quiet', '-m', 'one'], src);
  await git(['push', '--quiet', repo.dir, 'feature'], src);
  const commit = await resolveBranchCommit(paths, 'team/app', 'feature');
  assert.is(commit, await git(['rev-parse', 'HEAD'], src));
  assert.is(await resolveBranchCommit(paths, 'team/app', 'nope'), null);

  // As if called from inside a hook: every variable would point git somewhere else.
  const decoy = join(t.home, 'decoy');
  mkdirSync(decoy);
  const saved = { ...process.env };
  Object.assign(process.env, {
    GIT_DIR: decoy,
    GIT_WORK_TREE: decoy,
    GIT_INDEX_FILE: join(decoy, 'index'),
    GIT_OBJECT_DIRECTORY: join(decoy, 'objects'),
    GIT_QUARANTINE_PATH: join(decoy, 'q'),
    GIT_ALTERNATE_OBJECT_DIRECTORIES: join(decoy, 'alt'),
    GIT_PUSH_OPTION_COUNT: '1',
    GIT_PUSH_OPTION_0: 'ralph.restart',
  });
  let wt: string;
  try {
    wt = await createLoopWorktree(paths, 'team/app', commit!, 'feature-1a2b');
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
    Object.assign(process.env, saved);
  }
  assert.is(wt, join(t.home, 'worktrees', 'feature-1a2b'));
  assert.is(await git(['symbolic-ref', 'HEAD'], wt), 'refs/heads/ralph/feature-1a2b');
  assert.is(await git(['rev-parse', 'HEAD'], wt), commit);
  assert.is(readFileSync(join(wt, 'f.txt'), 'utf8'), 'one\n');
  assert.equal(readdirSync(decoy), [], 'the decoy was never touched');

  // The user's branch is not checked out anywhere: it can be pushed again.
  writeFileSync(join(src, 'f.txt'), 'two\n');
  await git(['commit', '--quiet', '-am', 'two'], src);
  await git(['push', '--quiet', repo.dir, 'feature'], src);

  // Removing the worktree keeps the branch (and the agent's commits on it).
  assert.is(await removeLoopWorktree(paths, 'team/app', 'feature-1a2b'), true);
  assert.not.ok(existsSync(wt));
  assert.is(await git(['rev-parse', 'refs/heads/ralph/feature-1a2b'], repo.dir), commit);
  assert.not.match(await git(['worktree', 'list'], repo.dir), /feature-1a2b/);
});

test('the repo lock serializes separate processes, and an abandoned lock file is taken over', async () => {
  const commit = (await resolveBranchCommit(paths, 'team/app', 'feature'))!;
  // A lock left by a process that is gone.
  mkdirSync(paths.locks, { recursive: true });
  writeFileSync(join(paths.locks, 'repo-team+app.lock'), '999999999\n');
  // Two processes, three worktrees each, all at once on the same repo.
  const script = `
    const { createLoopWorktree } = await import(${JSON.stringify(join(ROOT, 'dist', 'worktrees', 'index.js'))});
    const { homePaths } = await import(${JSON.stringify(join(ROOT, 'dist', 'store', 'paths.js'))});
    const paths = homePaths(process.argv[1]);
    const tag = process.argv[2];
    await Promise.all([1, 2, 3].map((i) => createLoopWorktree(paths, 'team/app', ${JSON.stringify(commit)}, tag + '-' + i)));
  `;
  const runOne = (tag: string) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ['--input-type=module', '-e', script, t.home, tag], { env: t.env, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (code) => resolve({ code, stderr }));
    });
  const results = await Promise.all([runOne('p'), runOne('q')]);
  for (const r of results) assert.is(r.code, 0, r.stderr);
  const list = await git(['branch', '--list', 'ralph/*'], join(t.home, 'repos', 'team', 'app.git'));
  for (const id of ['p-1', 'p-2', 'p-3', 'q-1', 'q-2', 'q-3']) assert.match(list, `ralph/${id}`);
  assert.not.ok(existsSync(join(paths.locks, 'repo-team+app.lock')), 'the lock is released');

  // In-process: the second waits for the first.
  const order: string[] = [];
  let entered!: () => void;
  const firstIn = new Promise<void>((r) => (entered = r));
  let release!: () => void;
  const first = withRepoLock(paths, 'team/app', async () => {
    order.push('first in');
    entered();
    await new Promise<void>((r) => (release = r));
    order.push('first out');
  });
  const second = withRepoLock(paths, 'team/app', async () => void order.push('second in'));
  await firstIn;
  release();
  await Promise.all([first, second]);
  assert.equal(order, ['first in', 'first out', 'second in']);
});

test.run();
