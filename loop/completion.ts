// Spots `<promise>COMPLETE</promise>` in an agent's terminal output as it streams: case-insensitive,
// whitespace-tolerant, blind to ANSI escape sequences (colors, cursor moves) and to where chunks split.
//
// It works on the output's bytes (whole UTF-8 characters), as the runner has them: escape sequences
// are stripped byte by byte, and the visible text is decoded and matched only when it holds a '>',
// the byte any match must end with — most chunks of a flood are never decoded at all.

const PROMISE = /<\s*promise\s*>\s*complete\s*<\s*\/\s*promise\s*>/i;
/** Visible bytes kept between chunks: enough for the promise with generous whitespace inside it. */
const TAIL_BYTES = 2048;
const GT = 0x3e;

const enum Escape {
  None,
  /** Saw ESC, waiting for the next byte to know the kind. */
  Start,
  /** ESC followed by intermediates (0x20–0x2f), waiting for the final byte. */
  Intermediate,
  /** CSI: parameters until a final byte 0x40–0x7e. */
  Csi,
  /** OSC / DCS / SOS / PM / APC: a string ended by BEL or ESC \. */
  Str,
  /** ESC inside a string: a backslash ends it. */
  StrEsc,
}

const isContinuation = (b: number) => (b & 0xc0) === 0x80;

export class CompletionDetector {
  private state = Escape.None;
  /** The last byte was 0xC2, which with a following 0x9B is the C1 CSI (U+009B). */
  private pendingC2 = false;
  /** The last visible bytes seen (up to TAIL_BYTES), kept in place: no allocation per chunk. */
  private readonly tail = Buffer.alloc(TAIL_BYTES);
  private tailLength = 0;
  private visible: Buffer = Buffer.alloc(4096);
  private found = false;

  get detected(): boolean {
    return this.found;
  }

  /** Forget what was seen (each iteration starts afresh). */
  reset(): void {
    this.state = Escape.None;
    this.pendingC2 = false;
    this.tailLength = 0;
    this.found = false;
  }

  /** Feeds output (text, or its UTF-8 bytes in whole characters); returns true once the promise has been seen. */
  push(chunk: string | Uint8Array): boolean {
    if (this.found) return true;
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    const n = this.stripEscapes(bytes);
    if (n === 0) return false;
    const visible = this.visible.subarray(0, n);
    if (visible.includes(GT)) {
      const text = Buffer.concat([this.tail.subarray(0, this.tailLength), visible]);
      // Decoding may start inside a character the tail cut: skip its continuation bytes.
      let start = 0;
      while (start < text.length && start < 3 && isContinuation(text[start]!)) start++;
      if (PROMISE.test(text.toString('utf8', start))) {
        this.found = true;
        this.tailLength = 0;
        return true;
      }
    }
    this.keepTail(visible);
    return false;
  }

  /** The tail becomes the last TAIL_BYTES of tail + visible. */
  private keepTail(visible: Buffer): void {
    if (visible.length >= TAIL_BYTES) {
      visible.copy(this.tail, 0, visible.length - TAIL_BYTES);
      this.tailLength = TAIL_BYTES;
      return;
    }
    const kept = Math.min(this.tailLength, TAIL_BYTES - visible.length);
    this.tail.copyWithin(0, this.tailLength - kept, this.tailLength);
    visible.copy(this.tail, kept);
    this.tailLength = kept + visible.length;
  }

  /** Copies the visible bytes of `chunk` into this.visible; returns how many. */
  private stripEscapes(chunk: Uint8Array): number {
    if (this.visible.length < chunk.length + 1) this.visible = Buffer.alloc(chunk.length + 1);
    const out = this.visible;
    let o = 0;
    let i = 0;
    if (this.pendingC2) {
      this.pendingC2 = false;
      if (chunk.length > 0 && chunk[0] === 0x9b) {
        this.state = Escape.Csi;
        i = 1;
      } else {
        out[o++] = 0xc2; // it was text after all
      }
    }
    // A character whose first byte an escape sequence took: its other bytes go with it.
    let swallowing = false;
    for (; i < chunk.length; i++) {
      const c = chunk[i]!;
      if (swallowing) {
        if (isContinuation(c)) continue;
        swallowing = false;
      }
      switch (this.state) {
        case Escape.None:
          if (c === 0x1b) {
            this.state = Escape.Start;
          } else if (c === 0xc2 && (i + 1 === chunk.length || chunk[i + 1] === 0x9b)) {
            if (i + 1 === chunk.length) {
              this.pendingC2 = true;
            } else {
              this.state = Escape.Csi;
              i++;
            }
          } else if (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) {
            // other control characters (BEL, backspace, …) are not text
          } else {
            out[o++] = c;
          }
          break;
        case Escape.Start:
          if (c === 0x5b) this.state = Escape.Csi; // [
          else if (c === 0x5d || c === 0x50 || c === 0x58 || c === 0x5e || c === 0x5f) this.state = Escape.Str; // ] P X ^ _
          else if (c >= 0x20 && c <= 0x2f) this.state = Escape.Intermediate;
          else {
            this.state = Escape.None;
            swallowing = c >= 0xc0;
          }
          break;
        case Escape.Intermediate:
          if (c < 0x20 || c > 0x2f) {
            this.state = Escape.None;
            swallowing = c >= 0xc0;
          }
          break;
        case Escape.Csi:
          if (c >= 0x40 && c <= 0x7e) this.state = Escape.None;
          else if (c === 0x1b) this.state = Escape.Start;
          break;
        case Escape.Str:
          if (c === 0x07) this.state = Escape.None;
          else if (c === 0x1b) this.state = Escape.StrEsc;
          break;
        case Escape.StrEsc:
          if (c === 0x5c) this.state = Escape.None;
          else {
            this.state = Escape.Str;
          }
          break;
      }
    }
    return o;
  }
}
