// Loops with the REAL Claude Code CLI (npm @anthropic-ai/claude-code, the version Node 20 gets) whose
// model is a local fake of the Anthropic API: completion with usage recorded, progress visible while a
// tool call runs, a typed line reaching the model's next request, Esc, an early promise, a 401 that
// fails fast in Claude Code's own words, a rate limit that pauses and resumes, an overload whose pauses
// double (and do not take a subscription window's reset), iteration and stall timeouts, extend and
// resume, a background task that outlives the last turn, and no tool process left by a stop, a
// timeout or a killed runner. Everything is driven through the `ralph` CLI as a user would.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { allText, answersTool, lastMessageText, MARK_STORY, ralphWorker, type Script } from './fixtures/anthropic-api.js';
import { attachProcess } from './helpers/attach.js';
import { ClaudeWorld } from './helpers/claude.js';
import { gone } from './helpers/loop.js';
import { RALPH_BIN, waitUntil, within, skipped } from './helpers/env.js';

const worlds: ClaudeWorld[] = [];
async function world(script?: Script): Promise<ClaudeWorld | null> {
  const w = await ClaudeWorld.create(script);
  if (w) worlds.push(w);
  return w;
}
test.after.each(async () => {
  const attempts: string[] = [];
  for (const w of worlds.splice(0)) {
    attempts.push(...w.trap.attempts);
    await w.cleanup();
  }
  assert.equal(attempts, [], 'Claude Code sent nothing off the machine');
});

const markStory = { tool: 'Bash', input: { command: `node ${MARK_STORY}`, description: 'mark the next story' } };

/** The loop's rows of the iterations table (the runner's record of each agent run). */
function iterations(w: ClaudeWorld, id: string): Array<Record<string, any>> {
  const db = new Database(join(w.home.home, 'ralph.db'), { readonly: true });
  try {
    return db.prepare('SELECT * FROM iterations WHERE loop_id = ? ORDER BY id').all(id) as Array<Record<string, any>>;
  } finally {
    db.close();
  }
}

/** `ralph logs ID` as text, until it shows `pattern` (polled while the loop runs). */
function logsShow(w: ClaudeWorld, id: string, pattern: RegExp, what: string, timeoutMs = 60_000): Promise<string> {
  return waitUntil(
    async () => {
      const r = await w.ralph(['logs', id]);
      return pattern.test(r.stdout) ? r.stdout : undefined;
    },
    { what, timeoutMs, intervalMs: 200 },
  );
}

/** The pid a tool's process wrote into `file` (once it has: then it surely runs). */
function pidIn(file: string, what: string): Promise<number> {
  return waitUntil(() => (existsSync(file) && readFileSync(file, 'utf8').endsWith('\n') ? Number(readFileSync(file, 'utf8')) : undefined), { what, timeoutMs: 60_000, intervalMs: 100 });
}

/**
 * A shell command for a Bash tool call: its shell writes its pid to `<file>.sh`, then runs a node
 * that ignores SIGTERM, writes its pid to `<file>` and lives 10 minutes (2.1.3xx refuses a `sleep`).
 */
function hangCommand(file: string): string {
  return `echo $$ > ${file}.sh; node -e "process.on('SIGTERM', () => {}); require('fs').writeFileSync('${file}', process.pid + '\\n'); setInterval(() => {}, 600000)"`;
}

