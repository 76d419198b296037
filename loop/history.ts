// A loop's output history. Every byte the agent's PTY produces (and ralph's own lines) is appended
// here: to the log file, so a byte's offset in the log is its `seq`, and to a bounded in-memory ring
// for readers that are nearly caught up. Readers further behind read the log file.
//
// By default each append is written to the log at once. The runner asks for batched log writes
// (`logBatchBytes`): bytes are written from the ring once that many are pending, or LOG_FLUSH_MS
// after the first of them, or on flush() / close() — one write() per batch instead of one per PTY
// read (~4 KiB). The not-yet-written bytes are always the newest, so they are in the ring: readers
// in this process never notice, and a reader of the file sees a prefix of the output that is at
// most one batch (or LOG_FLUSH_MS) short. When the log cannot be written (a full disk), pending bytes
// wait in the ring; once more than the ring holds is pending, the log stays the prefix it is.

import { EventEmitter } from 'node:events';
import { isUtf8 } from 'node:buffer';
import { closeSync, fstatSync, openSync, read, writeSync } from 'node:fs';
import { completePrefixLength, leadingContinuationBytes } from './utf8.js';

export const DEFAULT_RING_BYTES = 2 * 1024 * 1024;
/** A batched log is written at the latest this long after the first unwritten byte. */
const LOG_FLUSH_MS = 10;

export interface OutputChunk {
  /** Byte offset of the first byte of `data`. */
  seq: number;
  data: string;
  /** UTF-8 length of `data`: the next chunk starts at seq + bytes. */
  bytes: number;
}

/** Output as bytes: `buf` holds bytes [seq, seq + buf.length), whole UTF-8 characters. */
export interface OutputBytes {
  seq: number;
  buf: Buffer;
}

/** An appended piece of output: its bytes (its own, never overwritten) and, on demand, its text. */
export class AppendedChunk implements OutputChunk {
  private text: string | undefined;
  constructor(
    readonly seq: number,
    readonly buf: Buffer,
    text?: string,
  ) {
    this.text = text;
  }

  get bytes(): number {
    return this.buf.length;
  }

  get data(): string {
    return (this.text ??= this.buf.toString('utf8'));
  }
}

/** A fixed-size circular byte buffer holding the last `capacity` bytes of a stream. */
class ByteRing {
  private readonly buf: Buffer;
  constructor(readonly capacity: number) {
    this.buf = Buffer.alloc(capacity);
  }

  /** Stores `bytes`, which sit at stream offset `seq`. */
  write(seq: number, bytes: Buffer): void {
    if (bytes.length > this.capacity) {
      seq += bytes.length - this.capacity;
      bytes = bytes.subarray(bytes.length - this.capacity);
    }
    const pos = seq % this.capacity;
    const first = Math.min(bytes.length, this.capacity - pos);
    bytes.copy(this.buf, pos, 0, first);
    if (first < bytes.length) bytes.copy(this.buf, 0, first);
  }

  /**
   * Stream bytes [from, to): a view into the ring when they are contiguous there (valid until the
   * next write), else a copy. The caller guarantees they are still in the ring.
   */
  view(from: number, to: number): Buffer {
    const pos = from % this.capacity;
    const n = to - from;
    if (pos + n <= this.capacity) return this.buf.subarray(pos, pos + n);
    return Buffer.concat([this.buf.subarray(pos), this.buf.subarray(0, n - (this.capacity - pos))], n);
  }

  /**
   * Writes stream bytes [from, to) to `fd`; `wrote` hears each write's byte count (a failing one
   * throws). Bytes no longer in the ring are refused: the ring now holds newer ones in their place.
   */
  writeTo(fd: number, from: number, to: number, wrote: (n: number) => void): void {
    if (from < to - this.capacity) throw new RangeError(`stream bytes from ${from} are no longer in the ring (it holds ${to - this.capacity} to ${to})`);
    while (from < to) {
      const pos = from % this.capacity;
      const n = Math.min(to - from, this.capacity - pos);
      const done = writeSync(fd, this.buf, pos, n);
      wrote(done);
      from += done;
    }
  }
}

export interface OutputHistoryEvents {
  append: [chunk: AppendedChunk];
  /** The log file cannot be written (disk full, over quota, failing): once, with the error. */
  logFailed: [err: NodeJS.ErrnoException];
  /**
   * While the log could not be written, output from `from` on fell out of memory: the log stays the
   * output up to `from` and gets nothing more (once).
   */
  logLost: [from: number];
}

