// A loop's terminal output as the TUI shows it: the bytes go through a headless xterm (the same
// emulator the runner mirrors its screen with), and the pane draws that emulator's buffer, cell by
// cell. So carriage returns, cursor movement, clears, colours and wide characters come out as the
// agent meant them, and the emulator's scrollback is what PgUp scrolls through.
//
// Parsing is the expensive part (an xterm parses ~50 MB/s on a 2-core box, and a flooding agent sends
// ~30 MB/s), so a live pane parses at most PARSE_BUDGET_BYTES per window and, when output piles up
// beyond MAX_LAG_BYTES, skips to the newest RESTART_BYTES (from a line start): the pane shows the
// newest output at a bounded cost instead of falling behind. loop/screen.ts does the same for replay.

import { CURSOR_MARKER, visibleWidth } from './renderer.js';
import xtermHeadless, { type IBufferCell, type IBufferLine } from '@xterm/headless';
import type { PaneView } from './state.js';

const { Terminal } = xtermHeadless;
type XTerm = InstanceType<typeof Terminal>;

const WINDOW_MS = 100;
const PARSE_BUDGET_BYTES = 256 * 1024;
const MAX_LAG_BYTES = 256 * 1024;
const RESTART_BYTES = 64 * 1024;
/** Handed to the emulator in slices of this size, so that no single parse holds up a keystroke. */
const SLICE_CHARS = 16 * 1024;

export interface PaneTerminalOptions {
  scrollback: number;
  /** Parse everything, however much (a one-off load of a log's tail), instead of keeping to the budget. */
  unbudgeted?: boolean;
  /** After each parsed slice. */
  onParsed?(): void;
}

export class PaneTerminal {
  private readonly term: XTerm;
  private pending: string[] = [];
  private pendingChars = 0;
  private writing = false;
  private windowStart = 0;
  private windowBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private idleWaiters: Array<() => void> = [];
  private disposed = false;
  private cell: IBufferCell | undefined;
  /** Output skipped to keep up with a flood (characters). */
  skipped = 0;

  constructor(
    cols: number,
    rows: number,
    private readonly opts: PaneTerminalOptions,
  ) {
    this.term = new Terminal({ cols, rows, scrollback: opts.scrollback, allowProposedApi: true });
  }

  get cols(): number {
    return this.term.cols;
  }

  get rows(): number {
    return this.term.rows;
  }

  /** Output to show. Never blocks: it is parsed in slices, off this call. */
  write(data: string): void {
    if (this.disposed || data === '') return;
    this.pending.push(data);
    this.pendingChars += data.length;
    this.pump();
  }

  /** Empties the screen and scrollback (before a screen replay). */
  reset(): void {
    this.pending = [];
    this.pendingChars = 0;
    this.term.reset();
  }

  resize(cols: number, rows: number): void {
    if (!this.disposed && (cols !== this.term.cols || rows !== this.term.rows)) this.term.resize(cols, rows);
  }

