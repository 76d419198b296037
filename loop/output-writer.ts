// Everything the runner writes into a loop's output (the bytes every client sees and the log keeps):
// an agent's PTY bytes, rendered agent events, ralph's own `[ralph]` lines, and — while a user types
// to an agent that takes messages — the input line, kept as the last line of the screen. While that
// line shows, agent text is printed a whole line at a time above it, so the two never mix.

import type { Piece } from '../agents/render.js';
import type { AppendedChunk, OutputHistory } from './history.js';

const ERASE_LINE = '\r\x1b[K';

export class OutputWriter {
  /** The cursor is at the start of a line (as far as agent text goes). */
  private lineStart = true;
  /** The input line, when it shows. */
  private input: string | null = null;
  /** Agent text of a line not yet finished, held while the input line shows. */
  private held = '';

  constructor(private readonly history: OutputHistory) {}

  get atLineStart(): boolean {
    return this.input === null ? this.lineStart : this.held === '';
  }

  /** A PTY's bytes, as they are. */
  bytes(data: Buffer): AppendedChunk | null {
    const chunk = this.history.appendBytes(data);
    if (chunk !== null) this.lineStart = chunk.buf[chunk.buf.length - 1] === 0x0a;
    return chunk;
  }

  /** The PTY's stream ended: a character it left cut off is written as U+FFFD. */
  endBytes(): void {
    this.history.endBytes();
  }

  /** Text of the agent's (possibly part of a line). */
  text(text: string): void {
    if (text === '') return;
    if (this.input === null) {
      this.append(text);
      return;
    }
    const all = this.held + text;
    const nl = all.lastIndexOf('\n');
    if (nl === -1) {
      this.held = all;
      return;
    }
    this.held = all.slice(nl + 1);
    this.aboveInput(all.slice(0, nl + 1));
  }

  /** Rendered agent output. */
  pieces(pieces: Piece[]): void {
    for (const p of pieces) {
      if ('inline' in p) this.text(p.inline);
      else if ('line' in p) this.line(p.line);
      else if (!this.atLineStart) this.text('\r\n');
    }
  }

  /** A line of its own. */
  line(text: string): void {
    this.text(`${this.atLineStart ? '' : '\r\n'}${text}\r\n`);
  }

  /** One line of ralph's own. */
  say(text: string): void {
    this.line(`[ralph] ${text}`);
  }

  /** Shows (or redraws) the input line at the bottom. */
  showInput(line: string): void {
    if (this.input === null) {
      // Agent text cut mid-line goes on below the input line later; the line under it starts fresh.
      this.append(this.lineStart ? line : `\r\n${line}`);
    } else {
      this.append(ERASE_LINE + line);
    }
    this.input = line;
  }

  /** Removes the input line; agent text held meanwhile is printed. */
  hideInput(): void {
    if (this.input === null) return;
    const held = this.held;
    this.input = null;
    this.held = '';
    this.history.append(ERASE_LINE + held);
    this.lineStart = held === '';
  }

  /** Whole lines printed above the input line, which is drawn again below them. */
  private aboveInput(lines: string): void {
    this.append(ERASE_LINE + lines + this.input);
  }

  private append(text: string): void {
    if (text === '') return;
    this.history.append(text);
    // With the input line showing, the cursor sits after it; agent text's own line state is held.
    if (this.input === null) this.lineStart = text.endsWith('\n');
  }
}
