// Claude Code (`claude`), driven by its own SDK protocol: `--print --input-format stream-json
// --output-format stream-json`. The prompt is the first user message on stdin; a line the user types
// is another user message (Claude Code hands a message that arrives mid-turn to the model in its next
// request); Esc is the protocol's interrupt request; closing stdin after the last turn ends the run.
// stdout is one JSON object per line: partial text as it streams, whole assistant messages (tool
// calls with their input), tool results, API retries, and a `result` per turn with its usage and the
// process's cost so far.

import { classifyAgentError, resetTimeIn } from './errors.js';
import { isObject, jsonLine, num, str, type Json } from './json.js';
import { toolDetail } from './tools.js';
import type { AgentErrorKind, AgentEvent, AgentProfile, RunUsage, StreamDialect } from './types.js';

function toolResultText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((c) => (isObject(c) && c.type === 'text' ? String(c.text ?? '') : isObject(c) && c.type === 'image' ? '[image]' : ''))
      .join('\n');
  }
  return '';
}

/** Usage of one `result` message: its turn's tokens, the cost given, and its model (the first one it names). */
function resultUsage(msg: Json, costUsd: number | null): RunUsage {
  const u = isObject(msg.usage) ? msg.usage : {};
  const models = isObject(msg.modelUsage) ? Object.keys(msg.modelUsage) : [];
  const input = num(u.input_tokens);
  const cacheRead = num(u.cache_read_input_tokens);
  const cacheWrite = num(u.cache_creation_input_tokens);
  return {
    // The API's input_tokens leave out what was read from or written to the cache.
    inputTokens: input === null ? null : input + (cacheRead ?? 0) + (cacheWrite ?? 0),
    outputTokens: num(u.output_tokens),
    cacheReadTokens: cacheRead,
    cacheWriteTokens: cacheWrite,
    costUsd,
    // "claude-opus-4-8[1m]": the context-window tag is not part of the model's name.
    model: models[0]?.replace(/\[[^\]]*\]$/, '') ?? null,
  };
}

/** Claude Code's own error words for a failed API call, classified. */
function apiError(text: string, status: number | null, reported: unknown): { text: string; errorKind: AgentErrorKind; resetsAt: number | null } {
  const byName: Record<string, AgentErrorKind> = {
    rate_limit: 'rate-limit',
    overloaded: 'rate-limit',
    authentication_failed: 'auth',
    billing_error: 'auth',
  };
  const errorKind = (typeof reported === 'string' ? byName[reported] : undefined) ?? classifyAgentError(text, status);
  return { text, errorKind, resetsAt: resetTimeIn(text) };
}

/**
 * A subagent's message (a Task tool call's agent; Claude Code 2.1.3xx sends them, 2.1.197 does not):
 * a dim line per text and tool call, apart from the agent's own text. Its words are not the agent's:
 * they neither count as the promise nor, as an error, fail the run (the agent hears of it as a tool result).
 */
function subagentLines(content: unknown[]): AgentEvent[] {
  return content.flatMap((c): AgentEvent[] => {
    if (!isObject(c)) return [];
    if (c.type === 'text' && typeof c.text === 'string' && c.text.trim() !== '') return [{ kind: 'notice', text: `[subagent] ${c.text}` }];
    if (c.type === 'tool_use') {
      const name = String(c.name ?? 'tool');
      return [{ kind: 'notice', text: `[subagent] ● ${name} ${toolDetail(name, c.input)}`.trimEnd() }];
    }
    return [];
  });
}