/** `ralph attach ID --interactive` with its stdin a pipe the test writes keys into. */
function attachWithKeys(w: ClaudeWorld, id: string) {
  const child = spawn(process.execPath, [RALPH_BIN, 'attach', id, '--interactive', '--no-replay'], { env: w.env, stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, exited, output: () => out, type: (keys: string) => child.stdin.write(keys), done: () => child.stdin.end() };
}

test('a loop completes with Claude Code: live tool calls in the log, tokens and cost per iteration and in status', async () => {
  const w = await world();
  if (!w) return skipped('no Claude Code CLI');
  const id = await w.runClaude({ stories: 2 });
  const end = await w.waitForLoop(id, 'completed', (e) => e.status !== 'running' && e.status !== 'starting', 120_000);
  assert.is(end.status, 'completed', end.reason ?? '');
  assert.is(end.iteration, 2);
  assert.is(end.agent, 'claude');

  // The fake model answers 2 requests per iteration, each with 1200 uncached in besides 300 read from
  // the cache and 50 written to it (1550 in all), and 80 out.
  assert.equal({ ...end.usage, costUsd: null }, { inputTokens: 6200, outputTokens: 320, cacheReadTokens: 1200, cacheWriteTokens: 200, costUsd: null });
  assert.ok(typeof end.usage.costUsd === 'number' && end.usage.costUsd > 0, `cost reported: ${end.usage.costUsd}`);
  const runs = iterations(w, id);
  assert.equal(runs.map((r) => [r.iteration, r.outcome, r.input_tokens, r.output_tokens]), [[1, 'ok', 3100, 160], [2, 'ok', 3100, 160]]);
  assert.ok(runs.every((r) => typeof r.model === 'string' && r.model.startsWith('claude') && r.duration_ms > 0), JSON.stringify(runs));

  const logs = (await w.ralph(['logs', id])).stdout;
  assert.match(logs, /^I will mark the next story done\.$/m, 'the model\'s words');
  assert.match(logs, new RegExp(`^● Bash node ${MARK_STORY.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`, 'm'), 'each tool call, with its command');
  assert.match(logs, /^ {2}⎿ marked US-001 passing$/m, 'the first line of its result');
  assert.match(logs, /\[ralph\] iteration 1 done in \S+: 3\.1k tokens in, 160 out, cache 600 read \/ 100 written, \$\d\.\d{4} \(claude-\S+\)/);
  assert.not.match(logs, /\x1b/, 'no escape sequences into a pipe');

  const table = (await w.ralph(['status'])).stdout;
  assert.match(table, new RegExp(`${id}\\s+local\\s+completed\\s+2/10\\s+claude\\s+\\$\\d+\\.\\d\\d`), table);
  const commits = readFileSync(join(end.dir, '.git', 'logs', 'HEAD'), 'utf8');
  assert.match(commits, /feat: US-001/);
  assert.match(commits, /feat: US-002/);
});

/**
 * Puts a tee in front of the real `claude` (first on the PATH returned): what Claude Code writes to
 * ralph is kept in a file too, and `lines()` reads it back as JSON objects.
 */
function teeClaude(w: ClaudeWorld): { path: string; lines: () => Array<Record<string, any>> } {
  const real = execFileSync('sh', ['-c', 'command -v claude'], { env: w.env }).toString().trim();
  const dir = join(w.home.home, 'tee-bin');
  const file = join(w.home.home, 'claude-stdout.jsonl');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'claude'), `#!/bin/sh\n'${real}' "$@" | tee -a '${file}'\n`, { mode: 0o755 });
  const lines = () => {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      return [];
    }
    return text.split('\n').flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, any>];
      } catch {
        return []; // a line still being written
      }
    });
  };
  return { path: `${dir}:${w.env.PATH}`, lines };
}

test('a run of two turns (a line typed after the first ended) costs what Claude Code says the process cost, not the sum of its running totals', async () => {
  const w = await world();
  if (!w) return skipped('no Claude Code CLI');
  const gate = w.gate('first-turn');
  // The first turn waits at a gate (so attach is interactive before it ends) and asks for a word;
  // the second, after the typed line, does the story.
  w.api.script = (req, n) => {
    if (allText(req).includes('now the story')) return ralphWorker(req, n);
    if (answersTool(req)) return { blocks: [{ text: 'Waiting for your word.' }] };
    return { blocks: [{ tool: 'Bash', input: { command: gate.command('true'), description: 'wait' } }] };
  };
  const tee = teeClaude(w);
  const results = () => tee.lines().filter((l) => l.type === 'result');
  const id = await w.runClaude({ stories: 1, env: { PATH: tee.path } });
  await logsShow(w, id, /● Bash while/, 'the first turn\'s tool call');
  const attach = attachProcess(id, w.env, { args: ['--interactive', '--no-replay'] });
  await attach.stderr('interactive —');
  gate.open();
  await waitUntil(() => results().length === 1, { what: 'the first turn to end', timeoutMs: 60_000 });
  attach.keys('now the story\r');
  attach.child.stdin!.end();
  const end = await w.waitForLoop(id, 'ended', (e) => e.status !== 'running', 120_000);
  assert.is(end.status, 'completed', end.reason ?? '');

  const totals = results().map((r) => r.total_cost_usd as number);
  assert.is(totals.length, 2, 'two turns, one process');
  assert.ok(totals[0]! > 0 && totals[1]! > totals[0]!, `Claude Code's cost is the process's running total: ${totals}`);
  const runs = iterations(w, id);
  assert.is(runs.length, 1);
  assert.ok(Math.abs(runs[0]!.cost_usd - totals[1]!) < 1e-9, `the run cost ${runs[0]!.cost_usd}; Claude Code says ${totals[1]}`);
  assert.ok(Math.abs(end.usage.costUsd! - totals[1]!) < 1e-9, `the loop cost ${end.usage.costUsd}; Claude Code says ${totals[1]}`);
  // Tokens are each turn's own: two requests a turn, each 1550 in and 80 out.
  assert.equal([runs[0]!.input_tokens, runs[0]!.output_tokens], [6200, 320]);
});

