// The current screen of a loop, for replay on attach: a headless xterm fed from the output history.
//
// Parsing is the most expensive thing the runner does with output (an xterm parses ~50 MB/s on
// these boxes, far less under load, and each write of a keystroke's echo costs it a timer and a
// parse), and the screen is needed only when a client attaches. So the terminal is fed in
// catch-ups, never on the hot path:
//  - when a client asks for a snapshot (at once);
//  - when CATCH_UP_BYTES have piled up unparsed, the last half of them at no more than EXACT_RATE
//    (the ring holds several times that, so nothing is overwritten before it is parsed): the screen
//    stays exact;
//  - after a flood (output faster than EXACT_RATE, which cannot be parsed in full without taking a
//    core), once it has been quiet for QUIET_MS — or at the next snapshot, when the terminal is not
//    loaded yet: a fresh screen from the first line in the last RESTART_BYTES (more than a
//    screenful) is parsed, just that. The screen is then exact for anything that redraws or
//    scrolls; what it cannot know is state set before that window and not repeated in it (an
//    alternate screen entered earlier, a scroll region, a title).
// A flood thus costs one small parse when it ends (or when someone attaches), never holds the agent
// back, and never buffers without bound. The xterm itself is loaded at the first catch-up: a loop
// that nobody attached to and that printed little, or printed it fast, never loads it.

import type { Terminal as XtermTerminal } from '@xterm/headless';
import type { SerializeAddon as XtermSerializeAddon } from '@xterm/addon-serialize';
import type { OutputHistory } from './history.js';

/** Lines kept above the screen and replayed with it. */
const SCROLLBACK_LINES = 500;
/** Catch-up reads from the ring are handed over in slices of this size. */
const FEED_CHUNK_BYTES = 32 * 1024;
/** Unparsed output that starts a catch-up (or, under a flood, the wait for quiet); at most a quarter of the ring. */
const CATCH_UP_BYTES = 512 * 1024;
/**
 * Output that came at most this fast (bytes per ms, 1 MB/s) since the last catch-up is parsed in
 * full: at most a few per cent of a core, and far more than an agent prints outside a flood.
 */
const EXACT_RATE = 1024;
/** A backlog this small is always parsed in full (half the catch-up size). */
const MAX_LAG_BYTES = 256 * 1024;
/** A flood is over when no output came for this long. */
const QUIET_MS = 100;
/** After a skip, the screen is rebuilt from this much output (from its first line start). */
const RESTART_BYTES = 64 * 1024;

export interface ScreenSnapshot {
  /** The screen as ANSI text that redraws it. */
  screen: string;
  /** The output offset this screen shows: live output continues from here. */
  seq: number;
}

interface Waiter {
  minSeq: number;
  resolve(s: ScreenSnapshot): void;
}

export interface Xterm {
  term: XtermTerminal;
  serializer: XtermSerializeAddon;
}

/** Loads @xterm/headless (CommonJS) and makes a terminal with its serializer. */
export async function makeXterm(cols: number, rows: number): Promise<Xterm> {
  const [{ default: headless }, { default: serialize }] = await Promise.all([import('@xterm/headless'), import('@xterm/addon-serialize')]);
  const term = new headless.Terminal({ cols, rows, scrollback: SCROLLBACK_LINES, allowProposedApi: true });
  const serializer = new serialize.SerializeAddon();
  term.loadAddon(serializer);
  return { term, serializer };
}

/**
 * A screen goes out in one JSON message (escape sequences cost 6 bytes each there): it must stay
 * well under what a client takes in one message (rpc/reader.ts DEFAULT_MAX_LINE_BYTES, 1 MiB).
 */
export const MAX_SCREEN_JSON_BYTES = 768 * 1024;

/**
 * The screen with as much scrollback as fits MAX_SCREEN_JSON_BYTES (a colourful screen with 500
 * lines above it can take several MB); a screen that does not fit even alone is left out (''),
 * and the client starts from the live output.
 */
export function fittingScreen(xterm: Xterm): string {
  for (const scrollback of [SCROLLBACK_LINES, 100, 0]) {
    const screen = xterm.serializer.serialize({ scrollback });
    if (Buffer.byteLength(JSON.stringify(screen)) <= MAX_SCREEN_JSON_BYTES) return screen;
  }
  return '';
}

export interface ScreenMirrorOptions {
  /** Where a failure to load the terminal is told (the runner's log). */
  log?: (line: string) => void;
  /** Makes the terminal (tests give one that fails). */
  loadXterm?: (cols: number, rows: number) => Promise<Xterm>;
}

