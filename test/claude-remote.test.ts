// Remote loops with the REAL Claude Code CLI: a daemon (tcp, with its token) whose runners run
// `claude` against the local fake Anthropic API; the laptop pushes, watches and controls the loop with
// the ralph CLI. Usage and cost reach the laptop's status; a 401 fails the loop in Claude Code's own
// words; the failed loop is resumed on the box; extend works through the daemon; a daemon running as
// root without IS_SANDBOX=1 refuses the push's loop on its `remote:` lines.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { allText, answersTool, MARK_STORY, ralphWorker } from './fixtures/anthropic-api.js';
import { ClaudeWorld } from './helpers/claude.js';
import { killRunners, startDaemon, type DaemonHandle } from './helpers/daemon.js';
import { makeTempHome, waitUntil, skipped, type TempHome } from './helpers/env.js';
import { Laptop, startedIds, withGitRemoteHelper } from './helpers/laptop.js';
import type { StatusJsonEntry } from './helpers/cli.js';

let box: ClaudeWorld | null;
let laptopHome: TempHome;
let laptop: Laptop;
let d: DaemonHandle;

test.before(async () => {
  box = await ClaudeWorld.create();
  if (!box) return;
  d = await startDaemon(box.home, { listen: ['tcp://127.0.0.1:0'], env: box.claudeEnv() });
  laptopHome = makeTempHome('ralph-claude-laptop');
  laptop = await Laptop.withTwoStoryTask(withGitRemoteHelper(laptopHome.home, laptopHome.env), join(laptopHome.home, 'app'));
  const added = await laptop.cli(['remote', 'add', 'box', '--address', d.tcp!, '--token-file', d.tokenFile]);
  assert.is(added.code, 0, added.stderr);
});

test.after(async () => {
  if (!box) return;
  await d.stop();
  killRunners(box.home.home);
  await box.cleanup();
  laptopHome.cleanup();
});

function waitForRemote(id: string, what: string, check: (e: StatusJsonEntry) => boolean): Promise<StatusJsonEntry> {
  return waitUntil(
    async () => {
      const e = (await laptop.status()).find((x) => x.id === id);
      return e && check(e) ? e : undefined;
    },
    { what: `remote loop ${id} ${what}`, timeoutMs: 120_000, intervalMs: 300 },
  );
}

test('a pushed loop runs Claude Code on the box; the laptop sees its progress, tokens and cost', async () => {
  if (!box) return skipped('no Claude Code CLI');
  box.api.script = ralphWorker;
  const push = await laptop.gitResult(['push', 'ralph-remote', 'feature']);
  assert.is(push.code, 0, push.stderr);
  const [id] = startedIds(push);
  assert.ok(id, push.stderr);
  assert.match(push.stderr, /remote: ralph: started loop \S+ \(claude, 10 iterations\)/);
  const end = await waitForRemote(id!, 'ended', (e) => e.status === 'completed' || e.status === 'failed');
  assert.is(end.status, 'completed', end.reason ?? '');
  assert.is(end.location, 'remote');
  assert.is(end.remote, 'box');
  assert.equal({ ...end.usage, costUsd: null }, { inputTokens: 6200, outputTokens: 320, cacheReadTokens: 1200, cacheWriteTokens: 200, costUsd: null });
  assert.ok((end.usage.costUsd ?? 0) > 0, 'the daemon reported the cost');
  const table = (await laptop.cli(['status'])).stdout;
  assert.match(table, new RegExp(`${id}\\s+box\\s+completed\\s+2/10\\s+claude\\s+\\$\\d+\\.\\d\\d`));
  const logs = (await laptop.cli(['logs', id!])).stdout;
  assert.match(logs, /^● Bash node \S+(?:mark-story\.mjs|…)$/m); // clipped past one screen line
  assert.match(logs, /\[ralph\] iteration 2 done in \S+: 3\.1k tokens in, 160 out/);
  await laptop.git(['fetch', '--quiet', 'ralph-remote']);
  const commits = await laptop.git(['log', '--format=%s', `ralph-remote/ralph/${id}`]);
  assert.match(commits, /feat: US-1 - first/);
  assert.match(commits, /feat: US-2 - second/);
});

