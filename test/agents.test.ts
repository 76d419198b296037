// The agent adapters' pure parts, fed output recorded from the real Claude Code CLI 2.1.197 (and
// 2.1.332 where the name says so; test/fixtures/claude-stream/*.jsonl, recorded against the fake
// Anthropic API; the init line's long lists of tools and commands shortened): events, rendering, error classification; and the runner's
// line editor, the input line of the loop's output, and plain-text logs.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { claudeParser } from '../agents/claude.js';
import { classifyAgentError, lastTellingLine, resetTimeIn } from '../agents/errors.js';
import { EventRenderer } from '../agents/render.js';
import { toolDetail } from '../agents/tools.js';
import type { AgentEvent } from '../agents/types.js';
import { CompletionDetector } from '../loop/completion.js';
import { PlainLines } from '../loop/escapes.js';
import { OutputHistory } from '../loop/history.js';
import { LineEditor } from '../loop/line-editor.js';
import { OutputWriter } from '../loop/output-writer.js';
import { rateLimitUntil } from '../loop/runner.js';
import { FIXTURES } from './helpers/env.js';

function recorded(name: string): AgentEvent[] {
  const parse = claudeParser();
  return readFileSync(join(FIXTURES, 'claude-stream', `${name}.jsonl`), 'utf8')
    .split('\n')
    .filter(Boolean)
    .flatMap((line) => parse(line));
}

