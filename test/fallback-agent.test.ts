// `--fallback-agent`, with two real CLIs: Claude Code (against the fake Anthropic API) is rate-limited,
// so Codex (against the fake Responses API) runs the iterations until the limit lifts; then Claude
// Code takes over again (codex's story waits until the limit has lifted). Nothing is burned by the limited run and each run is on record.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ralphWorker } from './fixtures/anthropic-api.js';
import { answersTool, FakeResponsesApi, MARK_STORY, ralphWorker as codexWorker, runCommand } from './fixtures/openai-responses-api.js';
import { agentAvailable, codexWorld, FAKE_OPENAI_KEY, gatedCommand, OutboundTrap } from './helpers/agent-clis.js';
import { ClaudeWorld } from './helpers/claude.js';
import { waitUntil, skipped } from './helpers/env.js';

test('claude rate-limited: codex runs until the limit lifts, then claude again; no iteration is used up', async () => {
  if (!agentAvailable('codex')) return skipped('no Codex CLI');
  // Claude Code's first request and its own two retries are refused, with retry-after: 3 (no reset time
  // once Claude Code has waited it out: the runner's backoff, its first shortened to 3 s below).
  let refused = 0;
  const w = await ClaudeWorld.create((req, n) => {
    if (refused < 3) {
      refused++;
      return { error: { status: 429, type: 'rate_limit_error', message: 'This request would exceed your rate limit.', headers: { 'retry-after': '3' } } };
    }
    return ralphWorker(req, n);
  });
  if (!w) return skipped('no Claude Code CLI');
  // Codex's story waits at a gate the test opens only once claude's limit has lifted: the next
  // iteration is claude's by construction, however quick codex is.
  const responses = new FakeResponsesApi(codexWorker, FAKE_OPENAI_KEY);
  const trap = await new OutboundTrap().start();
  const codex = codexWorld({ baseUrl: await responses.start(), trap, model: 'ralph-fake-model' });
  const gate = join(codex.home, 'limit-lifted');
  responses.script = (req, n) => (answersTool(req) ? codexWorker(req, n) : runCommand(req, 'I will mark the next story done.', gatedCommand(gate, `node ${MARK_STORY}`)));
  try {
    // Both CLIs on PATH; each keeps its own config (Claude Code in HOME, Codex in CODEX_HOME).
    const { HOME: _codexHome, PATH: codexPath, ...codexEnv } = codex.env;
    const env = { ...codexEnv, PATH: `${codexPath}:${w.env.PATH}`, RALPH_RATE_LIMIT_BACKOFF_MS: '3000' };
    const id = await w.runClaude({ stories: 2, args: ['--fallback-agent', 'codex'], env });
    // "running codex until HH:MM:SS" (local time, to the second): the gate opens a second after it.
    const [, hh, mm, ss] = await waitUntil(
      async () => /running codex until (\d\d):(\d\d):(\d\d)/.exec((await w.ralph(['logs', id])).stdout),
      { what: 'the switch to codex in ralph logs', timeoutMs: 120_000, intervalMs: 200 },
    );
    const until = new Date();
    until.setHours(Number(hh), Number(mm), Number(ss) + 1, 0);
    if (until.getTime() < Date.now() - 12 * 3600_000) until.setDate(until.getDate() + 1); // past midnight
    await responses.waitForRequest(() => true, 120_000);
    await new Promise((r) => setTimeout(r, Math.max(0, until.getTime() - Date.now()))); // the limit's own clock: nothing to await
    writeFileSync(gate, '');
    const end = await w.waitForLoop(id, 'ended', (e) => e.status === 'completed' || e.status === 'failed', 180_000);
    assert.is(end.status, 'completed', end.reason ?? '');
    assert.is(end.iteration, 2, 'the limited run did not use up an iteration');

    const db = new Database(join(w.home.home, 'ralph.db'), { readonly: true });
    const runs = db.prepare('SELECT iteration, agent, outcome FROM iterations WHERE loop_id = ? ORDER BY id').all(id) as Array<Record<string, unknown>>;
    db.close();
    // Claude limited in iteration 1; codex did iteration 1 (the limit had not lifted yet); by
    // iteration 2 the limit has lifted (codex's story waited for it): claude is back.
    assert.equal(runs, [
      { iteration: 1, agent: 'claude', outcome: 'rate-limited' },
      { iteration: 1, agent: 'codex', outcome: 'ok' },
      { iteration: 2, agent: 'claude', outcome: 'ok' },
    ]);
    assert.ok(responses.requests.length > 0, 'codex asked its model');

    const logs = (await w.ralph(['logs', id])).stdout;
    assert.match(logs, /\[ralph\] claude is rate-limited: API Error: Request rejected \(429\) · .*; running codex until \d\d:\d\d:\d\d/);
    assert.match(logs, /\[ralph\] iteration 1\/10 — US-001: .* \(codex, while claude is rate-limited\)/);
    assert.not.match(logs, /paused:/, 'with a fallback the loop does not pause');
    assert.equal(trap.attempts, [], 'nothing tried to leave 127.0.0.1');
    assert.equal(w.trap.attempts, [], 'Claude Code tried nothing beyond 127.0.0.1 either');
  } finally {
    writeFileSync(gate, '');
    await w.cleanup();
    await responses.close();
    await trap.close();
    codex.cleanup();
  }
});

test.run();