test('progress shows while a tool call is still running; the promise counts even when said before the last tool call', async () => {
  const w = await world();
  if (!w) return skipped('no Claude Code CLI');
  const gate = w.gate('slow-tool');
  w.api.script = (req) =>
    answersTool(req)
      ? { blocks: [{ text: 'Done with that.' }] }
      : {
          blocks: [
            { text: 'This is the last story, so: <promise>COMPLETE</promise>' },
            { tool: 'Bash', input: { command: gate.command(`node ${MARK_STORY}`), description: 'a long build' } },
          ],
        };
  const id = await w.runClaude({ stories: 1 });
  // While the tool call runs, `ralph logs` already shows the model's words and the call.
  const during = await logsShow(w, id, /● Bash while \[ ! -e /, 'the running tool call in ralph logs');
  assert.match(during, /This is the last story, so: <promise>COMPLETE<\/promise>/);
  assert.is((await w.entry(id)).status, 'running', 'the tool call is still going');
  gate.open();
  const end = await w.waitForLoop(id, 'ended', (e) => e.status !== 'running', 120_000);
  assert.is(end.status, 'completed', `an early promise counts (${end.reason})`);
  assert.is(end.iteration, 1);
});

test('interactive: a typed line reaches the model in its next request; stdin EOF leaves interactive mode and the loop goes on', async () => {
  const w = await world();
  if (!w) return skipped('no Claude Code CLI');
  const gate = w.gate('steer');
  w.api.script = (req) => {
    if (answersTool(req)) return allText(req).includes('ALL STORIES PASS') ? { blocks: [{ text: 'All pass. <promise>COMPLETE</promise>' }] } : { blocks: [{ text: 'ok' }] };
    return { blocks: [{ text: 'Starting.' }, { tool: 'Bash', input: { command: gate.command(`node ${MARK_STORY}`), description: 'build' } }] };
  };
  const id = await w.runClaude({ stories: 1 });
  await logsShow(w, id, /● Bash while/, 'the tool call to start');
  const attach = attachWithKeys(w, id);
  attach.type('please also add tests\r');
  attach.done();
  // Its line was sent (it shows in the loop's output), then attach detached on EOF.
  assert.is(await within(attach.exited, 30_000, 'attach to detach on stdin EOF'), 0, attach.output());
  assert.match(attach.output(), /detached from loop/);
  assert.match((await w.ralph(['logs', id])).stdout, /^› please also add tests$/m);
  gate.open();
  const req = await w.api.waitForRequest((r) => allText(r).includes('please also add tests'));
  assert.match(allText(req), /The user sent a new message while you were working:\s*please also add tests/);
  const end = await w.waitForLoop(id, 'ended', (e) => e.status !== 'running', 120_000);
  assert.is(end.status, 'completed', end.reason ?? '');
});

test('interactive: Esc interrupts the agent\'s turn; the next line goes on from there', async () => {
  const w = await world();
  if (!w) return skipped('no Claude Code CLI');
  const never = w.gate('never');
  w.api.script = (req) => {
    const last = lastMessageText(req);
    if (last.includes('now finish')) return { blocks: [{ text: 'Finishing.' }, markStory] };
    if (answersTool(req)) return { blocks: [{ text: 'All pass. <promise>COMPLETE</promise>' }] };
    return { blocks: [{ text: 'Waiting on something slow.' }, { tool: 'Bash', input: { command: never.command('true'), description: 'wait forever' } }] };
  };
  const id = await w.runClaude({ stories: 1 });
  await logsShow(w, id, /● Bash while/, 'the stuck tool call');
  const attach = attachWithKeys(w, id);
  attach.type('\x1b');
  await logsShow(w, id, /\[ralph\] interrupting claude \(Esc\)/, 'the interrupt to be sent');
  // Claude Code ends the turn; the model's next request (after our next line) says it was interrupted.
  attach.type('now finish\r');
  attach.done();
  const req = await w.api.waitForRequest((r) => lastMessageText(r).includes('now finish'));
  assert.match(allText(req), /Request interrupted by user/);
  assert.is(await within(attach.exited, 30_000, 'attach to detach on stdin EOF'), 0, attach.output());
  const end = await w.waitForLoop(id, 'ended', (e) => e.status !== 'running', 120_000);
  assert.is(end.status, 'completed', end.reason ?? '');
  assert.is(end.iteration, 1);
});

test('a wrong API key fails the loop at once, in Claude Code\'s own words', async () => {
  const w = await world(() => ({ error: { status: 401, type: 'authentication_error', message: 'invalid x-api-key' } }));
  if (!w) return skipped('no Claude Code CLI');
  const id = await w.runClaude({ stories: 1 });
  const end = await w.waitForLoop(id, 'failed', (e) => e.status !== 'running', 120_000);
  assert.is(end.status, 'failed');
  assert.is(end.reason, 'claude cannot authenticate: Invalid API key · Fix external API key');
  assert.is(end.iteration, 1, 'no more iterations burned');
  // At once: one Claude Code run, its first request and its own two retries (ralph sets
  // CLAUDE_CODE_MAX_RETRIES=2), and no second run (which would ask 3 times more).
  assert.is(w.api.requests.length, 3, `${w.api.requests.length} requests`);
  assert.match((await w.ralph(['logs', id])).stdout, /\[claude\] Invalid API key · Fix external API key/);
});

test('a rate limit pauses the loop without using up an iteration, then it goes on', async () => {
  const w = await world();
  if (!w) return skipped('no Claude Code CLI');
  // The first request and Claude Code's own two retries are refused with retry-after: 1. That second
  // has passed when Claude Code gives up, so it is no reset time: the runner backs off (its first
  // backoff shortened to a second here; a minute by default).
  let refused = 0;
  w.api.script = (req, n) => {
    if (refused < 3) {
      refused++;
      return { error: { status: 429, type: 'rate_limit_error', message: 'This request would exceed your rate limit.', headers: { 'retry-after': '1' } } };
    }
    return ralphWorker(req, n);
  };
  const id = await w.runClaude({ stories: 1, env: { RALPH_RATE_LIMIT_BACKOFF_MS: '1000' } });
  // The pause lasts about a second: rather than catch it by polling, the record says it happened
  // afterwards (the loop's own log of it, and the iterations table).
  const end = await w.waitForLoop(id, 'ended', (e) => e.status === 'completed' || e.status === 'failed', 120_000);
  assert.is(end.status, 'completed', end.reason ?? '');
  assert.is(end.iteration, 1, 'the limited run did not use up the iteration');
  assert.is(end.pausedUntil, null);
  assert.equal(iterations(w, id).map((r) => [r.iteration, r.outcome]), [[1, 'rate-limited'], [1, 'ok']]);
  const log = (await w.ralph(['logs', id])).stdout;
  const paused = [...log.matchAll(/\[ralph\] paused: (.*) \(in [^)]+\); no iteration is used meanwhile/g)].map((m) => m[1]);
  assert.is(paused.length, 1, log);
  assert.match(paused[0]!, /^claude is rate-limited: API Error: Request rejected \(429\) · This request would exceed your rate limit\.; going on at \d\d:\d\d:\d\d$/);
  // The pause came before the run that did the work: its line precedes the second iteration's start.
  assert.ok(log.indexOf('[ralph] paused:') < log.lastIndexOf('[ralph] iteration 1/10'), log);
});