/** One run's parser: keeps what it needs to tell streamed text from text it has not shown yet. */
export function claudeParser(): (line: string) => AgentEvent[] {
  /** Messages whose text arrived as stream events (their whole-message copy is not shown again). */
  const streamed = new Set<string>();
  let messageId: string | null = null;
  /** Kinds of the content blocks open in the current streamed message, by index. */
  const blocks = new Map<number, string>();
  /** When the subscription limit that refused this turn lifts, as a `rejected` rate_limit_event said. */
  let limitResetsAt: number | null = null;
  /**
   * The process's cost so far: a result's `total_cost_usd` is the running total of every turn of the
   * process (its `usage` is the turn's own), so each turn counts what it added.
   */
  let costSoFar = 0;

  return (line: string): AgentEvent[] => {
    // A line that is not JSON (a warning printed to stdout) is shown as it is.
    const msg = jsonLine(line);
    if (Array.isArray(msg)) return msg;
    switch (msg.type) {
      case 'system': {
        if (msg.subtype === 'init') return [{ kind: 'init', model: str(msg.model)?.replace(/\[[^\]]*\]$/, '') ?? null }];
        if (msg.subtype === 'api_retry') {
          const status = num(msg.error_status);
          const delayMs = num(msg.retry_delay_ms);
          // Not a reset time: the delay has passed by the time the turn fails (Claude Code retries after
          // it), and a 529's is its own backoff. Without a real reset the runner's doubling backoff waits.
          const errorKind = apiError(String(msg.error ?? ''), status, msg.error).errorKind;
          const what = [status !== null ? `API error ${status}` : 'API error', str(msg.error)].filter(Boolean).join(' ');
          const when = delayMs !== null ? ` in ${Math.max(1, Math.round(delayMs / 1000))}s` : '';
          return [{ kind: 'retry', text: `${what}; retry ${num(msg.attempt) ?? '?'}/${num(msg.max_retries) ?? '?'}${when}`, delayMs, errorKind }];
        }
        return [];
      }
      case 'stream_event': {
        const ev = isObject(msg.event) ? msg.event : {};
        if (msg.parent_tool_use_id) return []; // a subagent's stream: its whole messages are enough
        if (ev.type === 'message_start') {
          messageId = isObject(ev.message) ? str(ev.message.id) : null;
          blocks.clear();
        } else if (ev.type === 'content_block_start' && isObject(ev.content_block)) {
          const kind = String(ev.content_block.type ?? '');
          blocks.set(num(ev.index) ?? -1, kind);
          if (kind === 'thinking' || kind === 'redacted_thinking') return [{ kind: 'thinking' }];
        } else if (ev.type === 'content_block_delta' && isObject(ev.delta) && ev.delta.type === 'text_delta') {
          if (messageId !== null) streamed.add(messageId);
          const text = str(ev.delta.text);
          return text ? [{ kind: 'text', text }] : [];
        } else if (ev.type === 'content_block_stop') {
          if (blocks.get(num(ev.index) ?? -1) === 'text') return [{ kind: 'text-end' }];
        }
        return [];
      }
      case 'assistant': {
        const m = isObject(msg.message) ? msg.message : {};
        const content = Array.isArray(m.content) ? m.content : [];
        if (msg.parent_tool_use_id) return subagentLines(content);
        const out: AgentEvent[] = [];
        if (msg.error !== undefined || m.model === '<synthetic>') {
          // Claude Code's own message about a failed API call ("API Error: 401 …", "Invalid API key …").
          const text = content.map((c) => (isObject(c) && c.type === 'text' ? String(c.text ?? '') : '')).join('').trim();
          if (text !== '') {
            const e = apiError(text, null, msg.error);
            out.push({ kind: 'error', ...e });
          }
          return out;
        }
        const alreadyShown = typeof m.id === 'string' && streamed.has(m.id);
        for (const c of content) {
          if (!isObject(c)) continue;
          if (c.type === 'text' && !alreadyShown && typeof c.text === 'string' && c.text !== '') {
            out.push({ kind: 'text', text: c.text }, { kind: 'text-end' });
          } else if (c.type === 'tool_use') {
            const name = String(c.name ?? 'tool');
            out.push({ kind: 'tool', name, detail: toolDetail(name, c.input) });
          }
        }
        return out;
      }
      case 'user': {
        if (msg.parent_tool_use_id) return [];
        const m = isObject(msg.message) ? msg.message : {};
        const content = Array.isArray(m.content) ? m.content : [];
        return content
          .filter((c): c is Json => isObject(c) && c.type === 'tool_result')
          .map((c) => ({ kind: 'tool-result', text: toolResultText(c.content), isError: c.is_error === true }));
      }
      case 'rate_limit_event': {
        // A subscription's window (OAuth only). "allowed" and "allowed_warning" name the window's reset
        // too, but only "rejected" means the account is refused until then.
        const info = isObject(msg.rate_limit_info) ? msg.rate_limit_info : {};
        if (info.status !== 'rejected') {
          limitResetsAt = null;
          return [];
        }
        const resetsAt = num(info.resetsAt);
        limitResetsAt = resetsAt === null ? null : resetsAt * 1000;
        const type = str(info.rateLimitType);
        return [{ kind: 'rate-limit', text: `usage limit reached${type ? ` (${type.replace(/_/g, ' ')})` : ''}`, resetsAt: limitResetsAt }];
      }
      case 'result': {
        // A refusal's reset belongs to the turn it refused.
        const refusedUntil = limitResetsAt;
        limitResetsAt = null;
        const total = num(msg.total_cost_usd);
        const usage = resultUsage(msg, total === null ? null : Math.max(0, total - costSoFar));
        if (total !== null) costSoFar = Math.max(costSoFar, total);
        if (msg.is_error !== true) return [{ kind: 'turn-end', usage, error: null }];
        const status = num(msg.api_error_status);
        const said = str(msg.result) ?? (Array.isArray(msg.errors) ? msg.errors.map(String).join('; ') : '');
        // An interrupt (Esc) ends the turn this way too, with no words of its own.
        const text = said || (msg.subtype === 'error_during_execution' ? 'the turn ended early (interrupted, or a tool failed it)' : `the turn ended with an error (${String(msg.subtype ?? 'unknown')})`);
        const e = apiError(text, status, undefined);
        // An overload (529) is the API's, not the account's: the subscription's reset says nothing about it.
        const overloaded = status === 529 || /overloaded/i.test(text);
        if (e.errorKind === 'rate-limit' && !overloaded) e.resetsAt ??= refusedUntil;
        return [{ kind: 'turn-end', usage, error: e }];
      }
      default:
        return [];
    }
  };
}