export class ScreenMirror {
  private xterm: Xterm | null = null;
  private loading: Promise<void> | null = null;
  /** The terminal could not be loaded: snapshots are empty from then on, and the runner goes on. */
  private loadFailed = false;
  private readonly log: (line: string) => void;
  private readonly loadXterm: (cols: number, rows: number) => Promise<Xterm>;
  /** Output up to here has been handed to the terminal. */
  private fedSeq: number;
  /** Output up to here has been parsed by it. */
  private parsedSeq: number;
  /**
   * When the unparsed output last grew past MAX_LAG_BYTES (0: it has not since the last catch-up):
   * the rate that decides between exact and skip is that of the output since then, so a quiet
   * start (an agent waiting for input) does not make a flood look slow.
   */
  private lagSince = 0;
  /**
   * When the terminal last finished parsing all it was fed: the time it spent parsing (which slows
   * the runner, and so the output) does not count towards the rate either.
   */
  private settledAt = 0;
  /** Under a flood: when output last came. */
  private lastAppendAt = 0;
  private catchUpTimer: NodeJS.Timeout | undefined;
  /** A catch-up waits for the terminal to parse what it was given. */
  private catchUpWanted = false;
  /** A size to take once what came before it is parsed. */
  private pendingSize: { cols: number; rows: number } | null = null;
  private waiters: Waiter[] = [];
  private disposed = false;
  /** CATCH_UP_BYTES and MAX_LAG_BYTES for this history's ring. */
  private readonly catchUpBytes: number;
  private readonly maxLagBytes: number;
  private readonly onAppend = () => this.appended();

  constructor(
    private readonly history: OutputHistory,
    private cols: number,
    private rows: number,
    opts: ScreenMirrorOptions = {},
  ) {
    this.log = opts.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.loadXterm = opts.loadXterm ?? makeXterm;
    this.fedSeq = this.parsedSeq = history.endSeq;
    this.catchUpBytes = Math.min(CATCH_UP_BYTES, history.ringCapacity >> 2);
    this.maxLagBytes = Math.min(MAX_LAG_BYTES, this.catchUpBytes >> 1);
    history.on('append', this.onAppend);
  }

  /** The output before this moment was laid out at the old size: the terminal resizes after it. */
  resize(cols: number, rows: number): void {
    if (this.disposed) return;
    this.cols = cols;
    this.rows = rows;
    if (this.xterm === null) return; // it will be made at this size
    this.pendingSize = { cols, rows };
    this.catchUp();
  }

  /** The screen as of the end of the output now (or a little later, under heavy output). */
  snapshot(): Promise<ScreenSnapshot> {
    if (this.disposed || this.loadFailed) return Promise.resolve({ screen: '', seq: this.history.endSeq });
    const minSeq = this.history.endSeq;
    if (this.xterm !== null && this.parsedSeq === this.fedSeq && this.parsedSeq >= minSeq && this.pendingSize === null) {
      return Promise.resolve({ screen: fittingScreen(this.xterm), seq: this.parsedSeq });
    }
    return new Promise((resolve) => {
      this.waiters.push({ minSeq, resolve });
      this.catchUp();
    });
  }

  /** The hot path: one comparison; past CATCH_UP_BYTES, a catch-up now or once the flood is over. */
  private appended(): void {
    const backlog = this.history.endSeq - this.fedSeq;
    if (backlog < this.maxLagBytes || this.disposed || this.loadFailed) return;
    const now = performance.now();
    if (this.lagSince === 0) this.lagSince = now;
    if (backlog < this.catchUpBytes) return;
    this.lastAppendAt = now;
    if (this.catchUpTimer !== undefined) return;
    const wait = this.exact(backlog, now) ? 0 : QUIET_MS;
    this.catchUpTimer = setTimeout(this.catchUpWhenQuiet, wait);
    this.catchUpTimer.unref();
  }

  private readonly catchUpWhenQuiet = (): void => {
    this.catchUpTimer = undefined;
    const now = performance.now();
    const exact = this.exact(this.history.endSeq - this.fedSeq, now);
    // After a flood the screen is rebuilt from its last lines, which the first snapshot does as
    // well: a terminal not loaded yet is left unloaded until someone asks.
    if (!exact && this.xterm === null) return;
    const sinceOutput = now - this.lastAppendAt;
    if (sinceOutput < QUIET_MS && !exact) {
      this.catchUpTimer = setTimeout(this.catchUpWhenQuiet, QUIET_MS - sinceOutput);
      this.catchUpTimer.unref();
      return;
    }
    this.catchUp();
  };

