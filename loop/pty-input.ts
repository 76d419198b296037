// What a client types, on its way into the agent's PTY. node-pty's own write() hands every write to
// fs.write on libuv's thread pool: each keystroke crossed to another thread and back before it
// reached the agent, on a loaded 2-core machine a good part of the echo's round trip. Here a write is
// one write(2) on the PTY's master from this thread, at once; what the PTY cannot take right now (a
// paste into an agent that is not reading its input) waits, in order, and is retried shortly.

import { writeSync } from 'node:fs';
import type { IPty } from 'node-pty';

/** How long a write the PTY could not take waits before it is tried again. */
const RETRY_MS = 2;

export class PtyInput {
  private readonly fd: number | null;
  private readonly queue: Buffer[] = [];
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly pty: IPty) {
    // node-pty keeps the master's fd on its UnixTerminal (not in its typings); elsewhere (Windows,
    // a future node-pty without it) its own write() is used.
    const fd = (pty as unknown as { fd?: unknown }).fd;
    this.fd = typeof fd === 'number' && Number.isInteger(fd) && fd > 0 ? fd : null;
    // The master's fd is closed when the agent's side is gone: never write to that number again,
    // it may soon name another file.
    (pty as unknown as { on(event: 'close', listener: () => void): void }).on('close', () => this.close());
  }

  write(data: string): void {
    if (this.closed) return;
    if (this.fd === null) {
      this.pty.write(data);
      return;
    }
    const buf = Buffer.from(data, 'utf8');
    if (this.queue.length > 0) {
      this.queue.push(buf);
      return;
    }
    const n = this.writeSome(buf);
    if (n < buf.length) {
      this.queue.push(n === 0 ? buf : buf.subarray(n));
      this.retryLater();
    }
  }

  /** The agent is gone: what waits is dropped, later writes are ignored. */
  close(): void {
    this.closed = true;
    this.queue.length = 0;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  /** Bytes the PTY took now (0 when it is full); closes on any error but "full". */
  private writeSome(buf: Buffer): number {
    try {
      return writeSync(this.fd!, buf);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') this.close();
      return 0;
    }
  }

  private retryLater(): void {
    if (this.retryTimer !== undefined || this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      while (!this.closed && this.queue.length > 0) {
        const head = this.queue[0]!;
        const n = this.writeSome(head);
        if (n === head.length) this.queue.shift();
        else {
          if (n > 0) this.queue[0] = head.subarray(n);
          this.retryLater();
          return;
        }
      }
    }, RETRY_MS);
  }
}