test('a sustained overload (529): each pause in a row is twice the last (Claude Code\'s own retry delays are no reset time), then the loop goes on', async () => {
  const w = await world();
  if (!w) return skipped('no Claude Code CLI');
  // Three runs' worth of requests (the first and Claude Code's own two retries, each) are refused.
  let refused = 0;
  w.api.script = (req, n) => {
    if (refused < 9) {
      refused++;
      return { error: { status: 529, type: 'overloaded_error', message: 'Overloaded' } };
    }
    return ralphWorker(req, n);
  };
  const id = await w.runClaude({ stories: 1, env: { RALPH_RATE_LIMIT_BACKOFF_MS: '1000' } });
  const end = await w.waitForLoop(id, 'ended', (e) => e.status === 'completed' || e.status === 'failed', 120_000);
  assert.is(end.status, 'completed', end.reason ?? '');
  assert.is(end.iteration, 1, 'the limited runs did not use up the iteration');
  assert.equal(iterations(w, id).map((r) => r.outcome), ['rate-limited', 'rate-limited', 'rate-limited', 'ok']);
  const log = (await w.ralph(['logs', id])).stdout;
  const pauses = [...log.matchAll(/\[ralph\] paused: claude is rate-limited: (.*); going on at \S+ \(in (\d+)(ms|s)\); no iteration is used meanwhile/g)];
  assert.ok(pauses.every((p) => /^API Error: 529 Overloaded\./.test(p[1]!)), log);
  // The runner's backoff (its first shortened to a second here; a minute by default), not ~5 s each.
  assert.equal(pauses.map((p) => Math.round((Number(p[2]) * (p[3] === 's' ? 1000 : 1)) / 1000)), [1, 2, 4], log);
});