export class OutputHistory extends EventEmitter<OutputHistoryEvents> {
  private readonly ring: ByteRing;
  private readonly writeFd: number;
  private readonly readFd: number;
  /** Offset where this process started appending (the log's size when it was opened). */
  private readonly startSeq: number;
  private end: number;
  /** Output up to here is in the log file. */
  private written: number;
  /** Pending bytes that trigger a log write; 0: every append is written at once. */
  private readonly logBatchBytes: number;
  private flushTimer: NodeJS.Timeout | undefined;
  /** The start of a character appendBytes got only part of. */
  private carry: Buffer | null = null;
  private closed = false;
  /** Why the log cannot be written now; bytes not written yet stay in the ring meanwhile. */
  private logError: NodeJS.ErrnoException | null = null;
  private reportedFailure = false;
  /** Output from here on is lost to the log (see logLost); null while the log can still catch up. */
  private lostFrom: number | null = null;

  constructor(
    readonly logPath: string,
    opts: { ringBytes?: number; logBatchBytes?: number } = {},
  ) {
    super();
    this.ring = new ByteRing(opts.ringBytes ?? DEFAULT_RING_BYTES);
    // Pending bytes must stay in the ring: a batch is at most a quarter of it.
    this.logBatchBytes = Math.min(opts.logBatchBytes ?? 0, this.ring.capacity >> 2);
    this.writeFd = openSync(logPath, 'a', 0o600);
    this.readFd = openSync(logPath, 'r');
    this.startSeq = fstatSync(this.writeFd).size;
    this.end = this.written = this.startSeq;
  }

  /** Offset just past the last byte appended. */
  get endSeq(): number {
    return this.end;
  }

  /** How many of the newest bytes memory holds. */
  get ringCapacity(): number {
    return this.ring.capacity;
  }

  /** Oldest offset still held in memory. */
  get ringStart(): number {
    return Math.max(this.startSeq, this.end - this.ring.capacity);
  }

  /** Appends text (ralph's own lines). */
  append(text: string): OutputChunk {
    if (this.closed || text === '') return { seq: this.end, data: '', bytes: 0 };
    return this.appendWhole(Buffer.from(text, 'utf8'), text);
  }

  /**
   * Appends bytes as a stream delivers them (the agent's PTY): a character cut off at the end waits
   * for the next call, and invalid UTF-8 becomes U+FFFD as a decoder would make it, so every chunk
   * holds whole, valid characters. Returns the chunk appended, if any.
   */
  appendBytes(raw: Buffer): AppendedChunk | null {
    if (this.closed) return null;
    let buf = this.carry === null ? raw : Buffer.concat([this.carry, raw]);
    this.carry = null;
    const whole = completePrefixLength(buf);
    if (whole < buf.length) {
      this.carry = Buffer.from(buf.subarray(whole));
      buf = buf.subarray(0, whole);
    }
    if (buf.length === 0) return null;
    if (!isUtf8(buf)) buf = Buffer.from(buf.toString('utf8'), 'utf8');
    return this.appendWhole(buf);
  }

  /** The stream of appendBytes ended: a character left cut off is appended as U+FFFD. */
  endBytes(): void {
    const rest = this.carry;
    this.carry = null;
    if (rest !== null && !this.closed) this.appendWhole(Buffer.from(rest.toString('utf8'), 'utf8'));
  }

  /** `bytes`: whole characters, owned by the history from now on. */
  private appendWhole(bytes: Buffer, text?: string): AppendedChunk {
    if ((this.logBatchBytes === 0 || bytes.length > this.logBatchBytes) && this.logError === null && this.lostFrom === null) {
      // Written at once (after what is pending): once append returns, the bytes are in the log.
      this.flush();
      if (this.logError === null && this.written === this.end) {
        let done = 0;
        try {
          while (done < bytes.length) done += writeSync(this.writeFd, bytes, done);
        } catch (err) {
          this.failed(err as NodeJS.ErrnoException);
        }
        this.written += done;
      }
    }
    this.ring.write(this.end, bytes);
    const chunk = new AppendedChunk(this.end, bytes, text);
    this.end += bytes.length;
    // Unwritten bytes the ring no longer holds: writing what it holds instead would put it at the
    // wrong offsets, so the log ends where it is.
    if (this.lostFrom === null && this.written < this.ringStart) this.lose();
    this.emit('append', chunk);
    // (After the listeners: a subscriber sent this chunk on and flushed it, as a lone keystroke's echo
    // is, leaves nothing for a timer to do.)
    const pending = this.lostFrom === null ? this.end - this.written : 0;
    if (pending >= this.logBatchBytes) this.flush();
    else if (pending > 0 && this.flushTimer === undefined) {
      this.flushTimer = setTimeout(() => {
        this.flushTimer = undefined;
        this.flush();
      }, LOG_FLUSH_MS);
      this.flushTimer.unref();
    }
    return chunk;
  }

