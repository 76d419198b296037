// A JSON-RPC 2.0 connection over one byte stream: either side may send requests and notifications.
// It knows nothing of what travels over it (loops, daemons) nor of how the bytes travel (unix, tcp, ziti).

import type { Duplex } from 'node:stream';
import {
  ErrorCodes,
  RpcError,
  isNotification,
  isRequest,
  parseMessage,
  type Id,
  type Message,
  type RequestMessage,
  type ResponseError,
  type ResponseMessage,
} from './messages.js';
import { DEFAULT_MAX_LINE_BYTES, LineReader, payloadFrame, type LineEvent } from './reader.js';

export type RequestHandler = (params: unknown, peer: RpcPeer) => unknown | Promise<unknown>;
/** `payload`: the bytes of a payload frame (see reader.ts), when the notification came in one. */
export type NotificationHandler = (params: unknown, peer: RpcPeer, payload?: Buffer) => void;

export interface PeerOptions {
  /** Longest accepted incoming line; longer lines are answered with an error and skipped. */
  maxLineBytes?: number;
  /** Unsent bytes allowed to pile up for a peer that does not read; past it the connection is dropped. */
  maxBufferedBytes?: number;
  /** Drop the connection when no message arrives within this time after it opens. */
  firstMessageTimeoutMs?: number;
}

export class ConnectionClosedError extends Error {
  constructor(message = 'connection closed') {
    super(message);
    this.name = 'ConnectionClosedError';
  }
}

/** A request that got no answer within its `timeoutMs`. An RpcError, so code that catches those still does. */
export class RequestTimeoutError extends RpcError {
  constructor(
    readonly method: string,
    readonly timeoutMs: number,
  ) {
    super(ErrorCodes.InternalError, `no answer to ${method} within ${timeoutMs} ms`);
    this.name = 'RequestTimeoutError';
  }
}

interface Pending {
  resolve(value: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout | undefined;
}

export class RpcPeer {
  private readonly requestHandlers = new Map<string, RequestHandler>();
  private readonly notificationHandlers = new Map<string, NotificationHandler>();
  private readonly pending = new Map<Id, Pending>();
  private readonly closeListeners: Array<(reason: string) => void> = [];
  private nextId = 1;
  private closedReason: string | undefined;
  private readonly reader: LineReader;
  private readonly maxBufferedBytes: number;
  private firstMessageTimer: NodeJS.Timeout | undefined;
  /** Requests whose handler has not answered yet. */
  private answering = 0;
  /** The peer has finished sending (a half-close); it may still be owed answers. */
  private peerEnded = false;

  constructor(
    readonly stream: Duplex,
    opts: PeerOptions = {},
  ) {
    this.maxBufferedBytes = opts.maxBufferedBytes ?? 8 * 1024 * 1024;
    this.reader = new LineReader((e) => this.onLine(e), opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES);
    if (opts.firstMessageTimeoutMs !== undefined) {
      this.firstMessageTimer = setTimeout(
        () => this.close(`no message within ${opts.firstMessageTimeoutMs} ms`),
        opts.firstMessageTimeoutMs,
      );
    }
    stream.on('data', (chunk: Buffer) => this.reader.push(chunk));
    stream.on('end', () => {
      this.peerEnded = true;
      this.closeOnceAnswered();
    });
    stream.on('close', () => this.close('connection closed'));
    stream.on('error', (err: Error) => this.close(err.message));
    stream.resume();
  }

  get closed(): boolean {
    return this.closedReason !== undefined;
  }

  onRequest(method: string, handler: RequestHandler): this {
    this.requestHandlers.set(method, handler);
    return this;
  }

  onNotification(method: string, handler: NotificationHandler): this {
    this.notificationHandlers.set(method, handler);
    return this;
  }

  onClose(listener: (reason: string) => void): this {
    if (this.closedReason !== undefined) listener(this.closedReason);
    else this.closeListeners.push(listener);
    return this;
  }

  /** Resolves when the peer is closed, with the reason. */
  whenClosed(): Promise<string> {
    return new Promise((resolve) => this.onClose(resolve));
  }