test('with a subscription, the window\'s "allowed" notice does not make a later overload wait for the window\'s reset: the runner backs off', async () => {
  const w = await world();
  if (!w) return skipped('no Claude Code CLI');
  // The first response says the subscription's five-hour window is fine and resets in 3 h (Claude Code
  // passes that on as a rate_limit_event, status "allowed"); the next request and Claude Code's two
  // retries are overloaded; then the API is well again.
  const window = {
    'anthropic-ratelimit-unified-status': 'allowed',
    'anthropic-ratelimit-unified-reset': String(Math.floor(Date.now() / 1000) + 3 * 3600),
    'anthropic-ratelimit-unified-representative-claim': 'five_hour',
  };
  w.api.script = (req, n) => {
    if (n === 0) return { blocks: [{ text: 'I will mark the next story done.' }, markStory], headers: window };
    if (n <= 3) return { error: { status: 529, type: 'overloaded_error', message: 'Overloaded' } };
    return ralphWorker(req, n);
  };
  // Signed in (OAuth) rather than with an API key: only then does Claude Code report the window.
  const subscription = { ANTHROPIC_API_KEY: '', CLAUDE_CODE_OAUTH_TOKEN: 'sk-ant-oat01-fake-token-for-tests', RALPH_RATE_LIMIT_BACKOFF_MS: '1000' };
  const id = await w.runClaude({ stories: 2, env: subscription });
  const log = await logsShow(w, id, /\[ralph\] paused: .*\(in [^)]+\)/, 'the pause');
  const [, reason, amount, unit] = /\[ralph\] paused: claude is rate-limited: (.*); going on at \S+ \(in (\d+)(ms|s|h)\b/.exec(log)!;
  assert.match(reason!, /^API Error: 529 Overloaded\./);
  assert.ok((unit === 'ms' || unit === 's') && Number(amount) * (unit === 's' ? 1000 : 1) <= 1000, `the first backoff (a second here), not the window's 3 h: ${amount}${unit}`);
  const end = await w.waitForLoop(id, 'ended', (e) => e.status === 'completed' || e.status === 'failed', 120_000);
  assert.is(end.status, 'completed', end.reason ?? '');
  assert.is(end.iteration, 1);
});

