// Reading an agent's JSON lines: one line in, its object (or, for a line that is not JSON, a notice
// to show it as it is), and the few narrowing helpers the adapters share.

import type { AgentEvent } from './types.js';

export type Json = Record<string, unknown>;

export const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
export const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
export const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

/** A stdout line as an object; a line that is not (a warning printed to stdout) as the events showing it. */
export function jsonLine(line: string): Json | AgentEvent[] {
  try {
    const v: unknown = JSON.parse(line);
    return isObject(v) ? v : [];
  } catch {
    return line.trim() === '' ? [] : [{ kind: 'notice', text: line }];
  }
}