test('through the daemon: extend reaches the runner; a 401 fails the loop in the agent\'s words; resume goes on from its branch', async () => {
  if (!box) return skipped('no Claude Code CLI');
  const gate = box.gate('remote-extend');
  let gated = false;
  box.api.script = (req, n) => {
    if (!gated && !answersTool(req)) {
      gated = true;
      return { blocks: [{ tool: 'Bash', input: { command: gate.command(`node ${MARK_STORY}`), description: 'first story' } }] };
    }
    return { error: { status: 401, type: 'authentication_error', message: 'invalid x-api-key' } };
  };
  await laptop.git(['checkout', '--quiet', '-b', 'second']);
  const push = await laptop.gitResult(['push', '-o', 'ralph.iterations=1', 'ralph-remote', 'second']);
  const [id] = startedIds(push);
  assert.ok(id, push.stderr);
  await waitUntil(async () => ((await laptop.cli(['logs', id!])).stdout.includes('● Bash while') ? true : undefined), {
    what: 'the first tool call on the box',
    timeoutMs: 120_000,
    intervalMs: 300,
  });
  const extended = await laptop.cli(['extend', id!, '2']);
  assert.is(extended.code, 0, extended.stderr);
  assert.is(extended.stdout.trim(), `loop ${id} may now run 3 iterations (2 more)`);
  gate.open();
  const failed = await waitForRemote(id!, 'failed', (e) => e.status === 'failed' || e.status === 'completed');
  assert.is(failed.status, 'failed');
  assert.is(failed.reason, 'claude cannot authenticate: Invalid API key · Fix external API key');
  assert.is(failed.maxIterations, 3);
  assert.is(failed.iteration, 1, 'the key failed right after the first story was committed: no more iterations used');

  box.api.script = ralphWorker;
  const resumed = await laptop.cli(['resume', id!]);
  assert.is(resumed.code, 0, resumed.stderr);
  const next = resumed.stdout.trim();
  assert.match(resumed.stderr, new RegExp(`loop ${id} goes on as loop ${next} on box`));
  const done = await waitForRemote(next, 'ended', (e) => e.status === 'completed' || e.status === 'failed');
  assert.is(done.status, 'completed', done.reason ?? '');
  assert.is(done.iteration, 1, 'US-1 was already done on ralph/<old id>: one story was left');
  assert.is(done.resumedFrom, id);
  const sawSecond = box.api.requests.some((r) => allText(r).includes('ALL STORIES PASS'));
  assert.ok(sawSecond, 'the resumed loop finished the task');
});

test('a daemon running as root without IS_SANDBOX=1 refuses a claude loop on the push\'s remote: lines', async () => {
  if (!box) return skipped('no Claude Code CLI');
  if (process.getuid?.() !== 0) return skipped('not root');
  const rootHome = makeTempHome('ralph-claude-root');
  const rootDaemon = await startDaemon(rootHome, { listen: ['tcp://127.0.0.1:0'], env: { ...box.claudeEnv(), IS_SANDBOX: '' } });
  try {
    const added = await laptop.cli(['remote', 'add', 'rootbox', '--address', rootDaemon.tcp!, '--token-file', rootDaemon.tokenFile, '--git-remote', 'rootbox']);
    assert.is(added.code, 0, added.stderr);
    const push = await laptop.gitResult(['push', 'rootbox', 'feature']);
    assert.is(push.code, 0, 'the push itself lands');
    assert.match(push.stderr, /remote: ralph: no loop started for feature: .*Claude Code will not run unattended as root.*export IS_SANDBOX=1/);
    assert.equal(startedIds(push), []);
  } finally {
    await rootDaemon.stop();
    rootHome.cleanup();
  }
});

test.run();
