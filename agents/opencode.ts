// OpenCode (`opencode run --format json`): one process per turn, the prompt on stdin, stdout one JSON
// event per line, each naming the session — a step's start and finish (with that model request's
// tokens and cost), each text part when complete, each tool call when it has finished (its input,
// output or error), and session errors in its own words. A tool call shows when it ends, not when it
// starts (its JSON says nothing earlier), and the model is not named. It reads nothing while it works:
// a typed line goes on with the session by `opencode run --session <id>` when the turn has ended, and
// Esc is SIGINT.

import { classifyAgentError, resetTimeIn } from './errors.js';
import { isObject, jsonLine, num, str, type Json } from './json.js';
import { toolDetail } from './tools.js';
import type { AgentErrorKind, AgentEvent, AgentProfile, RunUsage, StreamDialect } from './types.js';


/**
 * Every opencode process of a loop: JSON events, and permissions granted without asking (`--auto`:
 * a Ralph loop runs unattended, as claude's --dangerously-skip-permissions; rules the user set to
 * deny still deny).
 */
const COMMON_ARGS = ['run', '--format', 'json', '--auto'];

function classify(text: string, status: number | null): { text: string; errorKind: AgentErrorKind; resetsAt: number | null } {
  const errorKind = classifyAgentError(text, status);
  return { text, errorKind, resetsAt: errorKind === 'rate-limit' ? resetTimeIn(text) : null };
}

/** The words of an opencode error object (`{name, data: {message, statusCode}}`). */
function errorWords(e: unknown): { text: string; status: number | null } {
  if (!isObject(e)) return { text: String(e ?? 'unknown error'), status: null };
  const data = isObject(e.data) ? e.data : {};
  const text = str(data.message) ?? str(e.message) ?? str(e.name) ?? 'unknown error';
  return { text, status: num(data.statusCode) };
}

/** One run's parser: sums the tokens of a turn's steps and reports them when the turn ends. */
export function opencodeParser(): (line: string) => AgentEvent[] {
  let session: string | null = null;
  let usage: RunUsage | null = null;

  const addStep = (part: Json) => {
    const t = isObject(part.tokens) ? part.tokens : {};
    const cache = isObject(t.cache) ? t.cache : {};
    const step = { input: num(t.input) ?? 0, output: num(t.output) ?? 0, read: num(cache.read) ?? 0, write: num(cache.write) ?? 0, cost: num(part.cost) };
    usage ??= { inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, costUsd: null, model: null };
    // opencode counts input without what was read from or written to the cache; ralph's include both.
    usage.inputTokens! += step.input + step.read + step.write;
    usage.outputTokens! += step.output;
    usage.cacheReadTokens! += step.read;
    usage.cacheWriteTokens! += step.write;
    if (step.cost !== null) usage.costUsd = (usage.costUsd ?? 0) + step.cost;
  };
  const takeUsage = () => {
    const u = usage;
    usage = null;
    return u;
  };

  return (line: string): AgentEvent[] => {
    const ev = jsonLine(line);
    if (Array.isArray(ev)) return ev;
    const out: AgentEvent[] = [];
    const id = str(ev.sessionID);
    if (id && session === null) {
      session = id;
      out.push({ kind: 'init', model: null, session: id });
    }
    const part = isObject(ev.part) ? ev.part : {};
    switch (ev.type) {
      case 'text': {
        const text = str(part.text);
        if (text) out.push({ kind: 'text', text }, { kind: 'text-end' });
        break;
      }
      case 'reasoning': {
        const text = str(part.text)?.trim();
        out.push(text ? { kind: 'notice', text: `✻ ${text.split('\n')[0]}` } : { kind: 'thinking' });
        break;
      }
      case 'tool_use': {
        const name = String(part.tool ?? 'tool');
        const state = isObject(part.state) ? part.state : {};
        out.push({ kind: 'tool', name, detail: toolDetail(name, state.input) || String(state.title ?? '') });
        if (state.status === 'error') out.push({ kind: 'tool-result', text: String(state.error ?? 'failed'), isError: true });
        else {
          const meta = isObject(state.metadata) ? state.metadata : {};
          const exit = num(meta.exit);
          const text = String(state.output ?? '');
          out.push({ kind: 'tool-result', text: exit !== null && exit !== 0 ? `${text}${text.endsWith('\n') || !text ? '' : '\n'}exit code ${exit}` : text, isError: exit !== null && exit !== 0 });
        }
        break;
      }
      case 'step_finish':
        addStep(part);
        // A step that ends in tool calls goes on; any other reason ends the turn.
        if (part.reason !== 'tool-calls') out.push({ kind: 'turn-end', usage: takeUsage(), error: null });
        break;
      case 'error': {
        const { text, status } = errorWords(ev.error);
        const e = classify(text, status);
        out.push({ kind: 'error', ...e }, { kind: 'turn-end', usage: takeUsage(), error: e });
        break;
      }
      default:
        break;
    }
    return out;
  };
}

export const opencodeDialect = (prompt: string): StreamDialect => ({
  initialInput: prompt,
  parser: opencodeParser,
  continueSession: (session, text) => ({ args: [...COMMON_ARGS, '--session', session], input: text }),
  interruptSignal: 'SIGINT',
});

export const opencodeProfile: AgentProfile = {
  name: 'opencode',
  command: 'opencode',
  npmPackage: 'opencode-ai',
  // The prompt goes on stdin: no argument-length limit (and opencode quotes a message given as arguments).
  launch: (prompt) => ({ mode: 'stream', args: COMMON_ARGS, dialect: opencodeDialect(prompt) }),
};