  request<T = unknown>(method: string, params?: unknown, opts: { timeoutMs?: number } = {}): Promise<T> {
    if (this.closedReason !== undefined) return Promise.reject(new ConnectionClosedError(this.closedReason));
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer =
        opts.timeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              this.pending.delete(id);
              reject(new RequestTimeoutError(method, opts.timeoutMs!));
            }, opts.timeoutMs);
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      const msg: RequestMessage = { jsonrpc: '2.0', id, method };
      if (params !== undefined) msg.params = params;
      this.send(msg);
    });
  }

  /** Sends a notification; false when the connection is gone (or was just dropped for not reading). */
  notify(method: string, params?: unknown): boolean {
    const msg: Message = params === undefined ? { jsonrpc: '2.0', method } : { jsonrpc: '2.0', method, params };
    return this.send(msg);
  }

  /**
   * Sends a notification with bulk bytes beside its params, as a payload frame (reader.ts): the
   * bytes travel as they are, never escaped into JSON. The peer must be one that reads such frames
   * (this class does). False when the connection is gone (or was just dropped for not reading).
   */
  notifyWithPayload(method: string, params: unknown, payload: Uint8Array): boolean {
    if (!this.writable()) return false;
    this.stream.write(payloadFrame(method, params, payload));
    return true;
  }

  /** Unsent bytes queued for this peer. */
  get bufferedBytes(): number {
    return this.stream.writableLength;
  }

  close(reason = 'closed'): void {
    if (this.closedReason !== undefined) return;
    this.closedReason = reason;
    clearTimeout(this.firstMessageTimer);
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new ConnectionClosedError(reason));
    }
    this.pending.clear();
    this.stream.destroy();
    for (const l of this.closeListeners.splice(0)) l(reason);
  }

  private send(msg: Message): boolean {
    if (!this.writable()) return false;
    this.stream.write(JSON.stringify(msg) + '\n');
    return true;
  }

  /** Whether a message may be sent; drops a peer that has let too much pile up unread. */
  private writable(): boolean {
    if (this.closedReason !== undefined || this.stream.destroyed) return false;
    if (this.stream.writableLength > this.maxBufferedBytes) {
      this.close(`peer is not reading (over ${this.maxBufferedBytes} bytes unsent)`);
      return false;
    }
    return true;
  }

  private sendError(id: Id | null, error: ResponseError): void {
    const msg: ResponseMessage = { jsonrpc: '2.0', id, error };
    this.send(msg);
  }

  private onLine(event: LineEvent): void {
    if (this.firstMessageTimer) {
      clearTimeout(this.firstMessageTimer);
      this.firstMessageTimer = undefined;
    }
    if (event.kind === 'too-long') {
      this.sendError(null, {
        code: ErrorCodes.InvalidRequest,
        message: `message of ${event.bytes} bytes is over the limit`,
      });
      return;
    }
    if (event.kind === 'parse-error') {
      this.sendError(null, { code: ErrorCodes.ParseError, message: `invalid JSON: ${event.message}` });
      return;
    }
    if (Array.isArray(event.value)) {
      // Batches are valid JSON-RPC but nothing here sends them; say so rather than half-support them.
      this.sendError(null, { code: ErrorCodes.InvalidRequest, message: 'batch requests are not supported' });
      return;
    }
    const parsed = parseMessage(event.value);
    if ('error' in parsed) {
      this.sendError(parsed.id, parsed.error);
      return;
    }
    const msg = parsed.message;
    if (event.payload !== undefined && !isNotification(msg)) {
      this.sendError(null, { code: ErrorCodes.InvalidRequest, message: 'a payload frame must carry a notification' });
      return;
    }
    if (isRequest(msg)) this.handleRequest(msg);
    else if (isNotification(msg)) this.handleNotification(msg.method, msg.params, event.payload);
    else this.handleResponse(msg as ResponseMessage);
  }

  private handleRequest(msg: RequestMessage): void {
    const handler = this.requestHandlers.get(msg.method);
    if (!handler) {
      this.sendError(msg.id, { code: ErrorCodes.MethodNotFound, message: `unknown method: ${msg.method}` });
      return;
    }
    let result: unknown;
    try {
      result = handler(msg.params, this);
    } catch (err) {
      this.sendHandlerError(msg.id, err);
      return;
    }
    // A synchronous answer goes out at once: replies keep the order of requests, and a keystroke
    // `write` costs no extra turn of the event loop.
    if (result instanceof Promise) {
      this.answering++;
      result
        .then(
          (value) => this.sendResult(msg.id, value),
          (err) => this.sendHandlerError(msg.id, err),
        )
        .finally(() => {
          this.answering--;
          this.closeOnceAnswered();
        });
    } else {
      this.sendResult(msg.id, result);
    }
  }

  /**
   * After the peer's half-close: a peer that sent its last request and then ended its side (a
   * script piping into `ralph bridge`, whose stdin's end becomes a half-close) is still owed the
   * answers. Close once every request is answered and written; end() flushes them first.
   */
  private closeOnceAnswered(): void {
    if (!this.peerEnded || this.answering > 0 || this.closedReason !== undefined) return;
    if (this.stream.writableLength === 0 || !this.stream.writable) {
      this.close('peer closed the connection');
      return;
    }
    this.stream.end(() => this.close('peer closed the connection'));
  }

  private sendResult(id: Id, result: unknown): void {
    this.send({ jsonrpc: '2.0', id, result: result === undefined ? null : result });
  }

  private sendHandlerError(id: Id, err: unknown): void {
    if (err instanceof RpcError) {
      const error: ResponseError = { code: err.code, message: err.message };
      if (err.data !== undefined) error.data = err.data;
      this.sendError(id, error);
    } else {
      this.sendError(id, { code: ErrorCodes.InternalError, message: (err as Error)?.message ?? String(err) });
    }
  }

  private handleNotification(method: string, params: unknown, payload: Buffer | undefined): void {
    const handler = this.notificationHandlers.get(method);
    if (!handler) return; // unknown notifications are ignored, as the spec says
    try {
      handler(params, this, payload);
    } catch {
      // a notification has no one to answer; a bad one must not take the connection down
    }
  }

  private handleResponse(msg: ResponseMessage): void {
    if (msg.id === null) return;
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    clearTimeout(p.timer);
    if (msg.error) p.reject(new RpcError(msg.error.code, msg.error.message, msg.error.data));
    else p.resolve(msg.result);
  }
}
