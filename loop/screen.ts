// The current screen of a loop, for replay on attach: a headless xterm fed from the output history.
//
// Parsing is the most expensive thing the runner does with output (an xterm parses ~50 MB/s on
// these boxes: a flood parsed in full would take a whole core), so it is kept off the hot path:
//  - at ordinary rates (up to PARSE_BUDGET_BYTES per RESYNC_MS window, ~2.5 MB/s) each chunk's
//    bytes are handed to the terminal as they are appended (no copy, no decoding) and the screen is exact;
//  - above that (a flood), feeding stops for the rest of the window. At its end, or at once when
//    someone asks for a snapshot, the mirror catches up: it feeds what the terminal missed, or when
//    that is more than MAX_LAG_BYTES, starts a fresh screen from the first line in the last
//    RESTART_BYTES (more than a screenful) and parses just that. The screen is then exact again for
//    anything that redraws or scrolls; what it cannot know is state set before that window and not
//    repeated in it (an alternate screen entered earlier, a scroll region, a title).
// A flood thus costs at most ~PARSE_BUDGET_BYTES + RESTART_BYTES of parsing per window (a few per
// cent of a core) instead of every byte, and never holds the agent back nor buffers without bound.

import xtermHeadless from '@xterm/headless';
import serializeAddon from '@xterm/addon-serialize';
import type { AppendedChunk, OutputHistory } from './history.js';

const { Terminal } = xtermHeadless;
const { SerializeAddon } = serializeAddon;

/** Lines kept above the screen and replayed with it. */
const SCROLLBACK_LINES = 500;
/** Catch-up reads from the ring are handed over in slices of this size. */
const FEED_CHUNK_BYTES = 32 * 1024;
/** Output fed as it comes per window; more is a flood. */
const PARSE_BUDGET_BYTES = 256 * 1024;
const RESYNC_MS = 100;
/** A backlog larger than this is skipped rather than parsed. */
const MAX_LAG_BYTES = 256 * 1024;
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

export class ScreenMirror {
  private readonly term: InstanceType<typeof Terminal>;
  private readonly serializer = new SerializeAddon();
  /** Output up to here has been handed to the terminal. */
  private fedSeq: number;
  /** Output up to here has been parsed by it. */
  private parsedSeq: number;
  /** Fell behind under a flood: appends are not fed until the next re-sync. */
  private behind = false;
  /** The current budget window: when it started and what was fed in it. */
  private windowStart = 0;
  private windowBytes = 0;
  private resyncTimer: NodeJS.Timeout | undefined;
  /** A catch-up waits for the terminal to parse what it was given. */
  private catchUpWanted = false;
  private waiters: Waiter[] = [];
  private disposed = false;
  private readonly onAppend = (chunk: AppendedChunk) => this.appended(chunk);

  constructor(
    private readonly history: OutputHistory,
    cols: number,
    rows: number,
  ) {
    this.term = new Terminal({ cols, rows, scrollback: SCROLLBACK_LINES, allowProposedApi: true });
    this.term.loadAddon(this.serializer);
    this.fedSeq = this.parsedSeq = history.endSeq;
    history.on('append', this.onAppend);
  }

  resize(cols: number, rows: number): void {
    if (!this.disposed) this.term.resize(cols, rows);
  }

  /** The screen as of the end of the output now (or a little later, under heavy output). */
  snapshot(): Promise<ScreenSnapshot> {
    if (this.disposed) return Promise.resolve({ screen: '', seq: this.history.endSeq });
    const minSeq = this.history.endSeq;
    if (this.parsedSeq === this.fedSeq && this.parsedSeq >= minSeq) {
      return Promise.resolve({ screen: this.serialize(), seq: this.parsedSeq });
    }
    return new Promise((resolve) => {
      this.waiters.push({ minSeq, resolve });
      this.catchUp();
    });
  }

  private serialize(): string {
    return this.serializer.serialize();
  }

