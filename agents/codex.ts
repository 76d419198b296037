// Codex (`codex exec --json`): one process per turn, the prompt on stdin (`-`), stdout one JSON event
// per line — the thread's id, each command it runs (started, then finished with its output and exit
// code), file changes, MCP and web-search calls, its messages and reasoning summaries, retries and
// errors in its own words, and `turn.completed` with the thread's token totals. It reads nothing
// while it works: a line the user types is handed over by `codex exec resume <thread> -` when the
// turn has ended (StreamRun queues it), and Esc is SIGINT, as in a terminal. Its JSON names neither
// the model nor a cost.

import { classifyAgentError, resetTimeIn } from './errors.js';
import { isObject, jsonLine, num, str, type Json } from './json.js';
import type { AgentErrorKind, AgentEvent, AgentProfile, RunUsage, StreamDialect } from './types.js';


/**
 * The arguments every codex process of a loop gets: JSON events, no approvals and no sandbox (a
 * Ralph loop runs unattended and must commit; the equivalent of claude's
 * --dangerously-skip-permissions), and connection retries bounded, so a dead API fails the iteration
 * in about half a minute instead of waiting for the network forever (ralph's loop is the retry).
 */
const COMMON_ARGS = ['--json', '--dangerously-bypass-approvals-and-sandbox', '-c', 'features.unbounded_connection_retries=false'];