test('iteration timeout and stall timeout end the agent and count as failed iterations, with reasons that name them', async () => {
  const w = await world((req) =>
    // Not `sleep 60`: Claude Code (2.1.3xx) refuses a standalone sleep as a tool call.
    answersTool(req) ? { blocks: [{ text: 'done' }] } : { blocks: [{ tool: 'Bash', input: { command: 'node -e "setTimeout(() => {}, 60000)"', description: 'a silent hang' } }] },
  );
  if (!w) return skipped('no Claude Code CLI');
  const timedOut = await w.runClaude({ stories: 1, args: ['--max-iterations', '1', '--iteration-timeout', '3s'] });
  const stalled = await w.runClaude({ stories: 1, args: ['--max-iterations', '1', '--stall-timeout', '3s'] });
  const a = await w.waitForLoop(timedOut, 'failed', (e) => e.status !== 'running', 120_000);
  const b = await w.waitForLoop(stalled, 'failed', (e) => e.status !== 'running', 120_000);
  assert.is(a.status, 'failed');
  assert.match(a.reason ?? '', /^reached the iteration limit \(1\) with 1 of 1 stories still open; last iteration: iteration 1 ran longer than 3s \(the iteration timeout\)$/);
  assert.is(b.status, 'failed');
  assert.match(b.reason ?? '', /last iteration: the agent printed nothing for 3s \(the stall timeout\)$/);
  assert.equal(iterations(w, timedOut).map((r) => r.outcome), ['timeout']);
  assert.equal(iterations(w, stalled).map((r) => r.outcome), ['stalled']);
});

test('extend gives a running loop more iterations; resume goes on with a failed one as a new loop', async () => {
  const w = await world();
  if (!w) return skipped('no Claude Code CLI');
  const gate = w.gate('extend');
  let gated = false;
  w.api.script = (req, n) => {
    if (!gated && !answersTool(req)) {
      gated = true;
      return { blocks: [{ tool: 'Bash', input: { command: gate.command(`node ${MARK_STORY}`), description: 'first story' } }] };
    }
    return ralphWorker(req, n);
  };
  const id = await w.runClaude({ stories: 3, args: ['--max-iterations', '1'] });
  await logsShow(w, id, /● Bash while/, 'the first iteration to be underway');
  const extended = await w.ralph(['extend', id, '2']);
  assert.is(extended.code, 0, extended.stderr);
  assert.is(extended.stdout.trim(), `loop ${id} may now run 3 iterations (2 more)`);
  gate.open();
  const end = await w.waitForLoop(id, 'ended', (e) => e.status !== 'running', 120_000);
  assert.is(end.status, 'completed', end.reason ?? '');
  assert.is(end.iteration, 3);
  assert.is(end.maxIterations, 3);

  const extendEnded = await w.ralph(['extend', id, '1']);
  assert.is(extendEnded.code, 1);
  assert.match(extendEnded.stderr, /^ralph: loop \S+ has ended \(completed\)/);

  // A loop that runs out of iterations is resumed as a new loop on the same task and directory.
  const short = await w.runClaude({ stories: 2, args: ['--max-iterations', '1'] });
  const failed = await w.waitForLoop(short, 'failed', (e) => e.status !== 'running', 120_000);
  assert.is(failed.status, 'failed');
  const resumed = await w.ralph(['resume', short, '--max-iterations', '4']);
  assert.is(resumed.code, 0, resumed.stderr);
  const next = resumed.stdout.trim();
  assert.is.not(next, short);
  assert.match(resumed.stderr, new RegExp(`loop ${short} goes on as loop ${next}`));
  const done = await w.waitForLoop(next, 'ended', (e) => e.status !== 'running' && e.status !== 'starting', 120_000);
  assert.is(done.status, 'completed', done.reason ?? '');
  assert.is(done.iteration, 1, 'one story was left');
  assert.is(done.resumedFrom, short);
  assert.is(done.dir, failed.dir);
  const again = await w.ralph(['resume', next]);
  assert.is(again.code, 1);
  assert.match(again.stderr, /completed: every story passed/);
});