/** Renders events through an OutputWriter into a real history; returns the output as plain lines. */
function rendered(events: AgentEvent[], before?: (w: OutputWriter) => void, after?: (w: OutputWriter) => void): { raw: string; text: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ralph-agents-'));
  const history = new OutputHistory(join(dir, 'out.log'), {});
  try {
    const writer = new OutputWriter(history);
    const renderer = new EventRenderer('claude');
    before?.(writer);
    for (const ev of events) writer.pieces(renderer.render(ev));
    after?.(writer);
    history.flush();
    const raw = readFileSync(join(dir, 'out.log'), 'utf8');
    const plain = new PlainLines();
    const text = plain.push(Buffer.from(raw)).toString('utf8') + plain.end().toString('utf8');
    return { raw, text };
  } finally {
    history.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('claude: a recorded turn becomes text (streamed once), a tool call with its command, its result, and usage', () => {
  const events = recorded('success');
  const kinds = events.map((e) => e.kind);
  assert.equal(kinds.filter((k) => k === 'tool'), ['tool']);
  assert.equal(events.find((e) => e.kind === 'init'), { kind: 'init', model: 'claude-opus-4-8' });
  const text = events.filter((e): e is Extract<AgentEvent, { kind: 'text' }> => e.kind === 'text').map((e) => e.text).join('');
  assert.is(text, 'Let me check the tests.Every story passes now. <promise>COMPLETE</promise>', 'each word once: streamed deltas, not the whole-message copy too');
  assert.equal(events.find((e) => e.kind === 'tool'), { kind: 'tool', name: 'Bash', detail: 'ls /nonexistent-dir' });
  const result = events.find((e) => e.kind === 'tool-result') as Extract<AgentEvent, { kind: 'tool-result' }>;
  assert.ok(result.isError);
  assert.match(result.text, /No such file or directory/);
  const end = events[events.length - 1] as Extract<AgentEvent, { kind: 'turn-end' }>;
  assert.is(end.kind, 'turn-end');
  assert.is(end.error, null);
  // The API said 2400 input besides 600 read from the cache and 100 written to it: 3100 in all.
  assert.equal({ ...end.usage!, costUsd: null }, { inputTokens: 3100, outputTokens: 160, cacheReadTokens: 600, cacheWriteTokens: 100, costUsd: null, model: 'claude-opus-4-8' });
  assert.ok(end.usage!.costUsd! > 0);

  const { text: out } = rendered(events);
  assert.equal(out.split('\n'), [
    'claude · claude-opus-4-8',
    'Let me check the tests.',
    '● Bash ls /nonexistent-dir',
    '  ⎿ Exit code 2',
    "    ls: cannot access '/nonexistent-dir': No such file or directory",
    'Every story passes now. <promise>COMPLETE</promise>',
    '',
  ]);
});

test('claude: a 401 and a 429 in Claude Code\'s own words, classified; the retry-after it waited on is no reset time', () => {
  const auth = recorded('auth-401');
  const authError = auth.find((e) => e.kind === 'error') as Extract<AgentEvent, { kind: 'error' }>;
  assert.equal(authError, { kind: 'error', text: 'Invalid API key · Fix external API key', errorKind: 'auth', resetsAt: null });
  const authEnd = auth[auth.length - 1] as Extract<AgentEvent, { kind: 'turn-end' }>;
  assert.is(authEnd.error?.errorKind, 'auth');
  assert.equal(rendered(auth).text.split('\n').filter(Boolean), [
    'claude · claude-opus-4-8',
    '[claude] API error 401 authentication_failed; retry 1/1 in 1s',
    '[claude] Invalid API key · Fix external API key',
  ]);

  const limited = recorded('rate-limit-429');
  const retry = limited.find((e) => e.kind === 'retry') as Extract<AgentEvent, { kind: 'retry' }>;
  assert.is(retry.errorKind, 'rate-limit');
  assert.is(retry.delayMs, 1000, 'the API\'s retry-after');
  const end = limited[limited.length - 1] as Extract<AgentEvent, { kind: 'turn-end' }>;
  assert.is(end.error?.errorKind, 'rate-limit');
  assert.match(end.error!.text, /^API Error: Request rejected \(429\) · This request would exceed your rate limit\.$/);
  // Claude Code waited that second before its last try: by the time the turn fails it has passed.
  assert.is(end.error!.resetsAt, null, 'no reset time: the runner backs off');
});

test('claude: a sustained overload (529, recorded from both versions): Claude Code\'s own retry delays are no reset time, so each pause in a row is twice the last', () => {
  for (const name of ['overloaded-529', 'overloaded-529-2.1.332']) {
    const events = recorded(name);
    const retries = events.filter((e): e is Extract<AgentEvent, { kind: 'retry' }> => e.kind === 'retry');
    assert.equal(retries.map((r) => [r.errorKind, r.delayMs! > 0]), [['rate-limit', true], ['rate-limit', true]], name);
    const end = events[events.length - 1] as Extract<AgentEvent, { kind: 'turn-end' }>;
    assert.is(end.error?.errorKind, 'rate-limit', name);
    assert.match(end.error!.text, /^API Error: 529 Overloaded\./, name);
    assert.is(end.error!.resetsAt, null, name);
    const now = Date.now();
    assert.equal([0, 1, 2, 3].map((n) => rateLimitUntil(end.error!.resetsAt, n, now) - now), [60_000, 120_000, 240_000, 480_000], name);
  }
});

/** The raw lines of a recording, as JSON. */
function recordedLines(name: string): Array<Record<string, any>> {
  return readFileSync(join(FIXTURES, 'claude-stream', `${name}.jsonl`), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

test('claude (with a subscription, recorded from both versions): a reset time comes only from a rejected rate_limit_event, and never for an overload', () => {
  for (const [v, version] of [['', '2.1.197'], ['-2.1.332', '2.1.332']] as const) {
    // A turn that went well, whose response said "allowed" with the window's reset 3 h away; then a 529.
    const allowedInfo = recordedLines(`oauth-allowed-then-529${v}`).find((l) => l.type === 'rate_limit_event')!.rate_limit_info;
    assert.equal([allowedInfo.status, typeof allowedInfo.resetsAt], ['allowed', 'number'], version);
    const ends = recorded(`oauth-allowed-then-529${v}`).filter((e): e is Extract<AgentEvent, { kind: 'turn-end' }> => e.kind === 'turn-end');
    assert.equal(ends.map((e) => e.error?.errorKind ?? null), [null, 'rate-limit'], version);
    assert.match(ends[1]!.error!.text, /^API Error: 529 Overloaded\./);
    assert.is(ends[1]!.error!.resetsAt, null, `an overload is no subscription limit: the runner backs off (${version})`);

    // Refused (429) by the subscription's limit: its reset is the rejected event's.
    const rejectedLine = recordedLines(`oauth-rejected-429${v}`).find((l) => l.type === 'rate_limit_event')!;
    const resetsAt = (rejectedLine.rate_limit_info.resetsAt as number) * 1000;
    const refused = recorded(`oauth-rejected-429${v}`);
    assert.equal(refused.find((e) => e.kind === 'rate-limit'), { kind: 'rate-limit', text: 'usage limit reached (five hour)', resetsAt }, version);
    const end = refused[refused.length - 1] as Extract<AgentEvent, { kind: 'turn-end' }>;
    assert.equal([end.error?.errorKind, end.error?.resetsAt], ['rate-limit', resetsAt], version);
    assert.match(end.error!.text, /^You've hit your (session|5-hour) limit · resets \d/, version);

    // Should a 529 follow a rejected event, the subscription's reset is not the overload's.
    const parse = claudeParser();
    parse(JSON.stringify(rejectedLine));
    const overload = recordedLines(`overloaded-529${v}`).find((l) => l.type === 'result')!;
    const [after] = parse(JSON.stringify(overload)) as Array<Extract<AgentEvent, { kind: 'turn-end' }>>;
    assert.equal([after!.error?.errorKind, after!.error?.resetsAt], ['rate-limit', null], version);
  }
});

test('claude: a subagent\'s messages (2.1.332 sends them; 2.1.197 only its prompt) are shown apart, never as the agent\'s text, and never count as the promise', () => {
  for (const name of ['subagent-2.1.332', 'subagent']) {
    const events = recorded(name);
    // As the runner does: only the agent's text goes to the promise detector.
    const detector = new CompletionDetector();
    for (const e of events) if (e.kind === 'text') detector.push(e.text);
    assert.is(detector.detected, false, `the subagent said the promise, the agent did not (${name})`);
    const text = events.filter((e): e is Extract<AgentEvent, { kind: 'text' }> => e.kind === 'text').map((e) => e.text).join('');
    assert.match(text, /^Main: delegating\.Main: the helper is done\./, name);
    assert.not.match(text, /Subagent here/, name);
    assert.equal(events.filter((e) => e.kind === 'tool').map((e) => (e as { name: string }).name), ['Task'], name);
  }
  const lines = rendered(recorded('subagent-2.1.332')).text.split('\n');
  assert.ok(lines.includes('[subagent] Subagent here. <promise>COMPLETE</promise>'), lines.join('\n'));
});

test('error words: classified the same for every agent; reset times and last lines read out', () => {
  assert.is(classifyAgentError('anything', 401), 'auth');
  assert.is(classifyAgentError('anything', 529), 'rate-limit');
  assert.is(classifyAgentError('Claude AI usage limit reached|1767225600'), 'rate-limit');
  assert.is(classifyAgentError("You've hit your limit · resets 3pm"), 'rate-limit');
  assert.is(classifyAgentError('Error: 429 Too Many Requests'), 'rate-limit');
  assert.is(classifyAgentError('Not logged in · Please run /login'), 'auth');
  assert.is(classifyAgentError('API Error: Unable to connect to API (ConnectionRefused)'), 'connection');
  assert.is(classifyAgentError('TypeError: x is undefined'), 'other');
  // Out of credit is permanent: it fails the loop like a wrong key, though OpenAI sends it as a 429.
  assert.is(classifyAgentError('You exceeded your current quota, please check your plan and billing details.', 429), 'auth');
  assert.is(classifyAgentError('insufficient_quota'), 'auth');
  assert.is(classifyAgentError('Your credit balance is too low to access the Anthropic API.', 400), 'auth');
  assert.is(classifyAgentError('Disk quota exceeded'), 'other', 'a quota is not a rate limit by itself');
  assert.is(resetTimeIn('Claude AI usage limit reached|1767225600'), 1767225600_000);
  assert.is(resetTimeIn('no time here'), null);
  assert.is(lastTellingLine('first\n\nsecond line\n  \n---\n'), 'second line');
  assert.is(toolDetail('Edit', { file_path: '/a/b.ts', old_string: 'x' }), '/a/b.ts');
  assert.is(toolDetail('Bash', { command: 'npm test\nnpm run lint' }), 'npm test … (+1 lines)');
  assert.is(toolDetail('TodoWrite', { todos: [1, 2, 3] }), '3 todos');
});

test('rendering: every string an agent supplies is plain text on one clipped line (model, tool name, retry, rate limit, error)', () => {
  const hostile = '\x1b[2J\x1b]0;owned\x07\x1bPq#0;2;0;0;0\x1b\\\x9b31mevil\r\nsecond line' + 'x'.repeat(300);
  const r = new EventRenderer('claude');
  const lines = [
    { kind: 'init', model: hostile },
    { kind: 'tool', name: hostile, detail: hostile },
    { kind: 'retry', text: hostile, delayMs: null, errorKind: 'other' },
    { kind: 'rate-limit', text: hostile, resetsAt: null },
    { kind: 'error', text: hostile, errorKind: 'other', resetsAt: null },
    { kind: 'notice', text: hostile },
  ].flatMap((ev) => r.render(ev as AgentEvent)).map((p) => ('line' in p ? p.line : ''));
  assert.is(lines.length, 6);
  for (const line of lines) {
    // eslint-disable-next-line no-control-regex
    const visible = line.replace(/\x1b\[[0-9;]*m/g, '');
    // eslint-disable-next-line no-control-regex
    assert.not.match(visible, /[\x00-\x1f\x7f-\x9f]/, `no control characters: ${JSON.stringify(line.slice(0, 60))}`);
    assert.ok(visible.startsWith('evil second line') || visible.includes(' evil second line'), visible.slice(0, 60));
    assert.ok(visible.length <= 2 * 200 + 40, `clipped: ${visible.length} characters`);
  }
  // A tool's output keeps its lines (and tabs), and nothing else that is not text.
  const result = r
    .render({ kind: 'tool-result', text: 'one\ttab\r\n\x1b]0;owned\x07two \x9b2Jthree\rfour\x00', isError: false } as AgentEvent)
    .map((p) => ('line' in p ? p.line.replace(/\x1b\[[0-9;]*m/g, '') : ''));
  assert.equal(result, ['  ⎿ one\ttab', '    two three', '    four']);
});

test('line editor: typing, editing, Enter sends, a lone Esc interrupts, escape sequences are not text', () => {
  const ed = new LineEditor();
  assert.equal(ed.feed('helo'), [{ kind: 'changed' }]);
  assert.equal(ed.feed('\x7flo'), [{ kind: 'changed' }]);
  assert.is(ed.line, 'hello');
  assert.equal(ed.feed('\x1b[D\x1bOA'), [], 'arrow keys are ignored');
  assert.equal(ed.feed(' world'), [{ kind: 'changed' }]);
  assert.equal(ed.feed('\x17'), [{ kind: 'changed' }]);
  assert.is(ed.line, 'hello ');
  assert.equal(ed.feed('there\r'), [{ kind: 'changed' }, { kind: 'submit', text: 'hello there' }]);
  assert.is(ed.line, '');
  assert.equal(ed.feed('\r'), [{ kind: 'changed' }], 'an empty line sends nothing');
  assert.equal(ed.feed('\x1b'), [{ kind: 'interrupt' }]);
  assert.equal(ed.feed('x\x03'), [{ kind: 'changed' }], 'Ctrl-C clears a line being typed');
  assert.equal(ed.feed('\x03'), [{ kind: 'interrupt' }], '… and interrupts when there is none');
  assert.equal(ed.feed('a\x15'), [{ kind: 'changed' }]);
  assert.is(ed.line, '');
  assert.equal(ed.feed('ünï\r\ncode'), [{ kind: 'changed' }, { kind: 'submit', text: 'ünï' }, { kind: 'changed' }]);
});

test('input line: agent text goes above it a whole line at a time; hiding it prints what was held', () => {
  const events: AgentEvent[] = [{ kind: 'text', text: 'one ' }, { kind: 'text', text: 'two\nthree ' }, { kind: 'text', text: 'four' }];
  const { raw, text } = rendered(events, (w) => w.showInput('› typing'));
  // On a terminal: the input line is erased, the finished line printed, the input line drawn again.
  assert.is(raw, '› typing\r\x1b[Kone two\r\n› typing');
  assert.is(text, 'one two\n› typing');
  const hidden = rendered(events, (w) => w.showInput('› x'), (w) => w.hideInput());
  assert.is(hidden.raw, '› x\r\x1b[Kone two\r\n› x\r\x1b[Kthree four', 'the held text comes out where the input line was');
  assert.is(hidden.text, 'one two\nthree four');
});

test('plain text of a terminal log: escapes out, CRLF as LF, a redrawn line as it last read, across chunks', () => {
  const p = new PlainLines();
  const out =
    p.push(Buffer.from('\x1b[1mbold\x1b[0m line\r\nprogress 10%\rprogress 90%\rdone\r')).toString() +
    p.push(Buffer.from('\n\x1b]0;title\x07tail\x1b[')).toString() +
    p.push(Buffer.from('31mred')).toString() +
    p.end().toString();
  assert.is(out, 'bold line\ndone\ntailred');
});

test.run();
