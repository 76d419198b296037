// Terminal output without its escape sequences (colours, cursor moves, titles), byte by byte and
// across chunk boundaries: what a reader of the text sees. Used where ralph reads an agent's output
// as words (the completion promise, the last error line) and by `ralph logs` into a file or a pipe.

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

export class EscapeStripper {
  private state = Escape.None;
  /** The last byte was 0xC2, which with a following 0x9B is the C1 CSI (U+009B). */
  private pendingC2 = false;
  private visible: Buffer = Buffer.alloc(4096);

  reset(): void {
    this.state = Escape.None;
    this.pendingC2 = false;
  }

  /**
   * The visible bytes of `chunk` (a view that the next call overwrites): escape sequences and
   * control characters other than tab, newline and carriage return left out.
   */
  strip(chunk: Uint8Array): Buffer {
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
    return out.subarray(0, o);
  }
}

/**
 * A terminal's output as plain lines, for a file or a pipe: escape sequences dropped, CRLF as LF, and a
 * carriage return that is not part of one starting its line over (as on a terminal), so a line the
 * output redrew (a progress bar, the input line) ends up as it last read.
 */
export class PlainLines {
  private readonly stripper = new EscapeStripper();
  private line: Buffer[] = [];
  private pendingCr = false;

  /** The complete lines `chunk` finishes (each ending in LF). */
  push(chunk: Uint8Array): Buffer {
    const visible = this.stripper.strip(chunk);
    const out: Buffer[] = [];
    let start = 0;
    for (let i = 0; i < visible.length; i++) {
      const c = visible[i]!;
      if (this.pendingCr) {
        this.pendingCr = false;
        if (c !== 0x0a) this.line = []; // a lone CR: the line starts over
      }
      if (c === 0x0d || c === 0x0a) {
        if (i > start) this.line.push(Buffer.from(visible.subarray(start, i)));
        start = i + 1;
        if (c === 0x0d) {
          this.pendingCr = true;
        } else {
          out.push(...this.line, Buffer.from('\n'));
          this.line = [];
        }
      }
    }
    if (start < visible.length) this.line.push(Buffer.from(visible.subarray(start)));
    return Buffer.concat(out);
  }

  /** What is left of an unfinished last line. */
  end(): Buffer {
    const rest = Buffer.concat(this.line);
    this.line = [];
    this.pendingCr = false;
    return rest;
  }
}
