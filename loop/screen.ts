// The current screen of a loop, for replay on attach: a headless xterm fed from the output history.
// It is fed from the history's ring rather than from the PTY directly, so a terminal that parses
// slower than an agent floods never holds the agent back nor buffers without bound: when it falls
// more than MAX_LAG_BYTES behind it skips ahead and starts a fresh screen from the last
// RESTART_BYTES (more than a screenful), which is exact again for anything that redraws or scrolls.

import xtermHeadless from '@xterm/headless';
import serializeAddon from '@xterm/addon-serialize';
import type { OutputHistory } from './history.js';

const { Terminal } = xtermHeadless;
const { SerializeAddon } = serializeAddon;

/** Lines kept above the screen and replayed with it. */
const SCROLLBACK_LINES = 500;
const FEED_CHUNK_BYTES = 64 * 1024;
const MAX_CHUNKS_IN_FLIGHT = 4;
const MAX_LAG_BYTES = 256 * 1024;
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
  private inFlight = 0;
  private waiters: Waiter[] = [];
  private disposed = false;
  private readonly onAppend = () => this.feed();

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
    if (this.inFlight === 0 && this.parsedSeq >= minSeq) {
      return Promise.resolve({ screen: this.serialize(), seq: this.parsedSeq });
    }
    return new Promise((resolve) => {
      this.waiters.push({ minSeq, resolve });
      this.feed();
    });
  }

  private serialize(): string {
    return this.serializer.serialize();
  }

  private feed(): void {
    while (!this.disposed && this.inFlight < MAX_CHUNKS_IN_FLIGHT && this.fedSeq < this.history.endSeq) {
      if (this.history.endSeq - this.fedSeq > MAX_LAG_BYTES || this.fedSeq < this.history.ringStart) {
        // Reset only between writes, so no chunk from before the skip is parsed after it.
        if (this.inFlight > 0) return;
        this.skipAhead();
      }
      // Cut at a waiter's offset so its snapshot shows exactly the output up to it.
      let to = Math.min(this.history.endSeq, this.fedSeq + FEED_CHUNK_BYTES);
      for (const w of this.waiters) if (w.minSeq > this.fedSeq && w.minSeq < to) to = w.minSeq;
      const chunk = this.history.readFromRing(this.fedSeq, to - this.fedSeq);
      if (chunk === null || chunk.bytes === 0) return;
      const end = chunk.seq + chunk.bytes;
      this.fedSeq = end;
      this.inFlight++;
      // xterm calls back right after parsing this chunk, before the next: the screen is exactly at `end`.
      this.term.write(chunk.data, () => this.parsed(end));
    }
  }

  private parsed(end: number): void {
    this.inFlight--;
    this.parsedSeq = end;
    if (this.disposed) return;
    const ready = this.waiters.filter((w) => w.minSeq <= end);
    if (ready.length > 0) {
      this.waiters = this.waiters.filter((w) => w.minSeq > end);
      const snap = { screen: this.serialize(), seq: end };
      for (const w of ready) w.resolve(snap);
    }
    this.feed();
  }

  /** Fell too far behind: start a fresh screen from the first line in the last RESTART_BYTES. */
  private skipAhead(): void {
    this.term.reset();
    const start = Math.max(this.history.ringStart, this.history.endSeq - RESTART_BYTES);
    const head = this.history.readFromRing(start, 4096);
    if (head === null) {
      this.fedSeq = this.history.endSeq;
      return;
    }
    const nl = head.data.indexOf('\n');
    this.fedSeq = nl === -1 ? head.seq : head.seq + Buffer.byteLength(head.data.slice(0, nl + 1));
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.history.off('append', this.onAppend);
    for (const w of this.waiters) w.resolve({ screen: '', seq: this.history.endSeq });
    this.waiters = [];
    this.term.dispose();
  }
}
