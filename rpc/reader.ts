// Framing, reading side: bytes in, one decoded JSON message at a time out. Two frames share a stream:
//  - a line: one JSON text ending in \n (NDJSON), the usual JSON-RPC message;
//  - a payload frame, for bulk bytes that should not be escaped into JSON and parsed back out:
//      0x00 · payload length (u32, big-endian) · a JSON-RPC notification ending in \n · the payload
//    (0x00 never starts a JSON text, so the two cannot be confused). The notification's handler gets
//    the payload as bytes, beside its params.
// A line or payload over the limit is an error for that message only, said as soon as it is known:
// an over-long line is skipped up to its newline, an over-long payload (its length is known) is read
// past without being kept; the stream goes on.

import type { Readable } from 'node:stream';

export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;
/** The first byte of a payload frame. */
export const PAYLOAD_FRAME_MARK = 0x00;
/** Mark and length before a payload frame's JSON. */
export const PAYLOAD_FRAME_PREFIX_BYTES = 5;

export type LineEvent =
  | { kind: 'value'; value: unknown; payload?: Buffer }
  | { kind: 'parse-error'; message: string }
  | { kind: 'too-long'; bytes: number };

const enum At {
  /** The start of a message: a line or a payload frame. */
  Start,
  /** Reading a frame's 4 length bytes. */
  Length,
  /** Inside a line (or a frame's JSON, when `framed`). */
  Line,
  /** Reading a frame's payload. */
  Payload,
}

/**
 * Splits a byte stream into messages and decodes each line as JSON.
 * Memory is bounded by maxLineBytes (lines) and maxPayloadBytes (payloads).
 */
export class LineReader {
  private at = At.Start;
  private chunks: Buffer[] = [];
  private size = 0;
  private skipping = false;
  private skippedBytes = 0;
  /** The current line is a payload frame's JSON. */
  private framed = false;
  private lengthBytes = 0;
  private payloadLength = 0;
  private payloadLeft = 0;
  /** The frame's message, when its payload is to be kept (null: read past it). */
  private frameEvent: LineEvent | null = null;

  constructor(
    private readonly onLine: (event: LineEvent) => void,
    private readonly maxLineBytes = DEFAULT_MAX_LINE_BYTES,
    private readonly maxPayloadBytes = maxLineBytes,
  ) {}

  push(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      switch (this.at) {
        case At.Start:
          if (chunk[pos] === PAYLOAD_FRAME_MARK) {
            pos++;
            this.framed = true;
            this.lengthBytes = 0;
            this.payloadLength = 0;
            this.at = At.Length;
          } else {
            this.at = At.Line;
          }
          break;
        case At.Length:
          while (this.lengthBytes < 4 && pos < chunk.length) {
            this.payloadLength = this.payloadLength * 256 + chunk[pos++]!;
            this.lengthBytes++;
          }
          if (this.lengthBytes === 4) this.at = At.Line;
          break;
        case At.Line:
          pos = this.readLine(chunk, pos);
          break;
        case At.Payload:
          pos = this.readPayload(chunk, pos);
          break;
      }
    }
  }

  /** Reads line bytes from `pos`; returns where it stopped. */
  private readLine(chunk: Buffer, pos: number): number {
    const nl = chunk.indexOf(10, pos);
    const end = nl === -1 ? chunk.length : nl;
    const piece = chunk.subarray(pos, end);
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
    if (nl === -1) return chunk.length;
    const event = this.endLine();
    if (!this.framed) {
      this.at = At.Start;
      if (event) this.onLine(event);
    } else {
      this.framed = false;
      const header = event ?? { kind: 'parse-error', message: 'a payload frame without a message' };
      if (header.kind === 'value' && this.payloadLength <= this.maxPayloadBytes) {
        this.frameEvent = header;
      } else {
        // Said at once; the payload is then read past without being kept.
        this.frameEvent = null;
        this.onLine(header.kind === 'value' ? { kind: 'too-long', bytes: this.payloadLength } : header);
      }
      this.payloadLeft = this.payloadLength;
      this.at = At.Payload;
      if (this.payloadLeft === 0) this.endPayload();
    }
    return nl + 1;
  }

  /** The line just ended, decoded (undefined for a blank line). */
  private endLine(): LineEvent | undefined {
    if (this.skipping) {
      const bytes = this.skippedBytes;
      this.skipping = false;
      this.skippedBytes = 0;
      return { kind: 'too-long', bytes };
    }
    const line = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
    this.chunks = [];
    this.size = 0;
    const text = line.toString('utf8').trim();
    if (text === '') return undefined;
    try {
      return { kind: 'value', value: JSON.parse(text) };
    } catch (err) {
      return { kind: 'parse-error', message: (err as Error).message };
    }
  }

  /** Reads payload bytes from `pos` (kept, or read past when the frame was refused); returns where it stopped. */
  private readPayload(chunk: Buffer, pos: number): number {
    const take = Math.min(this.payloadLeft, chunk.length - pos);
    if (this.frameEvent !== null) {
      this.chunks.push(chunk.subarray(pos, pos + take));
      this.size += take;
    }
    this.payloadLeft -= take;
    if (this.payloadLeft === 0) this.endPayload();
    return pos + take;
  }

  private endPayload(): void {
    const event = this.frameEvent;
    this.frameEvent = null;
    this.at = At.Start;
    if (event === null || event.kind !== 'value') return;
    const payload = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
    this.chunks = [];
    this.size = 0;
    this.onLine({ kind: 'value', value: event.value, payload });
  }
}

/** The bytes of a payload frame: the notification `{method, params}` followed by `payload`. */
export function payloadFrame(method: string, params: unknown, payload: Uint8Array): Buffer {
  const json = JSON.stringify(params === undefined ? { jsonrpc: '2.0', method } : { jsonrpc: '2.0', method, params });
  const jsonBytes = Buffer.byteLength(json);
  const frame = Buffer.allocUnsafe(PAYLOAD_FRAME_PREFIX_BYTES + jsonBytes + 1 + payload.length);
  frame[0] = PAYLOAD_FRAME_MARK;
  frame.writeUInt32BE(payload.length, 1);
  let pos = PAYLOAD_FRAME_PREFIX_BYTES + frame.write(json, PAYLOAD_FRAME_PREFIX_BYTES, 'utf8');
  frame[pos++] = 0x0a;
  frame.set(payload, pos);
  return frame;
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
