// The OpenCode adapter fed OpenCode's own output: JSON events recorded from the real CLI (the version
// pinned in test/fixtures/agent-clis.json) against the fake Responses API (test/record-agents.ts).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { opencodeParser, opencodeProfile } from '../agents/opencode.js';
import { ofKind, parseRecording, rendered } from './helpers/recordings.js';

test('a turn: the session, each text part, the command with its output, the steps’ tokens summed', () => {
  const events = parseRecording(opencodeParser, 'opencode-work.jsonl');
  const inits = ofKind(events, 'init');
  assert.is(inits.length, 1, 'the session is announced once');
  assert.match(inits[0]!.session ?? '', /^ses_/);
  assert.equal(ofKind(events, 'tool').map((t) => [t.name, t.detail.replace(/\S*mark-story/, 'mark-story')]), [['bash', 'node mark-story.mjs']]);
  const ends = ofKind(events, 'turn-end');
  assert.is(ends.length, 1, 'a step that ends in tool calls is not the turn’s end');
  // Two steps of 1100 uncached + 400 cached in, 100 out: "tokens in" include the cached part.
  assert.equal(ends[0]!.usage, { inputTokens: 3000, outputTokens: 200, cacheReadTokens: 800, cacheWriteTokens: 0, costUsd: 0, model: null });
  // Tokens written to the cache are input too (opencode counts them apart, as it does those read).
  const step = { type: 'step_finish', sessionID: 'ses_x', part: { type: 'step-finish', reason: 'stop', cost: 0.01, tokens: { input: 10, output: 1, reasoning: 0, cache: { read: 5, write: 7 } } } };
  const [, end] = opencodeParser()(JSON.stringify(step));
  assert.equal(end, { kind: 'turn-end', usage: { inputTokens: 22, outputTokens: 1, cacheReadTokens: 5, cacheWriteTokens: 7, costUsd: 0.01, model: null }, error: null });
  assert.match(rendered('opencode', events), /I will mark the next story done\.\n● bash node \S+mark-story\.mjs\n  ⎿ marked US-001 passing\n    1 stories still open\nStory done; the next iteration takes the next one\.\n/);
});

test('the promise; a session continued by --session keeps its id', () => {
  assert.ok(ofKind(parseRecording(opencodeParser, 'opencode-promise.jsonl'), 'text').some((t) => t.text.includes('<promise>COMPLETE</promise>')));
  const events = parseRecording(opencodeParser, 'opencode-resume.jsonl');
  assert.is(ofKind(events, 'init').length, 1, 'the same session throughout');
  assert.match(rendered('opencode', events), /Hello, as you asked\./);
  assert.is(ofKind(events, 'turn-end').length, 2);
});

test('a failing command shows its output and exit code as an error result', () => {
  const events = parseRecording(opencodeParser, 'opencode-tools.jsonl');
  const results = ofKind(events, 'tool-result');
  assert.equal(results.map((r) => r.isError), [true, true]);
  assert.match(rendered('opencode', events), /● bash echo "1 test failed" >&2; exit 1\n  ⎿ 1 test failed\n    exit code 1\n/);
  assert.match(rendered('opencode', events), /● bash apply_patch <<'PATCH' … \(\+5 lines\)\n/);
});

test('a wrong key and a rate limit, in the API’s words as opencode passes them on', () => {
  const auth = ofKind(parseRecording(opencodeParser, 'opencode-auth.jsonl'), 'turn-end').at(-1)!.error!;
  assert.equal(auth.errorKind, 'auth');
  assert.match(auth.text, /^Incorrect API key provided: sk-wrong\./);
  const limit = ofKind(parseRecording(opencodeParser, 'opencode-ratelimit.jsonl'), 'turn-end').at(-1)!.error!;
  assert.equal([limit.errorKind, limit.text], ['rate-limit', 'Rate limit reached for requests. Please try again in 1s.']);
  assert.ok(limit.resetsAt !== null && Math.abs(limit.resetsAt - Date.now() - 1000) < 5000, 'its "try again in 1s" is the reset time');
  const conn = ofKind(parseRecording(opencodeParser, 'opencode-noconn.jsonl'), 'turn-end').at(-1)!.error!;
  assert.equal([conn.errorKind, conn.text], ['connection', 'Cannot connect to API: Unable to connect. Is the computer able to access the url?']);
});

test('launch: JSON over pipes, the prompt on stdin, continued by --session, Esc is SIGINT', () => {
  const launch = opencodeProfile.launch('the prompt');
  assert.is(launch.mode, 'stream');
  if (launch.mode !== 'stream') return;
  assert.equal(launch.args, ['run', '--format', 'json', '--auto']);
  assert.is(launch.dialect.initialInput, 'the prompt');
  assert.equal(launch.dialect.continueSession?.('ses_1', '-x'), { args: ['run', '--format', 'json', '--auto', '--session', 'ses_1'], input: '-x' });
  assert.is(launch.dialect.interruptSignal, 'SIGINT');
});

test.run();
