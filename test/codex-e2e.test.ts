// `ralph run --agent codex` with the REAL Codex CLI (npm @openai/codex, pinned in
// test/fixtures/agent-clis.json) against a local fake of the OpenAI Responses API: its own HOME and
// config, its model provider's base_url on 127.0.0.1, and an outbound trap as its proxy that records
// anything it tries to send elsewhere (the tests assert nothing did).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  answersTool,
  FakeResponsesApi,
  lastInputText,
  MARK_STORY,
  ralphWorker,
  runCommand,
  userTexts,
  type ResponsesRequest,
  type Script,
} from './fixtures/openai-responses-api.js';
import { agentAvailable, gatedCommand } from './helpers/agent-clis.js';
import { agentLoopSetup, type AgentLoopSetup } from './helpers/agent-loops.js';
import { waitUntil, skipped } from './helpers/env.js';
import { LoopClient } from './helpers/loop.js';

// Installed once, before any test's clock starts.
const available = agentAvailable('codex');

const setup = (opts: { script?: Script; key?: string; stories?: number } = {}) => agentLoopSetup('codex', opts);
const runLoop = (s: AgentLoopSetup) => s.runLoop();
const logs = (s: AgentLoopSetup, id: string) => s.logs(id);

/** A shell command that waits (bounded) for the test's go file, then runs `then`. */
const waitFor = (go: string, then: string) => gatedCommand(go, then);

