// Spots `<promise>COMPLETE</promise>` in an agent's terminal output as it streams: case-insensitive,
// whitespace-tolerant, blind to ANSI escape sequences (colors, cursor moves) and to where chunks split.
//
// It works on the output's bytes (whole UTF-8 characters), as the runner has them: escape sequences
// are stripped byte by byte, and the visible text is decoded and matched only when it holds a '>',
// the byte any match must end with — most chunks of a flood are never decoded at all.

import { ByteTail } from './byte-tail.js';
import { EscapeStripper } from './escapes.js';

const PROMISE = /<\s*promise\s*>\s*complete\s*<\s*\/\s*promise\s*>/i;
/** Visible bytes kept between chunks: enough for the promise with generous whitespace inside it. */
const TAIL_BYTES = 2048;
const GT = 0x3e;

const isContinuation = (b: number) => (b & 0xc0) === 0x80;

export class CompletionDetector {
  private readonly stripper = new EscapeStripper();
  /** The last visible bytes seen. */
  private readonly tail = new ByteTail(TAIL_BYTES);
  private found = false;

  get detected(): boolean {
    return this.found;
  }

  /** Forget what was seen (each iteration starts afresh). */
  reset(): void {
    this.stripper.reset();
    this.tail.clear();
    this.found = false;
  }

  /** Feeds output (text, or its UTF-8 bytes in whole characters); returns true once the promise has been seen. */
  push(chunk: string | Uint8Array): boolean {
    if (this.found) return true;
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    const visible = this.stripper.strip(bytes);
    if (visible.length === 0) return false;
    if (visible.includes(GT)) {
      const text = Buffer.concat([this.tail.bytes(), visible]);
      // Decoding may start inside a character the tail cut: skip its continuation bytes.
      let start = 0;
      while (start < text.length && start < 3 && isContinuation(text[start]!)) start++;
      if (PROMISE.test(text.toString('utf8', start))) {
        this.found = true;
        this.tail.clear();
        return true;
      }
    }
    this.tail.push(visible);
    return false;
  }
}