  /** Resolves when everything written so far has been parsed. */
  whenIdle(): Promise<void> {
    if (!this.writing && this.pendingChars === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Lines of the buffer above the bottom screen (what PgUp can reach). */
  get above(): number {
    return this.term.buffer.active.baseY;
  }

  /**
   * The pane as drawn: `offset` lines up from the bottom screen (0: the live screen), each row
   * exactly `cols` wide. With `showCursor`, the emulator's cursor is marked for the renderer.
   */
  view(offset: number, color: boolean, showCursor = false): PaneView {
    const buf = this.term.buffer.active;
    const top = Math.max(0, buf.baseY - Math.max(0, offset));
    const cursorRow = showCursor && top === buf.baseY ? buf.cursorY : -1;
    const lines: string[] = [];
    for (let y = 0; y < this.term.rows; y++) {
      const line = buf.getLine(top + y);
      lines.push(line ? this.drawRow(line, color, y === cursorRow ? buf.cursorX : -1) : ' '.repeat(this.term.cols));
    }
    return { cols: this.term.cols, lines, cursor: cursorRow === -1 ? null : { row: cursorRow, col: buf.cursorX } };
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    clearTimeout(this.timer);
    this.pending = [];
    for (const w of this.idleWaiters.splice(0)) w();
    this.term.dispose();
  }

  private pump(): void {
    if (this.disposed || this.writing) return;
    if (this.pendingChars === 0) {
      for (const w of this.idleWaiters.splice(0)) w();
      return;
    }
    if (!this.opts.unbudgeted) {
      if (this.pendingChars > MAX_LAG_BYTES) this.skipAhead();
      const now = performance.now();
      if (now - this.windowStart >= WINDOW_MS) {
        this.windowStart = now;
        this.windowBytes = 0;
      }
      if (this.windowBytes >= PARSE_BUDGET_BYTES) {
        if (!this.timer) {
          this.timer = setTimeout(() => {
            this.timer = undefined;
            this.pump();
          }, this.windowStart + WINDOW_MS - now);
        }
        return;
      }
    }
    let slice = '';
    while (this.pending.length > 0 && slice.length < SLICE_CHARS) {
      const next = this.pending[0]!;
      const room = SLICE_CHARS - slice.length;
      if (next.length <= room) {
        slice += this.pending.shift()!;
      } else {
        // Cut between UTF-16 units of a surrogate pair never: xterm takes strings of whole code points.
        let cut = room;
        if (/[\ud800-\udbff]/.test(next[cut - 1]!)) cut -= 1;
        slice += next.slice(0, cut);
        this.pending[0] = next.slice(cut);
      }
    }
    this.pendingChars -= slice.length;
    this.windowBytes += slice.length;
    this.writing = true;
    this.term.write(slice, () => {
      this.writing = false;
      this.opts.onParsed?.();
      // Parsing yields between slices, so keys and frames get their turn.
      setImmediate(() => this.pump());
    });
  }

  /** Too much piled up: keep the newest RESTART_BYTES, from their first line start. */
  private skipAhead(): void {
    const all = this.pending.join('');
    let tail = all.slice(-RESTART_BYTES);
    const nl = tail.indexOf('\n');
    if (nl !== -1) tail = tail.slice(nl + 1);
    this.skipped += all.length - tail.length;
    // Whatever attributes and line the dropped output left behind do not carry into the tail.
    this.pending = ['\x1b[0m\r\n' + tail];
    this.pendingChars = this.pending[0]!.length;
  }

  private drawRow(line: IBufferLine, color: boolean, cursorCol: number): string {
    const cols = this.term.cols;
    this.cell ??= this.term.buffer.active.getNullCell();
    const cell = this.cell;
    let out = '';
    let style = '';
    for (let x = 0; x < cols; x++) {
      const c = line.getCell(x, cell);
      if (!c) {
        out += ' ';
        continue;
      }
      const width = c.getWidth();
      if (width === 0) continue; // the second half of a wide character
      const next = sgrOf(c, color);
      if (next !== style) {
        out += next === '' ? '\x1b[0m' : `\x1b[0;${next}m`;
        style = next;
      }
      if (x === cursorCol) out += CURSOR_MARKER;
      let chars = c.isInvisible() ? ' '.repeat(width) : c.getChars() || ' ';
      // The emulator and the renderer measure a few characters (emoji, ambiguous widths) differently;
      // one the renderer finds wider than its cells is drawn as '?', so that no row outgrows the pane.
      if (chars.length > 1 || chars.charCodeAt(0) > 0x7e) {
        if (rendererWidth(chars) > width) chars = '?'.repeat(width);
      }
      out += chars;
    }
    if (style !== '') out += '\x1b[0m';
    return out;
  }
}

const widths = new Map<string, number>();
/** The renderer's width of one cell's characters, remembered (a few hundred distinct ones at most in practice). */
function rendererWidth(chars: string): number {
  let w = widths.get(chars);
  if (w === undefined) {
    if (widths.size > 4096) widths.clear();
    w = visibleWidth(chars);
    widths.set(chars, w);
  }
  return w;
}

/** The SGR parameters of a cell's style ('' for the default style). */
function sgrOf(c: IBufferCell, color: boolean): string {
  if (c.isAttributeDefault()) return '';
  const p: Array<number | string> = [];
  if (c.isBold()) p.push(1);
  if (c.isDim()) p.push(2);
  if (c.isItalic()) p.push(3);
  if (c.isUnderline()) p.push(4);
  if (c.isBlink()) p.push(5);
  if (c.isInverse()) p.push(7);
  if (c.isStrikethrough()) p.push(9);
  if (color) {
    if (c.isFgPalette()) p.push(paletteSgr(c.getFgColor(), 30, 90, 38));
    else if (c.isFgRGB()) p.push(rgbSgr(c.getFgColor(), 38));
    if (c.isBgPalette()) p.push(paletteSgr(c.getBgColor(), 40, 100, 48));
    else if (c.isBgRGB()) p.push(rgbSgr(c.getBgColor(), 48));
  }
  return p.join(';');
}

function paletteSgr(n: number, base: number, bright: number, extended: number): string {
  if (n < 8) return String(base + n);
  if (n < 16) return String(bright + n - 8);
  return `${extended};5;${n}`;
}

function rgbSgr(rgb: number, extended: number): string {
  return `${extended};2;${(rgb >> 16) & 0xff};${(rgb >> 8) & 0xff};${rgb & 0xff}`;
}
