// The Codex adapter fed Codex's own output: JSON events recorded from the real CLI (the version
// pinned in test/fixtures/agent-clis.json) against the fake Responses API (test/record-agents.ts).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { codexParser, codexProfile, shellCommand } from '../agents/codex.js';
import { resetTimeIn } from '../agents/errors.js';
import { ofKind, parseRecording, rendered } from './helpers/recordings.js';

test('a turn: the thread id, the command with its output, the text, the turn’s tokens', () => {
  const events = parseRecording(codexParser, 'codex-work.jsonl');
  const init = ofKind(events, 'init')[0]!;
  assert.match(init.session ?? '', /^[0-9a-f-]{36}$/);
  assert.is(init.model, null, 'codex names no model in its JSON');
  assert.equal(
    ofKind(events, 'tool').map((t) => [t.name, t.detail.replace(/\S*mark-story/, 'mark-story')]),
    [['shell', 'node mark-story.mjs']],
  );
  assert.equal(ofKind(events, 'tool-result'), [{ kind: 'tool-result', text: 'marked US-001 passing\n1 stories still open\n', isError: false }]);
  const turnEnds = ofKind(events, 'turn-end');
  assert.is(turnEnds.length, 1);
  // Two requests of 1500 input each, 400 of them cached: codex's input_tokens already include the cached ones.
  assert.equal(turnEnds[0]!.usage, { inputTokens: 3000, outputTokens: 240, cacheReadTokens: 800, cacheWriteTokens: 0, costUsd: null, model: null });
  assert.is(turnEnds[0]!.error, null);
  const screen = rendered('codex', events);
  assert.match(screen, /\[codex\] Model metadata for `ralph-fake-model` not found/, 'its warning is a dim notice, not the run’s error');
  assert.match(screen, /I will mark the next story done\.\n● shell node \S*mark-story\.mjs\n  ⎿ marked US-001 passing\n    1 stories still open\nStory done; the next iteration takes the next one\./);
  assert.not.ok(ofKind(events, 'error').length, 'a warning item is not an error');
});

test('the promise arrives as text', () => {
  const text = ofKind(parseRecording(codexParser, 'codex-promise.jsonl'), 'text').map((t) => t.text);
  assert.ok(text.some((t) => t.includes('<promise>COMPLETE</promise>')), text.join(' | '));
});

test('a resumed thread reports totals: each process’s turn counts only its own share', () => {
  const events = parseRecording(codexParser, 'codex-resume.jsonl');
  const sessions = ofKind(events, 'init').map((e) => e.session);
  assert.is(sessions.length, 2);
  assert.is(sessions[0], sessions[1], 'resume continues the same thread');
  const usage = ofKind(events, 'turn-end').map((e) => [e.usage?.inputTokens, e.usage?.outputTokens]);
  // codex says 3000 then 4500 (the thread's totals); the second turn used 1500.
  assert.equal(usage, [[3000, 240], [1500, 120]]);
  assert.match(rendered('codex', events), /Hello, as you asked\./);
});

test('reasoning, a failing command and a file written by apply_patch', () => {
  const events = parseRecording(codexParser, 'codex-tools.jsonl');
  const screen = rendered('codex', events);
  assert.match(screen, /✻ Checking the tests first/);
  assert.match(screen, /● shell echo "1 test failed" >&2; exit 1\n  ⎿ 1 test failed\n    exit code 1\n/);
  assert.equal(ofKind(events, 'tool-result')[0]!.isError, true);
  assert.match(screen, /● apply_patch add \/\S+\/fix\.txt\n/);
  assert.match(screen, /Fixed\.\n$/);
});

test('a wrong key: codex’s retries, then the turn fails with its words, classified auth', () => {
  const events = parseRecording(codexParser, 'codex-auth.jsonl');
  const retries = ofKind(events, 'retry');
  assert.is(retries.length, 5);
  assert.match(retries[0]!.text, /^retry 1\/5: unexpected status 401 Unauthorized: Incorrect API key provided: sk-wrong\./);
  assert.ok(retries.every((r) => r.errorKind === 'auth'));
  const end = ofKind(events, 'turn-end').at(-1)!;
  assert.equal(end.error?.errorKind, 'auth');
  assert.match(end.error?.text ?? '', /^unexpected status 401 Unauthorized: Incorrect API key provided/);
  // The error line and the failed turn carry the same words: shown once.
  const screen = rendered('codex', events);
  assert.is(screen.match(/\[codex\] retry \d\/5: unexpected status 401/g)?.length, 5, 'five retries');
  assert.is(screen.match(/\[codex\] unexpected status 401/g)?.length, 1, 'and one error');
});

