// Agent events as readable terminal text: the assistant's words as they stream, one line per tool
// call (name and what it does), the first lines of each tool result, retries and errors in the
// agent's own words. Shared by every agent; colour is plain SGR, which `ralph logs` strips when it
// does not print to a terminal.

import { oneLine, plainText } from './safe-text.js';
import type { AgentEvent } from './types.js';

/** A piece of rendered output: text that continues the current line, or a line of its own. */
export type Piece = { inline: string } | { line: string } | { endLine: true };

const DIM = '\x1b[2m';
const BOLD = '\x1b[1m';
const RED = '\x1b[31m';
const YELLOW = '\x1b[33m';
const CYAN = '\x1b[36m';
const RESET = '\x1b[0m';

/** Lines of a tool result shown (the rest is counted). */
const RESULT_LINES = 4;
/** Characters of one shown line. */
const LINE_CHARS = 200;

function clip(line: string): string {
  return line.length > LINE_CHARS ? line.slice(0, LINE_CHARS - 1) + '…' : line;
}

/** An agent-supplied string shown within one line: no control characters, no line breaks, clipped. */
function shortLine(text: string): string {
  return clip(oneLine(text));
}

function clock(epochMs: number): string {
  const d = new Date(epochMs);
  return `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
}

export class EventRenderer {
  /** The last error line shown: a turn that ends with the same words does not repeat them. */
  private lastError: string | null = null;

  constructor(private readonly agent: string) {}

  render(ev: AgentEvent): Piece[] {
    switch (ev.kind) {
      case 'init':
        return ev.model ? [{ line: `${DIM}${this.agent} · ${shortLine(ev.model)}${RESET}` }] : [];
      case 'text':
        return [{ inline: plainText(ev.text).replace(/\n/g, '\r\n') }];
      case 'text-end':
        return [{ endLine: true }];
      case 'thinking':
        return [{ line: `${DIM}✻ thinking…${RESET}` }];
      case 'tool':
        return [{ line: `${CYAN}●${RESET} ${BOLD}${shortLine(ev.name)}${RESET}${ev.detail ? ` ${shortLine(ev.detail)}` : ''}` }];
      case 'tool-result':
        return this.result(ev.text, ev.isError);
      case 'retry':
        return [{ line: `${YELLOW}[${this.agent}] ${shortLine(ev.text)}${RESET}` }];
      case 'rate-limit':
        return [{ line: `${YELLOW}[${this.agent}] ${shortLine(ev.text)}${ev.resetsAt ? `; resets ${clock(ev.resetsAt)}` : ''}${RESET}` }];
      case 'error':
        this.lastError = ev.text;
        return [{ line: `${RED}[${this.agent}] ${shortLine(ev.text)}${RESET}` }];
      case 'turn-end':
        if (ev.error === null || ev.error.text === this.lastError) return [{ endLine: true }];
        this.lastError = ev.error.text;
        return [{ line: `${RED}[${this.agent}] ${shortLine(ev.error.text)}${RESET}` }];
      case 'notice':
        return [{ line: `${DIM}${shortLine(ev.text)}${RESET}` }];
    }
  }

  private result(text: string, isError: boolean): Piece[] {
    const lines = plainText(text)
      .split('\n')
      .map((l) => l.trimEnd());
    while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    if (lines.length === 0) lines.push(isError ? '(error, no output)' : '(no output)');
    const colour = isError ? RED : DIM;
    const shown = lines.slice(0, RESULT_LINES).map((l, i) => ({ line: `${colour}${i === 0 ? '  ⎿ ' : '    '}${clip(l)}${RESET}` }));
    if (lines.length > RESULT_LINES) shown.push({ line: `${DIM}    … +${lines.length - RESULT_LINES} lines${RESET}` });
    return shown;
  }
}
