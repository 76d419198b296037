// The last N bytes of a stream, kept in one fixed buffer: appending copies at most N bytes and
// allocates nothing, however many chunks come (a flood brings thousands a second).

export class ByteTail {
  private readonly buf: Buffer;
  private length = 0;

  constructor(readonly capacity: number) {
    this.buf = Buffer.alloc(capacity);
  }

  push(bytes: Uint8Array): void {
    const cap = this.capacity;
    if (bytes.length >= cap) {
      this.buf.set(bytes.subarray(bytes.length - cap));
      this.length = cap;
      return;
    }
    const kept = Math.min(this.length, cap - bytes.length);
    this.buf.copyWithin(0, this.length - kept, this.length);
    this.buf.set(bytes, kept);
    this.length = kept + bytes.length;
  }

  /** The bytes kept, oldest first (a view: the next push changes it). */
  bytes(): Buffer {
    return this.buf.subarray(0, this.length);
  }

  clear(): void {
    this.length = 0;
  }
}
