// Reads an agent's own error words (and the API status it gives, if any) as the runner needs them:
// an authentication failure ends the loop at once, a rate or usage limit pauses it, anything else
// is a failed iteration. Shared by every adapter, so all agents are judged by one rule.

import type { AgentErrorKind } from './types.js';

const RATE_LIMIT = /rate[ _-]?limit|usage limit|hit your (?:usage )?limit|limit (?:reached|exceeded)|overloaded|too many requests|quota/i;
const AUTH = /authenticat|api[ _-]?key|unauthori[sz]ed|not logged in|log ?in again|invalid (?:x-)?api|credential|forbidden/i;
const CONNECTION = /unable to connect|connection (?:refused|reset|error)|econnrefused|enotfound|etimedout|network|fetch failed|socket hang up/i;

export function classifyAgentError(text: string, apiStatus: number | null = null): AgentErrorKind {
  if (apiStatus === 429 || apiStatus === 529) return 'rate-limit';
  if (apiStatus === 401 || apiStatus === 403) return 'auth';
  if (RATE_LIMIT.test(text)) return 'rate-limit';
  if (AUTH.test(text)) return 'auth';
  if (CONNECTION.test(text)) return 'connection';
  return 'other';
}

/**
 * A reset time written into an agent's message, as epoch ms: the `…|1767225600` suffix of Claude's
 * "usage limit reached" message (epoch seconds). null when there is none.
 */
export function resetTimeIn(text: string): number | null {
  const m = /\|(\d{10})\b/.exec(text);
  return m ? Number(m[1]) * 1000 : null;
}

/** The last line of a text that says something (blank lines and bare punctuation skipped), trimmed. */
export function lastTellingLine(text: string): string | null {
  const lines = text.split(/\r?\n|\r/).map((l) => l.trim());
  for (let i = lines.length - 1; i >= 0; i--) if (/[A-Za-z0-9]/.test(lines[i]!)) return lines[i]!;
  return null;
}
