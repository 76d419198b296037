// Spots `<promise>COMPLETE</promise>` in an agent's terminal output as it streams: case-insensitive,
// whitespace-tolerant, blind to ANSI escape sequences (colors, cursor moves) and to where chunks split.

const PROMISE = /<\s*promise\s*>\s*complete\s*<\s*\/\s*promise\s*>/i;
/** Visible text kept between chunks: enough for the promise with generous whitespace inside it. */
const TAIL_CHARS = 512;

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

export class CompletionDetector {
  private state = Escape.None;
  private tail = '';
  private found = false;

  get detected(): boolean {
    return this.found;
  }

  /** Forget what was seen (each iteration starts afresh). */
  reset(): void {
    this.state = Escape.None;
    this.tail = '';
    this.found = false;
  }

  /** Feeds output; returns true once the promise has been seen. */
  push(chunk: string): boolean {
    if (this.found) return true;
    const visible = this.stripEscapes(chunk);
    if (visible === '') return false;
    const text = this.tail + visible;
    if (PROMISE.test(text)) {
      this.found = true;
      this.tail = '';
      return true;
    }
    this.tail = text.length > TAIL_CHARS ? text.slice(-TAIL_CHARS) : text;
    return false;
  }

  private stripEscapes(chunk: string): string {
    let out = '';
    let runStart = -1;
    const flush = (end: number) => {
      if (runStart !== -1) {
        out += chunk.slice(runStart, end);
        runStart = -1;
      }
    };
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk.charCodeAt(i);
      switch (this.state) {
        case Escape.None:
          if (c === 0x1b) {
            flush(i);
            this.state = Escape.Start;
          } else if (c === 0x9b) {
            flush(i);
            this.state = Escape.Csi;
          } else if (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) {
            flush(i); // other control characters (BEL, backspace, …) are not text
          } else if (runStart === -1) {
            runStart = i;
          }
          break;
        case Escape.Start:
          if (c === 0x5b) this.state = Escape.Csi; // [
          else if (c === 0x5d || c === 0x50 || c === 0x58 || c === 0x5e || c === 0x5f) this.state = Escape.Str; // ] P X ^ _
          else if (c >= 0x20 && c <= 0x2f) this.state = Escape.Intermediate;
          else this.state = Escape.None;
          break;
        case Escape.Intermediate:
          if (c < 0x20 || c > 0x2f) this.state = Escape.None;
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
          this.state = c === 0x5c ? Escape.None : Escape.Str;
          break;
      }
    }
    flush(chunk.length);
    return out;
  }
}
