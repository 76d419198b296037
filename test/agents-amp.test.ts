// The Amp adapter. Amp runs its agent on its own servers and cannot be pointed at a local fake here,
// so these lines are WRITTEN to Amp's documented stream JSON (the types of its SDK,
// @sourcegraph/amp-sdk: system init, assistant, user, result / error result), not recorded.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ampParser, ampProfile } from '../agents/amp.js';
import type { AgentEvent } from '../agents/types.js';
import { ofKind, rendered } from './helpers/recordings.js';

const S = 'T-019b9d03-62e3-772f-9780-3e637f90eaec';
const lines = [
  { type: 'system', subtype: 'init', session_id: S, cwd: '/w', tools: ['Bash', 'Read', 'edit_file'], mcp_servers: [] },
  {
    type: 'assistant',
    session_id: S,
    parent_tool_use_id: null,
    message: {
      id: 'm1',
      type: 'message',
      role: 'assistant',
      model: 'claude-sonnet-4-5',
      content: [
        { type: 'text', text: 'Marking the next story.' },
        { type: 'tool_use', id: 'tu1', name: 'Bash', input: { cmd: 'node mark-story.mjs', cwd: '/w' } },
      ],
      stop_reason: 'tool_use',
      stop_sequence: null,
      usage: { input_tokens: 900, output_tokens: 40 },
    },
  },
  {
    type: 'user',
    session_id: S,
    parent_tool_use_id: null,
    message: { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'tu1', content: 'marked US-001 passing\nALL STORIES PASS', is_error: false }] },
  },
  {
    type: 'assistant',
    session_id: S,
    parent_tool_use_id: null,
    message: { id: 'm2', type: 'message', role: 'assistant', model: 'claude-sonnet-4-5', content: [{ type: 'text', text: 'Done. <promise>COMPLETE</promise>' }], stop_reason: 'end_turn', stop_sequence: null },
  },
  { type: 'result', subtype: 'success', session_id: S, is_error: false, result: 'Done.', duration_ms: 5200, num_turns: 2, usage: { input_tokens: 2000, output_tokens: 90, cache_read_input_tokens: 500 } },
];

function parse(objs: unknown[]): AgentEvent[] {
  const p = ampParser();
  return objs.flatMap((o) => p(JSON.stringify(o)));
}

test('a turn: the thread, text, the Bash call by its cmd, its result, usage with the model', () => {
  const events = parse(lines);
  assert.equal(ofKind(events, 'init'), [{ kind: 'init', model: null, session: S }]);
  assert.equal(ofKind(events, 'tool'), [{ kind: 'tool', name: 'Bash', detail: 'node mark-story.mjs' }]);
  assert.equal(ofKind(events, 'turn-end'), [
    // Claude's format: 2000 input besides the 500 read from the cache.
    { kind: 'turn-end', usage: { inputTokens: 2500, outputTokens: 90, cacheReadTokens: 500, cacheWriteTokens: null, costUsd: null, model: 'claude-sonnet-4-5' }, error: null },
  ]);
  assert.match(rendered('amp', events), /Marking the next story\.\n● Bash node mark-story\.mjs\n  ⎿ marked US-001 passing\n    ALL STORIES PASS\nDone\. <promise>COMPLETE<\/promise>\n/);
});

test('an error result carries amp’s words from its `error` field, classified', () => {
  const fail = (error: string) =>
    ofKind(parse([lines[0], { type: 'result', subtype: 'error_during_execution', session_id: S, is_error: true, error, duration_ms: 10, num_turns: 1 }]), 'turn-end')[0]!.error;
  assert.equal(fail('Unauthorized: invalid API key'), { text: 'Unauthorized: invalid API key', errorKind: 'auth', resetsAt: null });
  assert.equal(fail('Out of free credits; usage limit reached')?.errorKind, 'rate-limit');
  assert.equal(fail('Unable to connect to ampcode.com')?.errorKind, 'connection');
});

test('launch: stream JSON both ways; typed lines are user messages of text blocks; no Esc', () => {
  const launch = ampProfile.launch('the prompt');
  assert.is(launch.mode, 'stream');
  if (launch.mode !== 'stream') return;
  assert.equal(launch.args, ['--execute', '--stream-json', '--stream-json-input', '--dangerously-allow-all']);
  assert.equal(JSON.parse(launch.dialect.initialInput!), { type: 'user', message: { role: 'user', content: [{ type: 'text', text: 'the prompt' }] } });
  assert.equal(JSON.parse(launch.dialect.userMessage!('also this')).message.content, [{ type: 'text', text: 'also this' }]);
  assert.is(launch.dialect.interrupt, undefined);
  assert.is(launch.dialect.continueSession, undefined);
});

test.run();
