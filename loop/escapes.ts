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
  /** A character whose first byte an escape sequence took: its other bytes go with it (even in the next chunk). */
  private swallowing = false;
  private visible: Buffer = Buffer.alloc(4096);

  reset(): void {
    this.state = Escape.None;
    this.pendingC2 = false;
    this.swallowing = false;
  }

  /**
   * The visible bytes of `chunk` (a view that the next call overwrites): escape sequences and
   * control characters other than tab, newline and carriage return left out.
   */
  strip(chunk: Uint8Array): Buffer {
    const n = chunk.length;
    if (this.visible.length < n + 1) this.visible = Buffer.alloc(n + 1);
    const out = this.visible;
    // (State in locals: this runs over every byte an agent prints, a flood's included.)
    let state = this.state;
    let o = 0;
    let i = 0;
    if (this.pendingC2) {
      this.pendingC2 = false;
      if (n > 0 && chunk[0] === 0x9b) {
        state = Escape.Csi;
        i = 1;
      } else {
        out[o++] = 0xc2; // it was text after all
      }
    }
    let swallowing = this.swallowing;
    while (i < n) {
      let c = chunk[i]!;
      if (swallowing) {
        if (isContinuation(c)) {
          i++;
          continue;
        }
        swallowing = false;
      }
      if (state === Escape.None) {
        // Text, the bulk of any output: copied up to the next control byte or 0xC2.
        while (c >= 0x20 && c !== 0xc2) {
          out[o++] = c;
          if (++i === n) break;
          c = chunk[i]!;
        }
        if (i === n) break;
        if (c === 0x1b) {
          state = Escape.Start;
        } else if (c === 0xc2) {
          if (i + 1 === n) this.pendingC2 = true;
          else if (chunk[i + 1] === 0x9b) {
            state = Escape.Csi;
            i++;
          } else {
            out[o++] = c;
          }
        } else if (c === 0x09 || c === 0x0a || c === 0x0d) {
          out[o++] = c;
        } // other control characters (BEL, backspace, …) are not text
        i++;
        continue;
      }
      switch (state) {
        case Escape.Start:
          if (c === 0x5b) state = Escape.Csi; // [
          else if (c === 0x5d || c === 0x50 || c === 0x58 || c === 0x5e || c === 0x5f) state = Escape.Str; // ] P X ^ _
          else if (c >= 0x20 && c <= 0x2f) state = Escape.Intermediate;
          else {
            state = Escape.None;
            swallowing = c >= 0xc0;
          }
          break;
        case Escape.Intermediate:
          if (c < 0x20 || c > 0x2f) {
            state = Escape.None;
            swallowing = c >= 0xc0;
          }
          break;
        case Escape.Csi:
          if (c >= 0x40 && c <= 0x7e) state = Escape.None;
          else if (c === 0x1b) state = Escape.Start;
          break;
        case Escape.Str:
          if (c === 0x07) state = Escape.None;
          else if (c === 0x1b) state = Escape.StrEsc;
          break;
        case Escape.StrEsc:
          state = c === 0x5c ? Escape.None : Escape.Str;
          break;
      }
      i++;
    }
    this.state = state;
    this.swallowing = swallowing;
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