/** `/bin/bash -lc 'cmd'` (how codex reports a shell command) as the command itself. */
export function shellCommand(command: string): string {
  const m = /^\S*\/?(?:ba|z)?sh -l?c '([\s\S]*)'$/.exec(command);
  if (!m) return command;
  return m[1]!.replace(/'\\''/g, "'");
}

function oneLine(text: string): string {
  const lines = text.split('\n');
  return lines.length > 1 ? `${lines[0]} … (+${lines.length - 1} lines)` : text;
}

/** The status code in codex's words for a failed request ("unexpected status 401 Unauthorized: …", "last status: 429 …"). */
function statusIn(text: string): number | null {
  const m = /\bstatus:? (\d{3})\b/i.exec(text);
  return m ? Number(m[1]) : null;
}

function classify(text: string): { text: string; errorKind: AgentErrorKind; resetsAt: number | null } {
  const errorKind = classifyAgentError(text, statusIn(text));
  return { text, errorKind, resetsAt: errorKind === 'rate-limit' ? resetTimeIn(text) : null };
}

/** "Reconnecting... 2/5 (reason)" and "Reconnecting... waiting for network (reason)": codex retrying by itself. */
const RETRY = /^Reconnecting\.{3}\s*(.*?)\s*(?:\((.*)\))?$/s;

function item(ev: Json): Json {
  return isObject(ev.item) ? ev.item : {};
}

/** One run's parser. Codex reports the thread's running token totals; the parser turns them into each turn's share. */
export function codexParser(): (line: string) => AgentEvent[] {
  /** Items whose start was shown (their completion shows only the result). */
  const started = new Set<string>();
  let total = { input: 0, cached: 0, output: 0, cacheWrite: 0 };

  const tool = (it: Json): AgentEvent[] => {
    switch (it.type) {
      case 'command_execution':
        return [{ kind: 'tool', name: 'shell', detail: oneLine(shellCommand(String(it.command ?? ''))) }];
      case 'mcp_tool_call': {
        const args = isObject(it.arguments) ? Object.values(it.arguments).find((v) => typeof v === 'string') : undefined;
        return [{ kind: 'tool', name: `${String(it.server ?? 'mcp')}.${String(it.tool ?? 'tool')}`, detail: oneLine(String(args ?? '')) }];
      }
      case 'web_search':
        return [{ kind: 'tool', name: 'web_search', detail: String(it.query ?? '') }];
      case 'collab_tool_call':
        return [{ kind: 'tool', name: `agent.${String(it.tool ?? 'call')}`, detail: oneLine(String(it.prompt ?? '')) }];
      default:
        return [];
    }
  };

  const completed = (it: Json): AgentEvent[] => {
    const id = String(it.id ?? '');
    const shownStart = started.delete(id);
    switch (it.type) {
      case 'agent_message': {
        const text = str(it.text);
        return text ? [{ kind: 'text', text }, { kind: 'text-end' }] : [];
      }
      case 'reasoning': {
        const text = str(it.text)?.trim();
        return text ? [{ kind: 'notice', text: `✻ ${oneLine(text.replace(/\*\*/g, ''))}` }] : [{ kind: 'thinking' }];
      }
      case 'command_execution': {
        const out = shownStart ? [] : tool(it);
        const failed = it.status === 'failed' || it.status === 'declined' || (num(it.exit_code) ?? 0) !== 0;
        const text = String(it.aggregated_output ?? '') || (it.status === 'declined' ? 'declined' : '');
        return [...out, { kind: 'tool-result', text: failed && num(it.exit_code) !== null ? `${text}${text.endsWith('\n') || text === '' ? '' : '\n'}exit code ${num(it.exit_code)}` : text, isError: failed }];
      }
      case 'file_change': {
        const changes = Array.isArray(it.changes) ? it.changes.filter(isObject) : [];
        const detail = changes.map((c) => `${String(c.kind ?? 'update')} ${String(c.path ?? '?')}`).join(', ');
        const out: AgentEvent[] = [{ kind: 'tool', name: 'apply_patch', detail }];
        if (it.status === 'failed') out.push({ kind: 'tool-result', text: 'the patch did not apply', isError: true });
        return out;
      }
      case 'mcp_tool_call': {
        const out = shownStart ? [] : tool(it);
        const error = isObject(it.error) ? str(it.error.message) : null;
        const content = isObject(it.result) && Array.isArray(it.result.content) ? it.result.content : [];
        const text = error ?? content.map((c) => (isObject(c) && typeof c.text === 'string' ? c.text : '')).join('\n');
        return [...out, { kind: 'tool-result', text, isError: error !== null || it.status === 'failed' }];
      }
      case 'web_search':
      case 'collab_tool_call':
        return shownStart ? [] : tool(it);
      case 'todo_list':
        return todo(it);
      case 'error': {
        // A warning codex carries on after ("Model metadata … not found"): not the run's failure.
        const text = str(it.message);
        return text ? [{ kind: 'notice', text: `[codex] ${text}` }] : [];
      }
      default:
        return [];
    }
  };

  const todo = (it: Json): AgentEvent[] => {
    const items = Array.isArray(it.items) ? it.items.filter(isObject) : [];
    if (items.length === 0) return [];
    const done = items.filter((t) => t.completed === true).length;
    const next = items.find((t) => t.completed !== true);
    return [{ kind: 'notice', text: `plan ${done}/${items.length} done${next ? ` · next: ${String(next.text ?? '')}` : ''}` }];
  };

  const turnUsage = (u: Json): RunUsage => {
    // Totals of the thread so far (a resumed thread counts its earlier turns too): this turn's share.
    // input_tokens is every input token, as the API's: the cached ones are a part of it.
    const now = { input: num(u.input_tokens) ?? 0, cached: num(u.cached_input_tokens) ?? 0, output: num(u.output_tokens) ?? 0, cacheWrite: num(u.cache_write_input_tokens) ?? 0 };
    const share = {
      inputTokens: Math.max(0, now.input - total.input),
      cacheReadTokens: Math.max(0, now.cached - total.cached),
      outputTokens: Math.max(0, now.output - total.output),
      cacheWriteTokens: Math.max(0, now.cacheWrite - total.cacheWrite),
    };
    total = now;
    return { ...share, costUsd: null, model: null };
  };

  return (line: string): AgentEvent[] => {
    const ev = jsonLine(line);
    if (Array.isArray(ev)) return ev;
    switch (ev.type) {
      case 'thread.started': {
        const session = str(ev.thread_id);
        return [session ? { kind: 'init', model: null, session } : { kind: 'init', model: null }];
      }
      case 'item.started': {
        const it = item(ev);
        const out = it.type === 'todo_list' ? todo(it) : tool(it);
        if (out.length > 0 && it.type !== 'todo_list') started.add(String(it.id ?? ''));
        return out;
      }
      case 'item.updated': {
        const it = item(ev);
        return it.type === 'todo_list' ? todo(it) : [];
      }
      case 'item.completed':
        return completed(item(ev));
      case 'error': {
        const text = str(ev.message) ?? '';
        const retry = RETRY.exec(text);
        if (retry) {
          const reason = retry[2] ?? retry[1] ?? '';
          const attempt = /^\d+\/\d+$/.test(retry[1] ?? '') ? `retry ${retry[1]}` : retry[1] || 'retrying';
          // The attempt first: a long reason is clipped when shown, and the count must stay.
          return [{ kind: 'retry', text: `${attempt}: ${reason}`, delayMs: null, errorKind: classify(reason).errorKind }];
        }
        return text ? [{ kind: 'error', ...classify(text) }] : [];
      }
      case 'turn.completed':
        return [{ kind: 'turn-end', usage: isObject(ev.usage) ? turnUsage(ev.usage) : null, error: null }];
      case 'turn.failed': {
        const text = (isObject(ev.error) ? str(ev.error.message) : null) ?? 'the turn failed';
        return [{ kind: 'turn-end', usage: null, error: classify(text) }];
      }
      case 'request_user_input':
        // Nobody answers in `exec`: show what it asked, so a watcher can reply with a typed line.
        return [{ kind: 'notice', text: `codex asks: ${(Array.isArray(ev.questions) ? ev.questions : []).map((q) => (isObject(q) ? String(q.question ?? '') : '')).join(' / ')}` }];
      default:
        return [];
    }
  };
}

export const codexDialect = (prompt: string): StreamDialect => ({
  initialInput: prompt,
  parser: codexParser,
  continueSession: (session, text) => ({ args: ['exec', 'resume', ...COMMON_ARGS, session, '-'], input: text }),
  interruptSignal: 'SIGINT',
});

export const codexProfile: AgentProfile = {
  name: 'codex',
  command: 'codex',
  npmPackage: '@openai/codex',
  // The prompt goes on stdin (`-`): no argument-length limit, and codex does not wait for more input.
  launch: (prompt) => ({ mode: 'stream', args: ['exec', ...COMMON_ARGS, '-'], dialect: codexDialect(prompt) }),
};