  /** Whether a backlog this size is to be parsed in full: it is small, or came no faster than EXACT_RATE. */
  private exact(backlog: number, now: number): boolean {
    if (this.fedSeq < this.history.ringStart) return false;
    if (backlog <= this.maxLagBytes) return true;
    return backlog - this.maxLagBytes <= EXACT_RATE * (now - Math.max(this.lagSince, this.settledAt));
  }

  /**
   * Brings the terminal up to the end of the output: feeds what it is missing from the ring, or,
   * after a flood, starts a fresh screen near the end. Waits for in-flight writes first (a reset
   * must not overtake them), and for the terminal to be loaded.
   */
  private catchUp(): void {
    if (this.disposed || this.loadFailed) return;
    clearTimeout(this.catchUpTimer);
    this.catchUpTimer = undefined;
    const xterm = this.xterm;
    if (xterm === null) {
      this.loading ??= this.loadXterm(this.cols, this.rows).then(
        (x) => {
          if (this.disposed) x.term.dispose();
          else this.xterm = x;
          this.catchUp();
        },
        (err: unknown) => {
          // Attaching clients lose the replayed screen, not the loop: its output goes on as it is.
          this.loadFailed = true;
          this.log(`cannot load the terminal emulator for screen replays (${(err as Error)?.message ?? String(err)}); attaching clients get no screen`);
          for (const w of this.waiters.splice(0)) w.resolve({ screen: '', seq: this.history.endSeq });
        },
      );
      return;
    }
    if (this.fedSeq !== this.parsedSeq) {
      this.catchUpWanted = true; // parsed() calls back here
      return;
    }
    this.catchUpWanted = false;
    if (!this.exact(this.history.endSeq - this.fedSeq, performance.now())) this.skipAhead(xterm);
    while (this.fedSeq < this.history.endSeq) {
      // Cut at a waiter's offset so its snapshot shows exactly the output up to it.
      let to = Math.min(this.history.endSeq, this.fedSeq + FEED_CHUNK_BYTES);
      for (const w of this.waiters) if (w.minSeq > this.fedSeq && w.minSeq < to) to = w.minSeq;
      const chunk = this.history.readBytesFromRing(this.fedSeq, to - this.fedSeq);
      if (chunk === null || chunk.buf.length === 0) break;
      const end = chunk.seq + chunk.buf.length;
      this.fedSeq = end;
      // A copy (the ring moves on before xterm parses), as bytes: xterm decodes UTF-8 itself.
      // It calls back right after parsing this chunk, before the next: the screen is exactly at `end`.
      xterm.term.write(Buffer.from(chunk.buf), () => this.parsed(end));
    }
    this.lagSince = 0;
    if (this.fedSeq === this.parsedSeq) this.settled();
  }

  private parsed(end: number): void {
    this.parsedSeq = end;
    if (this.disposed) return;
    if (this.waiters.length > 0) this.answer(end, false);
    if (end === this.fedSeq) this.settled();
  }

  /** Everything fed is parsed: take a pending size, answer the waiters, or go on catching up. */
  private settled(): void {
    this.settledAt = performance.now();
    const size = this.pendingSize;
    if (size !== null && this.xterm !== null) {
      this.pendingSize = null;
      this.xterm.term.resize(size.cols, size.rows);
    }
    if (this.catchUpWanted) this.catchUp();
    else this.answer(this.parsedSeq, true);
  }

  /** Answers the waiters this screen (exactly at `end`) satisfies; with `all`, every waiter. */
  private answer(end: number, all: boolean): void {
    if (this.xterm === null || this.pendingSize !== null) return;
    const ready = all ? this.waiters : this.waiters.filter((w) => w.minSeq <= end);
    if (ready.length === 0) return;
    this.waiters = all ? [] : this.waiters.filter((w) => w.minSeq > end);
    const snap = { screen: fittingScreen(this.xterm), seq: end };
    for (const w of ready) w.resolve(snap);
  }

  /** Fell too far behind: start a fresh screen from the first line in the last RESTART_BYTES. */
  private skipAhead(xterm: Xterm): void {
    xterm.term.reset();
    const start = Math.max(this.history.ringStart, this.history.endSeq - RESTART_BYTES);
    const head = this.history.readFromRing(start, 4096);
    if (head === null) {
      this.fedSeq = this.parsedSeq = this.history.endSeq;
      return;
    }
    const nl = head.data.indexOf('\n');
    this.fedSeq = this.parsedSeq = nl === -1 ? head.seq : head.seq + Buffer.byteLength(head.data.slice(0, nl + 1));
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    clearTimeout(this.catchUpTimer);
    this.history.off('append', this.onAppend);
    for (const w of this.waiters) w.resolve({ screen: '', seq: this.history.endSeq });
    this.waiters = [];
    this.xterm?.term.dispose();
  }
}
