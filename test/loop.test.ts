// Loop lifecycles with real runner processes, real PTYs and the fixture agent: completion,
// the iteration limit, a false promise, crashes, stop now / after the iteration, a killed runner,
// two loops at once.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { runLoopInProcess } from '../loop/foreground.js';
import { launchRunner } from '../loop/launch.js';
import { LoopSetupError, prepareLoop } from '../loop/prepare.js';
import { alive, waitUntil } from './helpers/env.js';
import { endLeftTools, fixtureAgentCmd, gone, LoopClient, LoopHarness, pidIn, toolInOwnSession } from './helpers/loop.js';

test('a loop runs the agent until every story passes: completed, one iteration per story', async () => {
  const h = new LoopHarness();
  try {
    const loop = await h.start({ stories: 3 });
    const client = await h.connect(loop);
    const end = await client.watchToEnd();
    assert.is(end.status, 'completed');
    assert.is(end.iteration, 3);
    assert.equal(client.gaps, []);
    await h.exited(loop.pid);

    const row = h.row(loop.row.id);
    assert.is(row.status, 'completed');
    assert.is(row.iteration, 3);
    assert.is(row.pid, loop.pid);
    assert.ok(row.endedAt);
    assert.match(row.reason ?? '', /all 3 stories pass after 3 iterations/);

    assert.ok(loop.repo.readPrd().userStories.every((s) => s.passes));
    assert.equal(loop.repo.commits().slice(0, 3), ['feat: US-003 - Story number 3', 'feat: US-002 - Story number 2', 'feat: US-001 - Story number 1']);
    assert.match(readFileSync(loop.repo.progressPath, 'utf8'), /US-003/);

    const log = readFileSync(row.logPath!, 'utf8');
    assert.is(log, client.output, 'the log holds exactly the output clients saw');
    for (const i of [1, 2, 3]) assert.ok(log.includes(`[ralph] iteration ${i}/10 — US-00${i}: Story number ${i}`), `banner ${i}`);
    assert.match(log, /\x1b\[32mUS-001\x1b\[0m/, 'agent colors kept');
    assert.match(log, /<promise>COMPLETE<\/promise>/);
    assert.match(log, /\[ralph\] loop completed/);
    // The prompt the agent read: the built-in one, with this task's paths.
    const prompt = readFileSync(join(h.paths.logs, `${loop.row.id}.prompt.md`), 'utf8');
    assert.ok(prompt.includes(loop.repo.prdPath));
    assert.not.ok(existsSync(row.socketPath!), 'socket removed on exit');
    assert.ok(client.events.some((e) => e.method === 'iteration' && e.params.iteration === 3 && e.params.story === 'US-003'));
  } finally {
    await h.cleanup();
  }
});

test('reaching the iteration limit fails the loop with the reason', async () => {
  const h = new LoopHarness();
  try {
    const loop = await h.start({ stories: 3, maxIterations: 2 });
    const client = await h.connect(loop);
    const end = await client.watchToEnd();
    assert.is(end.status, 'failed');
    assert.is(end.iteration, 2);
    await h.exited(loop.pid);
    const row = h.row(loop.row.id);
    assert.is(row.status, 'failed');
    assert.is(row.reason, 'reached the iteration limit (2) with 1 of 3 stories still open');
  } finally {
    await h.cleanup();
  }
});

test('a promise while stories are open is not completion: the loop says so and goes on', async () => {
  const h = new LoopHarness();
  try {
    const loop = await h.start({ steps: 'false-promise', stories: 2, maxIterations: 2 });
    const client = await h.connect(loop);
    const end = await client.watchToEnd();
    assert.is(end.status, 'failed');
    assert.is(end.iteration, 2);
    const said = client.output.match(/\[ralph\] agent said COMPLETE but 2 stories still open; continuing/g) ?? [];
    assert.is(said.length, 2);
    assert.match(h.row(loop.row.id).reason ?? '', /iteration limit \(2\) with 2 of 2 stories still open/);
  } finally {
    await h.cleanup();
  }
});

test('an agent that fails three iterations in a row fails the loop', async () => {
  const h = new LoopHarness();
  try {
    const loop = await h.start({ steps: 'crash', maxIterations: 10 });
    const client = await h.connect(loop);
    const end = await client.watchToEnd();
    assert.is(end.status, 'failed');
    assert.is(end.iteration, 3);
    // The reason carries the agent's own last words.
    assert.match(client.output, /\[ralph\] iteration 3 failed \(exit code 3: fixture: crashing on purpose\); 3 failed iterations in a row/);
    assert.is(h.row(loop.row.id).reason, 'the agent failed 3 iterations in a row (last: exit code 3: fixture: crashing on purpose)');
  } finally {
    await h.cleanup();
  }
});

test('a custom command\'s last words are its reason, never a verdict: "credentials" does not fail the loop, "rate limit" does not pause it', async () => {
  const h = new LoopHarness();
  try {
    const agentCmd = `case "$RALPH_ITERATION" in 1) echo 'FAIL test/credentials.test.ts' ;; *) echo 'Error: rate limit exceeded (Disk quota exceeded)' ;; esac; exit 1`;
    const loop = await h.start({ maxIterations: 10, prepare: { agentCmd } });
    const client = await h.connect(loop);
    const end = await client.watchToEnd();
    assert.is(end.status, 'failed');
    assert.is(end.iteration, 3, 'three failed iterations, no pause and no auth failure');
    assert.match(client.output, /\[ralph\] iteration 1 failed \(exit code 1: FAIL test\/credentials\.test\.ts\)/);
    assert.not.match(client.output, /paused/);
    assert.is(h.row(loop.row.id).reason, 'the agent failed 3 iterations in a row (last: exit code 1: Error: rate limit exceeded (Disk quota exceeded))');
  } finally {
    await h.cleanup();
  }
});

test('stop now ends the agent (its whole process group) and the loop is stopped', async () => {
  const h = new LoopHarness();
  try {
    const pidFile = join(h.home.home, 'agent.pid');
    // The agent ignores SIGTERM: the runner must follow up with SIGKILL after the grace period.
    const loop = await h.start({ steps: 'slow', env: { FIXTURE_PID_FILE: pidFile, FIXTURE_IGNORE_TERM: '1', RALPH_STOP_GRACE_MS: '300' } });
    const client = await h.connect(loop);
    await client.subscribe({ fromSeq: 0 });
    await client.waitForOutput('slow line 2');
    const agentPid = Number(readFileSync(pidFile, 'utf8'));
    assert.ok(alive(agentPid));
    const state = await client.request('stop', { when: 'now' });
    assert.is(state.status, 'running', 'stop answers at once; the end comes as an event');
    const end = await client.waitForEnd();
    assert.is(end.status, 'stopped');
    assert.is(end.iteration, 1);
    assert.match(client.output, /fixture: ignoring SIGTERM/);
    // Killed along with its process group (a zombie for a moment until its new parent reaps it).
    await waitUntil(() => gone(agentPid), { what: 'the agent to be gone' });
    await h.exited(loop.pid);
    const row = h.row(loop.row.id);
    assert.is(row.status, 'stopped');
    assert.is(row.reason, 'stopped by request');
  } finally {
    await h.cleanup();
  }
});

test('stop after-iteration lets the agent finish its iteration, then stops', async () => {
  const h = new LoopHarness();
  try {
    const loop = await h.start({ steps: 'slow,work', stories: 3, env: { FIXTURE_SLOW_MS: '30', FIXTURE_SLOW_COUNT: '10' } });
    const client = await h.connect(loop);
    await client.subscribe({ fromSeq: 0 });
    await client.waitForOutput('slow line 1');
    await client.request('stop', { when: 'after-iteration' });
    const end = await client.waitForEnd();
    assert.is(end.status, 'stopped');
    assert.is(end.iteration, 1);
    assert.match(client.output, /slow line 10/, 'the iteration ran to its end');
    assert.is(loop.repo.readPrd().userStories.filter((s) => s.passes).length, 1);
    assert.is(h.row(loop.row.id).reason, 'stopped after iteration 1 as requested');
  } finally {
    await h.cleanup();
  }
});

test('a runner killed with SIGKILL leaves its row open with its pid (for status to reconcile), and its agent goes too', async () => {
  const h = new LoopHarness();
  try {
    const pidFile = join(h.home.home, 'agent.pid');
    const loop = await h.start({ steps: 'slow', env: { FIXTURE_PID_FILE: pidFile } });
    const client = await h.connect(loop);
    await client.subscribe({ fromSeq: 0 });
    await client.waitForOutput('slow line 1');
    const agentPid = Number(readFileSync(pidFile, 'utf8'));
    process.kill(loop.pid, 'SIGKILL');
    await h.exited(loop.pid);
    const row = h.row(loop.row.id);
    assert.is(row.status, 'running');
    assert.is(row.pid, loop.pid);
    assert.is(row.iteration, 1);
    // The PTY closed with the runner: the kernel hangs up the agent's session.
    await waitUntil(() => gone(agentPid), { what: 'the orphaned agent to get SIGHUP and exit' });
  } finally {
    await h.cleanup();
  }
});

test('a runner killed with SIGKILL: what its PTY agent started in sessions of their own goes too, even one that ignores SIGTERM', async () => {
  const h = new LoopHarness();
  const dir = h.home.home;
  try {
    const pidFile = join(dir, 'agent.pid');
    // Tools as a dev server or Claude Code's Bash tool run: setsid, out of reach of the PTY's hangup.
    const agentCmd = `${toolInOwnSession(dir, 'server')} ${toolInOwnSession(dir, 'stubborn', true)} ${fixtureAgentCmd('slow')}`;
    const loop = await h.start({ prepare: { agentCmd }, env: { FIXTURE_PID_FILE: pidFile } });
    const client = await h.connect(loop);
    await client.subscribe({ fromSeq: 0 });
    await client.waitForOutput('slow line 1');
    const agentPid = Number(readFileSync(pidFile, 'utf8'));
    const tools = [await pidIn(join(dir, 'server.pid')), await pidIn(join(dir, 'stubborn.pid'))];
    assert.ok(tools.every(alive));
    process.kill(loop.pid, 'SIGKILL');
    await h.exited(loop.pid);
    // TERM at once, KILL 3 s later for the one that ignores it.
    await waitUntil(() => gone(agentPid) && tools.every(gone), { what: `the agent (${agentPid}) and its tools (${tools.join(', ')}) to be gone`, timeoutMs: 10_000 });
  } finally {
    endLeftTools(dir);
    await h.cleanup();
  }
});

test('a PTY agent that exits leaves nothing running: what it started in sessions of their own is ended with it', async () => {
  const h = new LoopHarness();
  const dir = h.home.home;
  try {
    const agentCmd = `${toolInOwnSession(dir, 'server')} ${toolInOwnSession(dir, 'stubborn', true)} ${fixtureAgentCmd('work')}`;
    const loop = await h.start({ stories: 1, prepare: { agentCmd } });
    const client = await h.connect(loop);
    const tools = [await pidIn(join(dir, 'server.pid')), await pidIn(join(dir, 'stubborn.pid'))];
    assert.is((await client.watchToEnd()).status, 'completed');
    // TERM as the agent exits, KILL LEFTOVER_GRACE_MS later for the one that ignores it.
    await waitUntil(() => tools.every(gone), { what: `the agent's tools (${tools.join(', ')}) to be gone`, timeoutMs: 10_000 });
    await h.exited(loop.pid);
  } finally {
    endLeftTools(dir);
    await h.cleanup();
  }
});

test('two loops run at once, each with its own socket, log and row', async () => {
  const h = new LoopHarness();
  try {
    const [a, b] = await Promise.all([h.start({ stories: 2 }), h.start({ stories: 1 })]);
    assert.is.not(a.row.id, b.row.id);
    const [ca, cb] = await Promise.all([h.connect(a), h.connect(b)]);
    const [ea, eb] = await Promise.all([ca.watchToEnd(), cb.watchToEnd()]);
    assert.equal([ea.status, ea.iteration], ['completed', 2]);
    assert.equal([eb.status, eb.iteration], ['completed', 1]);
    assert.ok(ca.output.includes(`loop ${a.row.id}`) && !ca.output.includes(`loop ${b.row.id}`));
    assert.is(readFileSync(h.row(b.row.id).logPath!, 'utf8'), cb.output);
    await Promise.all([h.exited(a.pid), h.exited(b.pid)]);
    assert.equal([h.row(a.row.id).status, h.row(b.row.id).status], ['completed', 'completed']);
  } finally {
    await h.cleanup();
  }
});

test('a runner that gets SIGTERM stops its loop (stopped, with the reason) and exits', async () => {
  const h = new LoopHarness();
  try {
    const loop = await h.start({ steps: 'slow' });
    const client = await h.connect(loop);
    await client.subscribe({ fromSeq: 0 });
    await client.waitForOutput('slow line 1');
    process.kill(loop.pid, 'SIGTERM');
    const end = await client.waitForEnd();
    assert.equal([end.status, end.reason], ['stopped', 'the runner got SIGTERM']);
    await h.exited(loop.pid);
    assert.is(h.row(loop.row.id).status, 'stopped');
  } finally {
    await h.cleanup();
  }
});

test('launchRunner rejects with one clear line when the runner cannot start, and the row says failed', async () => {
  const h = new LoopHarness();
  try {
    await launchRunner(h.paths, 'no-such-loop-0000', { env: h.home.env }).then(
      () => assert.unreachable('should reject'),
      (err: Error) => {
        assert.instance(err, LoopSetupError);
        assert.match(err.message, /^loop no-such-loop-0000: no loop no-such-loop-0000 in /);
      },
    );
    const repo = h.repo({ stories: 1 });
    const row = prepareLoop(h.store, h.paths, { dir: repo.dir, agentCmd: fixtureAgentCmd() });
    // A node that refuses its options dies before it could say anything.
    await launchRunner(h.paths, row.id, { env: { ...h.home.env, NODE_OPTIONS: '--cpu-prof' } }).then(
      () => assert.unreachable('should reject'),
      (err: Error) => {
        assert.instance(err, LoopSetupError);
        assert.match(err.message, /the runner exited before it was ready \(exit code 9\).*see .*runner\.log$/);
        assert.not.match(err.message, /\n/);
      },
    );
    const failed = h.row(row.id);
    assert.is(failed.status, 'failed');
    assert.match(failed.reason ?? '', /exited before it was ready/);
  } finally {
    await h.cleanup();
  }
});

test('--foreground: the loop runs in this process, its output copied to a stream, its socket served', async () => {
  const h = new LoopHarness();
  try {
    const repo = h.repo({ stories: 2 });
    const row = prepareLoop(h.store, h.paths, { dir: repo.dir, agentCmd: fixtureAgentCmd(), maxIterations: 5 });
    let copied = '';
    const output = new PassThrough();
    output.on('data', (d: Buffer) => (copied += d.toString('utf8')));
    const finished = runLoopInProcess(h.paths, row.id, { output, env: h.home.env, size: { cols: 90, rows: 20 } });
    const client = await LoopClient.connect(row.socketPath!);
    const status = await client.status();
    assert.equal([status.pid, status.cols, status.rows], [process.pid, 90, 20]);
    const end = await client.watchToEnd();
    client.close();
    assert.is(await finished, 'completed');
    assert.is(end.iteration, 2);
    assert.is(copied, readFileSync(row.logPath!, 'utf8'));
    assert.is(h.row(row.id).status, 'completed');
  } finally {
    await h.cleanup();
  }
});

test.run();
