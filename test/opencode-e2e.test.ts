// `ralph run --agent opencode` with the REAL OpenCode CLI (npm opencode-ai, pinned in
// test/fixtures/agent-clis.json) against the local fake Responses API, through a provider of its own
// config (test/helpers/agent-clis.ts). Its one background fetch with no switch (its plugin types
// package from the npm registry) goes to the outbound trap on 127.0.0.1 and is refused there.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import { answersTool, MARK_STORY, ralphWorker, runCommand } from './fixtures/openai-responses-api.js';
import { agentAvailable, gatedCommand, OPENCODE_BACKGROUND_FETCHES } from './helpers/agent-clis.js';
import { agentLoopSetup, type AgentLoopSetup } from './helpers/agent-loops.js';
import { waitUntil, skipped } from './helpers/env.js';

const available = agentAvailable('opencode');

function nothingElseLeft(s: AgentLoopSetup): void {
  const unexpected = s.trap.attempts.filter((a) => !OPENCODE_BACKGROUND_FETCHES.includes(a));
  assert.equal(unexpected, [], 'opencode tried to reach nothing but its plugin install');
}

test('a loop completes: progress in ralph logs as it goes, usage in status', async () => {
  if (!available) return skipped('no OpenCode CLI');
  const s = await agentLoopSetup('opencode', { stories: 1 });
  // The command waits for the test: what opencode did before it is in the log while it waits.
  s.api.script = (req, n) => (answersTool(req) ? ralphWorker(req, n) : runCommand(req, 'I will mark the next story done.', gatedCommand(s.go, `node ${MARK_STORY}`)));
  try {
    const id = await s.runLoop();
    await s.api.waitForRequest(() => true, 180_000);
    const during = await waitUntil(async () => {
      const l = await s.logs(id);
      return l.includes('I will mark the next story done.') ? l : null;
    }, { what: 'opencode’s text in ralph logs', timeoutMs: 120_000 });
    assert.not.match(during, /marked US-001 passing/);
    writeFileSync(s.go, '');
    const end = await s.w.waitForLoop(id, 'to end', (e) => e.status !== 'running' && e.status !== 'starting', 240_000);
    assert.is(end.status, 'completed', end.reason ?? '');
    assert.is(end.agent, 'opencode');
    const n = s.api.requests.length;
    assert.equal(end.usage, { inputTokens: n * 1500, outputTokens: n * 100, cacheReadTokens: n * 400, cacheWriteTokens: 0, costUsd: 0 });
    const log = await s.logs(id);
    // The command line is clipped to one screen line (its length depends on the checkout's path).
    assert.match(log, /● bash while \[[^\n]*(?:mark-story\.mjs|…)\n {2}⎿ marked US-001 passing\n {4}ALL STORIES PASS\n/);
    assert.match(log, /Every story passes now\. <promise>COMPLETE<\/promise>/);
    assert.match(log, /iteration 1 done in [^:]+: 3(\.0)?k tokens in, 200 out/);
    assert.equal(s.repo.commits()[0], 'feat: US-001 - Story number 1');
    nothingElseLeft(s);
  } finally {
    await s.cleanup();
  }
});

test('a wrong key fails the loop at once, in the API’s words as opencode reports them', async () => {
  if (!available) return skipped('no OpenCode CLI');
  const s = await agentLoopSetup('opencode', { key: 'sk-wrong' });
  try {
    const id = await s.runLoop();
    const end = await s.w.waitForLoop(id, 'to fail', (e) => e.status === 'failed', 180_000);
    assert.match(end.reason ?? '', /Incorrect API key provided: sk-wrong/);
    assert.is(end.iteration, 1);
    nothingElseLeft(s);
  } finally {
    await s.cleanup();
  }
});

test.run();
