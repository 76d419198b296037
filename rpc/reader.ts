// NDJSON framing, reading side: bytes in, one decoded JSON value per line out.
// A line longer than the limit is an error for that line only; the stream goes on.

import type { Readable } from 'node:stream';

export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;

export type LineEvent =
  | { kind: 'value'; value: unknown }
  | { kind: 'parse-error'; message: string }
  | { kind: 'too-long'; bytes: number };

/**
 * Splits a byte stream into lines and decodes each as JSON.
 * Memory is bounded by maxLineBytes: an over-long line is skipped (reported once) up to its newline.
 */
export class LineReader {
  private chunks: Buffer[] = [];
  private size = 0;
  private skipping = false;
  private skippedBytes = 0;

  constructor(
    private readonly onLine: (event: LineEvent) => void,
    private readonly maxLineBytes = DEFAULT_MAX_LINE_BYTES,
  ) {}

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const nl = chunk.indexOf(10, start);
      const end = nl === -1 ? chunk.length : nl;
      const piece = chunk.subarray(start, end);
      if (this.skipping) {
        this.skippedBytes += piece.length;
      } else if (this.size + piece.length > this.maxLineBytes) {
        this.skipping = true;
        this.skippedBytes = this.size + piece.length;
        this.chunks = [];
        this.size = 0;
      } else if (piece.length > 0) {
        this.chunks.push(piece);
        this.size += piece.length;
      }
      if (nl === -1) return;
      this.endLine();
      start = nl + 1;
    }
  }

  private endLine(): void {
    if (this.skipping) {
      const bytes = this.skippedBytes;
      this.skipping = false;
      this.skippedBytes = 0;
      this.onLine({ kind: 'too-long', bytes });
      return;
    }
    const line = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
    this.chunks = [];
    this.size = 0;
    const text = line.toString('utf8').trim();
    if (text === '') return;
    try {
      this.onLine({ kind: 'value', value: JSON.parse(text) });
    } catch (err) {
      this.onLine({ kind: 'parse-error', message: (err as Error).message });
    }
  }
}

/**
 * Reads exactly one line from a stream (the `hello` of a daemon connection), then puts back
 * whatever came after it so the next reader — an RPC peer or a raw byte pipe — sees it first.
 */
export function readFirstLine(
  stream: Readable,
  opts: { maxBytes: number; timeoutMs: number },
): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      stream.off('error', onError);
      stream.pause();
    };
    const onData = (chunk: Buffer) => {
      const nl = chunk.indexOf(10);
      if (nl === -1) {
        size += chunk.length;
        if (size > opts.maxBytes) {
          cleanup();
          reject(new Error(`first line longer than ${opts.maxBytes} bytes`));
          return;
        }
        chunks.push(chunk);
        return;
      }
      chunks.push(chunk.subarray(0, nl));
      const rest = chunk.subarray(nl + 1);
      cleanup();
      if (rest.length > 0) stream.unshift(rest);
      resolve(Buffer.concat(chunks));
    };
    const onEnd = () => {
      cleanup();
      reject(new Error('connection closed before the first message'));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`no message within ${opts.timeoutMs} ms`));
    }, opts.timeoutMs);
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('close', onEnd);
    stream.on('error', onError);
  });
}