test('a loop completes: live progress while a command runs, usage per iteration and in status', async () => {
  if (!available) return skipped('no Codex CLI');
  const s = await setup();
  s.api.script = (req, n) => (answersTool(req) ? ralphWorker(req, n) : runCommand(req, 'I will mark the next story done.', waitFor(s.go, `node ${MARK_STORY}`)));
  try {
    const id = await runLoop(s);
    // The command is still running (it waits for the go file): its line is in the log already.
    const during = await waitUntil(async () => {
      const l = await logs(s, id);
      return l.includes('● shell while [ ! -e') ? l : null;
    }, { what: 'the shell call in ralph logs', timeoutMs: 60_000 });
    assert.match(during, /I will mark the next story done\.\n/);
    assert.not.match(during, /marked US-001 passing/, 'its output is not there yet');
    assert.is(s.api.requests.length, 1, 'the model has not seen the result yet');
    writeFileSync(s.go, '');

    const end = await s.w.waitForLoop(id, 'to complete', (e) => e.status !== 'running' && e.status !== 'starting', 120_000);
    assert.is(end.status, 'completed', end.reason ?? '');
    assert.is(end.iteration, 2);
    assert.is(end.agent, 'codex');
    // 1500 in / 120 out / 400 cached per request (the fake's default): two iterations of two
    // requests, and a poll if the waiting command outlived codex's wait for it.
    const n = s.api.requests.length;
    assert.ok(n >= 4, `${n} requests`);
    assert.equal(end.usage, { inputTokens: n * 1500, outputTokens: n * 120, cacheReadTokens: n * 400, cacheWriteTokens: 0, costUsd: null });
    const log = await logs(s, id);
    // The command line is clipped to one screen line (its length depends on the checkout's path).
    assert.match(log, /● shell while \[[^\n]*(?:mark-story\.mjs|…)\n {2}⎿ marked US-002 passing\n {4}ALL STORIES PASS\n/);
    assert.match(log, /Every story passes now\. <promise>COMPLETE<\/promise>/);
    assert.match(log, /iteration 1 done in [^:]+: \d(\.\d)?k tokens in, \d+ out, cache \S+ read/);
    assert.match(log, /iteration 2 done in [^:]+: 3(\.0)?k tokens in, 240 out/);
    assert.equal(s.repo.commits().slice(0, 2), ['feat: US-002 - Story number 2', 'feat: US-001 - Story number 1']);
    assert.equal(s.trap.attempts, [], 'codex sent nothing off the machine');
  } finally {
    await s.cleanup();
  }
});

test('a wrong key fails the loop fast, in codex’s own words', async () => {
  if (!available) return skipped('no Codex CLI');
  const s = await setup({ key: 'sk-wrong' });
  try {
    const id = await runLoop(s);
    const end = await s.w.waitForLoop(id, 'to fail', (e) => e.status === 'failed', 60_000);
    assert.match(end.reason ?? '', /401 Unauthorized: Incorrect API key provided: sk-wrong/);
    assert.is(end.iteration, 1, 'no second iteration after an auth error');
    // One codex run and no more: its first request and its own 5 retries, then ralph fails the loop
    // rather than start another run (which would ask 6 times more).
    const tries = s.api.seen.filter((l) => /^POST \/v1\/responses/.test(l)).length;
    assert.is(tries, 6, `requests that reached the API: ${s.api.seen.join(', ')}`);
    assert.match(await logs(s, id), /\[codex\] retry 1\/5: unexpected status 401 Unauthorized/);
    assert.equal(s.trap.attempts, []);
  } finally {
    await s.cleanup();
  }
});

test('an account out of credit (insufficient_quota, sent as a 429) fails the loop at once instead of pausing it', async () => {
  if (!available) return skipped('no Codex CLI');
  const s = await setup({
    script: () => ({ httpError: { status: 429, error: { message: 'You exceeded your current quota, please check your plan and billing details.', type: 'insufficient_quota', code: 'insufficient_quota' } } }),
  });
  try {
    const id = await runLoop(s);
    const end = await s.w.waitForLoop(id, 'to fail or pause', (e) => e.status === 'failed' || e.status === 'paused', 60_000);
    assert.is(end.status, 'failed', end.reason ?? '');
    assert.match(end.reason ?? '', /^codex is out of credit: .*billing details/);
    assert.is(end.iteration, 1, 'no second iteration');
    assert.equal(s.trap.attempts, []);
  } finally {
    await s.cleanup();
  }
});

test('steering: a line typed mid-turn waits for it, Esc interrupts, the session goes on with the line', async () => {
  if (!available) return skipped('no Codex CLI');
  const s = await setup({ stories: 1 });
  const said = (req: ResponsesRequest, words: string) => userTexts(req).at(-1)?.includes(words) === true && !answersTool(req);
  s.api.script = (req, n) => {
    if (said(req, 'Mark the story now')) return runCommand(req, 'Marking it, as you asked.', `node ${MARK_STORY}`);
    if (said(req, 'Thanks')) return { items: [{ text: 'You are welcome.' }] };
    if (answersTool(req) && lastInputText(req).includes('ALL STORIES PASS')) return ralphWorker(req, n);
    return runCommand(req, 'Waiting for a sign.', waitFor(s.go, 'echo waited'));
  };
  let client: LoopClient | null = null;
  try {
    const id = await runLoop(s);
    client = await LoopClient.connect(join(s.w.home.home, 'sockets', `${id}.sock`));
    await client.subscribe({ fromSeq: 0 });
    await client.waitForOutput(`while [ ! -e ${s.go} ]`);
    await client.request('interactive', { on: true });
    await client.request('write', { data: 'Mark the story now\r' });
    await client.waitForOutput('codex takes it when its current turn ends');
    await client.request('write', { data: '\x1b' });
    await client.waitForOutput('interrupting codex (Esc)');
    // Codex stopped; the queued line starts `codex exec resume` and reaches the model as the user's words.
    const steered = await s.api.waitForRequest((r) => said(r, 'Mark the story now'));
    assert.ok(steered.input.some((i) => i.type === 'function_call' && JSON.stringify(i).includes('while [')), 'the same thread: the interrupted call is in its history');
    await client.waitForOutput('Every story passes now.');
    await client.waitForOutput('codex has stopped: type a message to go on');
    // Between turns the session waits for the user; a line goes straight on.
    await client.request('write', { data: 'Thanks\r' });
    await s.api.waitForRequest((r) => said(r, 'Thanks'));
    await client.waitForOutput('You are welcome.');
    await client.request('interactive', { on: false });
    const end = await client.waitForEnd();
    assert.is(end.status, 'completed');
    const entry = await s.w.entry(id);
    assert.is(entry.iteration, 1);
    assert.ok((entry.usage.inputTokens ?? 0) >= 4 * 1500, `every process's tokens count: ${JSON.stringify(entry.usage)}`);
    const log = await logs(s, id);
    assert.match(log, /› Mark the story now\n/);
    assert.match(log, /Marking it, as you asked\.\n● shell node \S+mark-story\.mjs\n/, log);
    assert.equal(s.trap.attempts, []);
  } finally {
    client?.close();
    await s.cleanup();
  }
});

test.run();
