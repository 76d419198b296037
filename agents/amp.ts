// Amp (`amp --execute --stream-json --stream-json-input`): Amp's stream JSON is Claude Code's format
// (system init, whole assistant messages with tool calls, user messages with tool results, a result
// per turn), so Claude's parser reads it; this adapter adds what Amp does differently: the model is
// named on its assistant messages, a failed turn says why in `error`, and a typed line is a user
// message whose content is a list of text blocks. Amp documents no interrupt message, so Esc is not
// offered; a run ends when its input does, as Claude's. Amp runs its agent on its own servers
// (ampcode.com): it cannot be pointed at a local fake model, so this adapter is tested with stream
// JSON written to the documented format, not recorded from the CLI.

import { claudeParser } from './claude.js';
import { classifyAgentError, resetTimeIn } from './errors.js';
import { isObject } from './json.js';
import type { AgentEvent, AgentProfile, StreamDialect } from './types.js';


export function ampParser(): (line: string) => AgentEvent[] {
  const claude = claudeParser();
  let model: string | null = null;
  return (line: string): AgentEvent[] => {
    let msg: unknown = null;
    try {
      msg = JSON.parse(line);
    } catch {
      /* not JSON: Claude's parser shows it as a notice */
    }
    if (isObject(msg)) {
      if (msg.type === 'system' && msg.subtype === 'init') {
        return [typeof msg.session_id === 'string' ? { kind: 'init', model: null, session: msg.session_id } : { kind: 'init', model: null }];
      }
      if (msg.type === 'assistant' && isObject(msg.message) && typeof msg.message.model === 'string') model = msg.message.model;
      if (msg.type === 'result' && msg.is_error === true && typeof msg.error === 'string' && msg.error !== '') {
        // Claude's parser looks for the words in `result`; Amp puts them in `error`.
        msg = { ...msg, result: msg.error };
        line = JSON.stringify(msg);
      }
    }
    return claude(line).map((ev) => {
      if (ev.kind !== 'turn-end') return ev;
      const usage = ev.usage ? { ...ev.usage, model: ev.usage.model ?? model } : null;
      const error = ev.error ? { ...ev.error, errorKind: classifyAgentError(ev.error.text), resetsAt: ev.error.resetsAt ?? resetTimeIn(ev.error.text) } : null;
      return { ...ev, usage, error };
    });
  };
}

const userLine = (text: string) => JSON.stringify({ type: 'user', message: { role: 'user', content: [{ type: 'text', text }] } }) + '\n';

export const ampDialect = (prompt: string): StreamDialect => ({
  initialInput: userLine(prompt),
  parser: ampParser,
  userMessage: userLine,
});

export const ampProfile: AgentProfile = {
  name: 'amp',
  command: 'amp',
  npmPackage: '@ampcode/cli',
  // --dangerously-allow-all: no confirmation prompts (a Ralph loop runs unattended), as claude's
  // --dangerously-skip-permissions.
  launch: (prompt) => ({
    mode: 'stream',
    args: ['--execute', '--stream-json', '--stream-json-input', '--dangerously-allow-all'],
    dialect: ampDialect(prompt),
  }),
};
