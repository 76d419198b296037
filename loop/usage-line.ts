// One run's usage as the short line ralph prints after each iteration:
// "55.6k tokens in, 2.1k out, cache 40.1k read / 3.2k written, $0.0412 (claude-sonnet-4-5)" (the
// tokens in include those read from and written to the cache).

import type { RunUsage } from '../agents/types.js';

export function tokens(n: number): string {
  if (n < 1000) return String(n);
  if (n < 1_000_000) return `${(n / 1000).toFixed(n < 10_000 ? 1 : 0)}k`;
  return `${(n / 1_000_000).toFixed(1)}M`;
}

export function dollars(usd: number): string {
  return usd >= 1 ? `$${usd.toFixed(2)}` : `$${usd.toFixed(4)}`;
}

export function usageLine(u: RunUsage): string {
  const parts: string[] = [];
  if (u.inputTokens !== null) parts.push(`${tokens(u.inputTokens)} tokens in`);
  if (u.outputTokens !== null) parts.push(`${tokens(u.outputTokens)} out`);
  if (u.cacheReadTokens !== null || u.cacheWriteTokens !== null) {
    parts.push(`cache ${tokens(u.cacheReadTokens ?? 0)} read / ${tokens(u.cacheWriteTokens ?? 0)} written`);
  }
  if (u.costUsd !== null) parts.push(dollars(u.costUsd));
  const text = parts.join(', ') || 'no usage reported';
  return u.model ? `${text} (${u.model})` : text;
}