test('a rate limit pauses; an exceeded quota (out of credit) is permanent, like a wrong key; a dead API is a connection error', () => {
  const limit = ofKind(parseRecording(codexParser, 'codex-ratelimit.jsonl'), 'turn-end').at(-1)!.error!;
  assert.equal([limit.errorKind, limit.text], ['rate-limit', 'exceeded retry limit, last status: 429 Too Many Requests, request id: req_fake_6']);
  const quota = ofKind(parseRecording(codexParser, 'codex-quota.jsonl'), 'turn-end').at(-1)!.error!;
  assert.equal([quota.errorKind, quota.text], ['auth', 'Quota exceeded. Check your plan and billing details.']);
  const events = parseRecording(codexParser, 'codex-noconn.jsonl');
  assert.ok(ofKind(events, 'retry').every((r) => r.errorKind === 'connection'));
  const conn = ofKind(events, 'turn-end').at(-1)!.error!;
  assert.equal([conn.errorKind, conn.text], ['connection', 'Connection failed: error sending request']);
});

test('interrupted, then resumed: the interrupted turn has no end, the resumed one counts both requests', () => {
  const events = parseRecording(codexParser, 'codex-interrupt-resume.jsonl');
  assert.equal(ofKind(events, 'tool').map((t) => t.detail), ['sleep 20']);
  const ends = ofKind(events, 'turn-end');
  assert.is(ends.length, 1);
  assert.is(ends[0]!.usage?.inputTokens, 3000);
});

test('codex’s usage-limit wording gives a reset time, today’s or another day’s', () => {
  const now = new Date(2026, 11, 2, 10, 0, 0).getTime();
  assert.is(resetTimeIn("You've hit your usage limit. To get more access now, send a request to your admin or try again in 3 days 6 hours 57 minutes.", now), now + ((3 * 24 + 6) * 60 + 57) * 60_000);
  assert.is(resetTimeIn("You've hit your usage limit. Visit https://chatgpt.com/codex/settings/usage to purchase more credits or try again at 3:28 PM.", now), new Date(2026, 11, 2, 15, 28).getTime());
  assert.is(resetTimeIn('try again at 9:05 AM.', now), new Date(2026, 11, 3, 9, 5).getTime(), 'a time already past today is tomorrow');
  // A reset on another day comes with its date (codex: "%b %-d{suffix}, %Y %-I:%M %p", local time).
  assert.is(resetTimeIn("You've hit your usage limit. Upgrade to Pro (https://chatgpt.com/explore/pro), visit https://chatgpt.com/codex/settings/usage to purchase more credits or try again at Dec 7th, 2026 3:28 PM.", now), new Date(2026, 11, 7, 15, 28).getTime());
  assert.is(resetTimeIn("You've hit your usage limit. Try again at Jan 1st, 2027 12:05 AM.", now), new Date(2027, 0, 1, 0, 5).getTime());
  assert.is(resetTimeIn('or try again at Dec 22nd, 2026 9:00 AM.', now), new Date(2026, 11, 22, 9, 0).getTime());
  assert.is(resetTimeIn('Usage limit reached|1767225600', now), 1767225600_000);
  assert.is(resetTimeIn("You've hit your usage limit. Try again later.", now), null);
});

test('launch: JSON over pipes, the prompt on stdin, continued by exec resume, Esc is SIGINT', () => {
  const launch = codexProfile.launch('the prompt');
  assert.is(launch.mode, 'stream');
  if (launch.mode !== 'stream') return;
  assert.equal(launch.args, ['exec', '--json', '--dangerously-bypass-approvals-and-sandbox', '-c', 'features.unbounded_connection_retries=false', '-']);
  assert.is(launch.dialect.initialInput, 'the prompt');
  assert.is(launch.dialect.userMessage, undefined, 'codex reads nothing while it runs');
  assert.equal(launch.dialect.continueSession?.('T1', '--help me'), {
    args: ['exec', 'resume', '--json', '--dangerously-bypass-approvals-and-sandbox', '-c', 'features.unbounded_connection_retries=false', 'T1', '-'],
    input: '--help me',
  });
  assert.is(launch.dialect.interruptSignal, 'SIGINT');
  assert.is(shellCommand("/bin/bash -lc 'echo '\\''hi'\\'''"), "echo 'hi'");
  assert.is(shellCommand('git status'), 'git status');
});

test.run();
