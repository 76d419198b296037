// Durations as users write them (`90s`, `45m`, `12h`, `7d`, `2w`) and as ralph prints them. Pure:
// the CLI's flags, push options and the runner's own lines share one rule.

const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 } as const;

/** Shortest iteration/stall timeout accepted. */
export const MIN_TIMEOUT_MS = 1_000;
/** Longest iteration/stall timeout accepted: a week (setTimeout's own limit is ~24 days). */
export const MAX_TIMEOUT_MS = 7 * UNIT_MS.d;
/** The accepted range of a timeout, as every message about one says it. */
export const TIMEOUT_RANGE = 'from 1s to 7d';

/** A timeout the runner can keep: whole milliseconds from MIN_TIMEOUT_MS to MAX_TIMEOUT_MS. */
export function timeoutInRange(ms: number): boolean {
  return Number.isInteger(ms) && ms >= MIN_TIMEOUT_MS && ms <= MAX_TIMEOUT_MS;
}

/** `7d`, `12h`, `30m`, `45s`, `2w` → milliseconds; null for anything else. */
export function parseDuration(text: string): number | null {
  const m = /^(\d+)\s*(s|m|h|d|w)$/.exec(text.trim());
  if (!m) return null;
  return Number(m[1]) * UNIT_MS[m[2] as keyof typeof UNIT_MS];
}

/** 850 ms → "850ms", 92 s → "1m 32s", 3 h 5 min → "3h 5m": the two largest units. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))}ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60 ? ` ${s % 60}s` : ''}`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60) ? ` ${Math.floor((s % 3600) / 60)}m` : ''}`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600) ? ` ${Math.floor((s % 86400) / 3600)}h` : ''}`;
}