  /**
   * Writes the pending bytes (if any) to the log: afterwards the log holds everything appended —
   * unless the log cannot be written (see logFailed), when they stay pending.
   */
  flush(): void {
    if (this.closed || this.written === this.end || this.logError !== null || this.lostFrom !== null) return;
    try {
      this.ring.writeTo(this.writeFd, this.written, this.end, (n) => (this.written += n));
    } catch (err) {
      this.failed(err as NodeJS.ErrnoException);
    }
  }

  /** Why the log cannot be written right now, or null. */
  get logFailure(): NodeJS.ErrnoException | null {
    return this.logError;
  }

  /** Where the log ends for good (output from there on was lost to it, see logLost), or null. */
  get logLostFrom(): number | null {
    return this.lostFrom;
  }

  /**
   * After a failed log write: tries again to write what is pending (space may have come back).
   * True once nothing more can be done: the log holds everything appended, or all it ever will
   * (logLostFrom). A runner stops its agent when the log fails, so little more comes meanwhile.
   */
  retryLog(): boolean {
    if (this.closed || this.lostFrom !== null) return this.lostFrom !== null || this.written === this.end;
    this.logError = null;
    this.flush();
    return this.lostFrom !== null || (this.logError === null && this.written === this.end);
  }

  private lose(): void {
    this.lostFrom = this.written;
    clearTimeout(this.flushTimer);
    this.emit('logLost', this.lostFrom);
  }

  private failed(err: NodeJS.ErrnoException): void {
    const first = this.logError === null;
    this.logError = err;
    if (first && !this.reportedFailure) {
      this.reportedFailure = true;
      this.emit('logFailed', err);
    }
  }

  /** Up to `maxBytes` from `seq` when that is still in memory (else null): whole characters only. */
  readFromRing(seq: number, maxBytes: number): OutputChunk | null {
    const b = this.bytesFromRing(seq, maxBytes);
    return b === null ? null : toChunk(b);
  }

  /**
   * Like readFromRing(), as bytes: a view into the ring, valid only until the next append (copy
   * it to keep it).
   */
  readBytesFromRing(seq: number, maxBytes: number): OutputBytes | null {
    return this.bytesFromRing(seq, maxBytes);
  }

  /** Up to `maxBytes` from `seq`, read from the log file (for readers behind the ring). */
  async readFromLog(seq: number, maxBytes: number): Promise<OutputChunk> {
    return toChunk(await this.bytesFromLog(seq, maxBytes));
  }

  /** Reads from memory when possible, else from the log. */
  read(seq: number, maxBytes: number): OutputChunk | Promise<OutputChunk> {
    return this.readFromRing(seq, maxBytes) ?? this.readFromLog(seq, maxBytes);
  }

  /**
   * Like read(), as bytes. From memory the bytes are a view into the ring, valid only until the
   * next append: use them at once.
   */
  readBytes(seq: number, maxBytes: number): OutputBytes | Promise<OutputBytes> {
    return this.bytesFromRing(seq, maxBytes) ?? this.bytesFromLog(seq, maxBytes);
  }

  private bytesFromRing(seq: number, maxBytes: number): OutputBytes | null {
    if (seq < this.ringStart || seq > this.end) return null;
    const to = Math.min(this.end, seq + maxBytes);
    return this.wholeCharacters(seq, this.ring.view(seq, to), to === this.end);
  }

  private bytesFromLog(seq: number, maxBytes: number): Promise<OutputBytes> {
    if (seq + maxBytes > this.written) this.flush();
    const n = Math.max(0, Math.min(this.end, seq + maxBytes) - seq);
    const buf = Buffer.alloc(n);
    return new Promise((resolve, reject) => {
      read(this.readFd, buf, 0, n, seq, (err, got) => {
        if (err) reject(err);
        else resolve(this.wholeCharacters(seq, buf.subarray(0, got), seq + got === this.end));
      });
    });
  }

  /** Trims a byte range to whole characters: an offset inside a character moves to the next one. */
  private wholeCharacters(seq: number, raw: Buffer, reachesEnd: boolean): OutputBytes {
    const skip = seq === this.end ? 0 : leadingContinuationBytes(raw);
    // Appends are whole characters, so a range that reaches the end needs no trimming there.
    const usable = reachesEnd ? raw.length : completePrefixLength(raw);
    return { seq: seq + skip, buf: raw.subarray(skip, Math.max(skip, usable)) };
  }

  close(): void {
    if (this.closed) return;
    this.retryLog();
    clearTimeout(this.flushTimer);
    this.closed = true;
    closeSync(this.writeFd);
    closeSync(this.readFd);
  }
}

function toChunk(b: OutputBytes): OutputChunk {
  return { seq: b.seq, data: b.buf.toString('utf8'), bytes: b.buf.length };
}