test('a background task (run_in_background, a dev server) still running after the last turn: the iteration ends ok seconds later, and the task with it', async () => {
  const w = await world();
  if (!w) return skipped('no Claude Code CLI');
  const server = join(w.home.home, 'server.pid');
  w.api.script = (req) => {
    if (!answersTool(req)) {
      const command = `node -e "require('fs').writeFileSync('${server}', process.pid + '\\n'); setTimeout(() => {}, 600000)"`;
      return { blocks: [{ text: 'Starting the dev server.' }, { tool: 'Bash', input: { command, description: 'dev server', run_in_background: true } }] };
    }
    if (lastMessageText(req).includes('ALL STORIES PASS')) return { blocks: [{ text: 'Every story passes. <promise>COMPLETE</promise>' }] };
    return { blocks: [markStory] };
  };
  // Claude Code 2.1.332 stays alive, silent, while its background task runs (the stall timeout ended
  // such an iteration, as "stalled"); 2.1.197 exits 5 s later, leaving the task's process running.
  const id = await w.runClaude({ stories: 1, args: ['--stall-timeout', '90s'] });
  const pid = await pidIn(server, 'the dev server to start');
  const end = await w.waitForLoop(id, 'ended', (e) => e.status !== 'running' && e.status !== 'starting', 60_000);
  assert.is(end.status, 'completed', end.reason ?? '');
  assert.equal(iterations(w, id).map((r) => [r.iteration, r.outcome, r.reason]), [[1, 'ok', null]]);
  assert.match((await w.ralph(['logs', id])).stdout, /^\[ralph\] claude was still running 3s after its last turn \(a background task\?\): ending it and what it started$/m);
  await waitUntil(() => gone(pid), { what: 'the background task to be gone', timeoutMs: 10_000 });
});

test('ralph stop, the iteration timeout and a SIGKILLed runner end Claude Code\'s tools too (each runs in a session of its own), even one that ignores SIGTERM', async () => {
  const w = await world();
  if (!w) return skipped('no Claude Code CLI');
  // Each loop's tool writes its pids under its loop id (the agent's environment names it).
  const file = (id: string) => join(w.home.home, `${id}.pid`);
  w.api.script = (req) =>
    answersTool(req) ? { blocks: [{ text: 'done' }] } : { blocks: [{ tool: 'Bash', input: { command: hangCommand(join(w.home.home, '$RALPH_LOOP_ID.pid')), description: 'a server' } }] };
  const stopped = await w.runClaude({ stories: 1 });
  const timedOut = await w.runClaude({ stories: 1, args: ['--max-iterations', '1', '--iteration-timeout', '20s'] });
  const killed = await w.runClaude({ stories: 1 });
  const tools = new Map<string, number[]>();
  for (const id of [stopped, timedOut, killed]) {
    const node = await pidIn(file(id), `loop ${id}'s tool to start its node`);
    tools.set(id, [Number(readFileSync(`${file(id)}.sh`, 'utf8')), node]);
  }
  const everyToolGone = (id: string) =>
    waitUntil(() => tools.get(id)!.every(gone), { what: `loop ${id}'s tool processes (${tools.get(id)!.join(', ')}) to be gone`, timeoutMs: 15_000 });

  const stop = await w.ralph(['stop', stopped]);
  assert.is(stop.code, 0, stop.stderr);
  assert.is((await w.waitForLoop(stopped, 'stopped', (e) => e.status !== 'running', 60_000)).status, 'stopped');
  await everyToolGone(stopped);

  const t = await w.waitForLoop(timedOut, 'failed', (e) => e.status !== 'running', 60_000);
  assert.match(t.reason ?? '', /the iteration timeout/);
  await everyToolGone(timedOut);

  // The runner gone at once: its agent's guard ends the agent and its tools (TERM, KILL 3 s later).
  process.kill((await w.entry(killed)).pid!, 'SIGKILL');
  await everyToolGone(killed);
});

test('as root without IS_SANDBOX=1, ralph run --agent claude refuses up front; it never sets IS_SANDBOX itself', async () => {
  if (process.getuid?.() !== 0) return skipped('not root');
  const w = await world();
  if (!w) return skipped('no Claude Code CLI');
  const repo = w.repo({ stories: 1 });
  const r = await w.ralph(['run', repo.dir, '--agent', 'claude'], { env: { IS_SANDBOX: '' } });
  assert.is(r.code, 1);
  assert.is(
    r.stderr,
    'ralph: Claude Code will not run unattended as root (it refuses --dangerously-skip-permissions under root): run ralph as a non-root user, or `export IS_SANDBOX=1` inside a container or VM you can throw away\n',
  );
  assert.equal(await w.status(), [], 'nothing recorded');
  assert.is(w.api.requests.length, 0, 'the model was never asked');
});

test.run();