  /** The hot path: an appended chunk goes to the terminal as it is, unless the terminal is behind. */
  private appended(chunk: AppendedChunk): void {
    if (this.disposed || chunk.bytes === 0 || this.behind) return;
    if (this.windowBytes + chunk.bytes > PARSE_BUDGET_BYTES) {
      const now = performance.now();
      if (now - this.windowStart >= RESYNC_MS) {
        this.windowStart = now;
        this.windowBytes = 0;
      }
    }
    this.windowBytes += chunk.bytes;
    if (chunk.seq === this.fedSeq && this.windowBytes <= PARSE_BUDGET_BYTES) {
      this.write(chunk.buf, chunk.seq + chunk.bytes);
      return;
    }
    if (!this.behind) {
      this.behind = true;
      this.resyncTimer = setTimeout(() => this.resync(), RESYNC_MS);
      this.resyncTimer.unref();
    }
  }

  /** `data`: whole characters; bytes must stay as they are until parsed (an appended chunk's own). */
  private write(data: string | Uint8Array, end: number): void {
    this.fedSeq = end;
    // xterm calls back right after parsing this chunk, before the next: the screen is exactly at `end`.
    this.term.write(data, () => this.parsed(end));
  }

  private resync(): void {
    this.resyncTimer = undefined;
    this.windowStart = performance.now();
    this.windowBytes = 0;
    this.catchUp();
  }

  /**
   * Brings the terminal up to the end of the output: feeds what it is missing from the ring, or,
   * when that is too much, starts a fresh screen near the end. Waits for in-flight writes first
   * (a reset must not overtake them).
   */
  private catchUp(): void {
    if (this.disposed) return;
    if (this.fedSeq !== this.parsedSeq) {
      this.catchUpWanted = true; // parsed() calls back here
      return;
    }
    this.catchUpWanted = false;
    clearTimeout(this.resyncTimer);
    this.resyncTimer = undefined;
    this.behind = false;
    if (this.history.endSeq - this.fedSeq > MAX_LAG_BYTES || this.fedSeq < this.history.ringStart) this.skipAhead();
    while (this.fedSeq < this.history.endSeq) {
      // Cut at a waiter's offset so its snapshot shows exactly the output up to it.
      let to = Math.min(this.history.endSeq, this.fedSeq + FEED_CHUNK_BYTES);
      for (const w of this.waiters) if (w.minSeq > this.fedSeq && w.minSeq < to) to = w.minSeq;
      const chunk = this.history.readFromRing(this.fedSeq, to - this.fedSeq);
      if (chunk === null || chunk.bytes === 0) break;
      this.write(chunk.data, chunk.seq + chunk.bytes);
    }
    // Nothing was left to parse: answer the waiters with the screen as it is.
    if (this.fedSeq === this.parsedSeq) this.settle(this.parsedSeq, true);
  }

  private parsed(end: number): void {
    this.parsedSeq = end;
    if (this.disposed) return;
    if (this.waiters.length > 0) this.settle(end, false);
    if (this.catchUpWanted && end === this.fedSeq) this.catchUp();
  }

  /** Answers the waiters this screen (exactly at `end`) satisfies; with `all`, every waiter. */
  private settle(end: number, all: boolean): void {
    const ready = all ? this.waiters : this.waiters.filter((w) => w.minSeq <= end);
    if (ready.length === 0) return;
    this.waiters = all ? [] : this.waiters.filter((w) => w.minSeq > end);
    const snap = { screen: this.serialize(), seq: end };
    for (const w of ready) w.resolve(snap);
  }

  /** Fell too far behind: start a fresh screen from the first line in the last RESTART_BYTES. */
  private skipAhead(): void {
    this.term.reset();
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
    clearTimeout(this.resyncTimer);
    this.history.off('append', this.onAppend);
    for (const w of this.waiters) w.resolve({ screen: '', seq: this.history.endSeq });
    this.waiters = [];
    this.term.dispose();
  }
}
