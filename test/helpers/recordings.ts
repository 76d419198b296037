// Recorded agent output (test/fixtures/recorded/, made by test/record-agents.ts from the real CLIs
// against the local fakes) fed through an adapter's parser, as the runner feeds it line by line.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { EventRenderer } from '../../agents/render.js';
import type { AgentEvent } from '../../agents/types.js';
import { FIXTURES } from './env.js';

export function recording(name: string): string[] {
  return readFileSync(join(FIXTURES, 'recorded', name), 'utf8').split('\n').filter((l) => l !== '');
}

/** Every event a fresh parser makes of a recording. */
export function parseRecording(parser: () => (line: string) => AgentEvent[], name: string): AgentEvent[] {
  const parse = parser();
  return recording(name).flatMap((line) => parse(line));
}

/** The events as a watcher sees them, colour removed: one string per rendered line or inline piece. */
export function rendered(agent: string, events: AgentEvent[]): string {
  const r = new EventRenderer(agent);
  let out = '';
  for (const ev of events) {
    for (const p of r.render(ev)) {
      if ('inline' in p) out += p.inline;
      else if ('line' in p) out += (out.endsWith('\n') || out === '' ? '' : '\n') + p.line + '\n';
      else if (!out.endsWith('\n') && out !== '') out += '\n';
    }
  }
  // eslint-disable-next-line no-control-regex
  return out.replace(/\x1b\[[0-9;]*m/g, '').replace(/\r\n/g, '\n');
}

export function ofKind<K extends AgentEvent['kind']>(events: AgentEvent[], kind: K): Array<Extract<AgentEvent, { kind: K }>> {
  return events.filter((e): e is Extract<AgentEvent, { kind: K }> => e.kind === kind);
}
