// Reads an agent's own error words (and the API status it gives, if any) as the runner needs them:
// an authentication or billing failure ends the loop at once, a rate or usage limit pauses it,
// anything else is a failed iteration. Shared by every adapter, so all agents are judged by one rule.
// Only words an adapter took from the agent's structured output come here: a custom command's last
// line is free text, and a word like "credentials" in it says nothing about the agent's API.

import type { AgentErrorKind } from './types.js';

// Out of credit (OpenAI's insufficient_quota, "check your plan and billing details"; Anthropic's
// "credit balance is too low"): permanent until someone pays, although OpenAI sends it as a 429.
const BILLING = /insufficient[ _-]?quota|exceeded your current quota|billing|credit balance/i;
const RATE_LIMIT = /rate[ _-]?limit|usage limit|hit your (?:usage )?limit|limit (?:reached|exceeded)|overloaded|too many requests/i;
const AUTH = /authenticat|api[ _-]?key|unauthori[sz]ed|not logged in|log ?in again|invalid (?:x-)?api|credential|forbidden/i;
const CONNECTION = /unable to connect|connection (?:refused|reset|error|failed)|econnrefused|enotfound|etimedout|network|fetch failed|socket hang up/i;

/** The agent's account is out of credit (classified `auth`, told apart in the loop's reason). */
export function isBillingError(text: string): boolean {
  return BILLING.test(text);
}

export function classifyAgentError(text: string, apiStatus: number | null = null): AgentErrorKind {
  if (BILLING.test(text)) return 'auth';
  if (apiStatus === 429 || apiStatus === 529) return 'rate-limit';
  if (apiStatus === 401 || apiStatus === 403) return 'auth';
  if (RATE_LIMIT.test(text)) return 'rate-limit';
  if (AUTH.test(text)) return 'auth';
  if (CONNECTION.test(text)) return 'connection';
  return 'other';
}

const MONTHS = ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'];
const UNIT_MS: Record<string, number> = { day: 86_400_000, hour: 3_600_000, hr: 3_600_000, minute: 60_000, min: 60_000, second: 1000, sec: 1000 };

/**
 * A reset time written into an agent's message, as epoch ms: the `…|1767225600` suffix of Claude's
 * "usage limit reached" message (epoch seconds), or Codex's "try again in 2 days 3 hours 5 minutes"
 * and "try again at 3:28 PM" (the next such clock time) or "try again at Dec 7th, 2026 3:28 PM". null
 * when there is none.
 */
export function resetTimeIn(text: string, now = Date.now()): number | null {
  const epoch = /\|(\d{10})\b/.exec(text);
  if (epoch) return Number(epoch[1]) * 1000;
  const after = /try again in ((?:\d+(?:\.\d+)?\s*(?:days?|hours?|hrs?|minutes?|mins?|seconds?|secs?|[dhms])\b[\s,and]*)+)/i.exec(text);
  if (after) {
    let ms = 0;
    for (const m of after[1]!.matchAll(/(\d+(?:\.\d+)?)\s*(day|hour|hr|minute|min|second|sec|d|h|m|s)/gi)) {
      const unit = m[2]!.toLowerCase();
      ms += Number(m[1]) * (UNIT_MS[unit] ?? { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1000 }[unit] ?? 0);
    }
    return ms > 0 ? now + ms : null;
  }
  // Codex names the day only when it is not today: "3:28 PM", or "Dec 7th, 2026 3:28 PM" (local time).
  const at = /try again at (?:([A-Za-z]{3}) (\d{1,2})(?:st|nd|rd|th)?, (\d{4}) )?(\d{1,2}):(\d{2})\s*([AP]M)?/i.exec(text);
  if (at) {
    const [, mon, day, year, h, min, ampm] = at;
    let hours = Number(h) % 12;
    if (!ampm) hours = Number(h);
    else if (ampm.toUpperCase() === 'PM') hours += 12;
    if (mon !== undefined) {
      const month = MONTHS.indexOf(mon.toLowerCase());
      return month === -1 ? null : new Date(Number(year), month, Number(day), hours, Number(min)).getTime();
    }
    const d = new Date(now);
    d.setHours(hours, Number(min), 0, 0);
    if (d.getTime() <= now) d.setDate(d.getDate() + 1);
    return d.getTime();
  }
  return null;
}

/** The last line of a text that says something (blank lines and bare punctuation skipped), trimmed. */
export function lastTellingLine(text: string): string | null {
  const lines = text.split(/\r?\n|\r/).map((l) => l.trim());
  for (let i = lines.length - 1; i >= 0; i--) if (/[A-Za-z0-9]/.test(lines[i]!)) return lines[i]!;
  return null;
}