const userLine = (text: string) => JSON.stringify({ type: 'user', message: { role: 'user', content: text } }) + '\n';

let interruptCount = 0;

export const claudeDialect = (prompt: string): StreamDialect => ({
  initialInput: userLine(prompt),
  parser: claudeParser,
  userMessage: userLine,
  interrupt: () =>
    JSON.stringify({ type: 'control_request', request_id: `ralph-interrupt-${++interruptCount}`, request: { subtype: 'interrupt' } }) + '\n',
});

export const CLAUDE_ROOT_REFUSAL =
  'Claude Code will not run unattended as root (it refuses --dangerously-skip-permissions under root): run ralph as a non-root user, or `export IS_SANDBOX=1` inside a container or VM you can throw away';

export const claudeProfile: AgentProfile = {
  name: 'claude',
  command: 'claude',
  npmPackage: '@anthropic-ai/claude-code',
  // Claude Code's own rule, checked before anything starts: ralph never sets IS_SANDBOX itself.
  preflight: (env, uid) => (uid === 0 && env.IS_SANDBOX !== '1' && !env.CLAUDE_CODE_BUBBLEWRAP ? CLAUDE_ROOT_REFUSAL : null),
  // Claude Code retries a failed API call ten times over minutes, silently; ralph waits out rate
  // limits itself (the loop pauses), so a wrong key or a dead API should fail in seconds.
  envDefaults: { CLAUDE_CODE_MAX_RETRIES: '2' },
  launch: (prompt) => ({
    mode: 'stream',
    args: [
      '--print',
      '--verbose',
      '--input-format',
      'stream-json',
      '--output-format',
      'stream-json',
      '--include-partial-messages',
      '--dangerously-skip-permissions',
    ],
    dialect: claudeDialect(prompt),
  }),
};
