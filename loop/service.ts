// The per-loop RPC server: one unix socket, one RpcPeer per connection, the methods and events of
// loop/protocol.ts. Each subscriber has its own pump that sends output from where it is up to, so
// a slow reader is served from the log file at its own pace and costs no memory; one that stops
// reading altogether is dropped after the stall timeout. Nothing a client does can stop the loop
// except `stop`.

import type { Duplex } from 'node:stream';
import { ErrorCodes, RpcError, RpcPeer } from '../rpc/index.js';
import {
  optionalInteger,
  paramsObject,
  requireBoolean,
  requireInteger,
  requireOneOf,
  requireString,
} from '../rpc/index.js';
import { listen, type Listener } from '../transport/index.js';
import { MAX_ITERATIONS } from '../store/iteration-limit.js';
import { LoopRefusedError } from './errors.js';
import type { AppendedChunk, OutputBytes, OutputHistory } from './history.js';
import {
  LOOP_PROTOCOL,
  LoopEvents,
  LoopMethods,
  MAX_TERMINAL_SIZE,
  MAX_WRITE_BYTES,
  type OutputEvent,
  type SubscribeResult,
  type WriteRefusedEvent,
} from './protocol.js';
import type { LoopRunner } from './runner.js';

export const DEFAULT_STALL_TIMEOUT_MS = 30_000;
export const DEFAULT_FIRST_MESSAGE_TIMEOUT_MS = 10_000;
export const MAX_LINE_BYTES = 1024 * 1024;
/** How long a runner whose loop has ended keeps serving clients that are still reading. */
export const DEFAULT_END_DRAIN_MS = 60_000;
/** Largest `output` event payload (bytes of output, before JSON escaping). */
const OUTPUT_CHUNK_BYTES = 64 * 1024;
/** Output held during a burst before it is sent anyway (see LoopService.outputAppended). */
const BURST_BYTES = 64 * 1024;
/** Unsent bytes a subscriber may have queued before its pump waits for 'drain'. */
const SUBSCRIBER_HIGH_WATER = 256 * 1024;

export interface LoopServiceOptions {
  /** Where to listen: $RALPH_HOME/sockets/<id>.sock. */
  socketPath: string;
  /** A subscriber that has not drained for this long is dropped. Default: RALPH_STALL_TIMEOUT_MS or 30 s. */
  stallTimeoutMs?: number;
  /** A connection that sends nothing for this long is dropped. Default: RALPH_FIRST_MESSAGE_TIMEOUT_MS or 10 s. */
  firstMessageTimeoutMs?: number;
  maxLineBytes?: number;
  /** Diagnostics (dropped clients); default: stderr, which a detached runner sends to its runner.log. */
  log?: (line: string) => void;
}

function envMs(name: string): number | undefined {
  const v = process.env[name];
  return v && /^\d+$/.test(v) ? Number(v) : undefined;
}

/** One `output` event: {seq} and the output's bytes as they are, in a payload frame. */
function sendOutput(peer: RpcPeer, out: OutputBytes, history: OutputHistory): void {
  // No client ever sees a byte the log does not hold yet: should the runner die the next moment
  // (SIGKILL, OOM), the log still matches what every client saw. A flush with nothing pending is a
  // comparison; under a flood it writes one batch per coalesced event.
  history.flush();
  const header: OutputEvent = { seq: out.seq };
  peer.notifyWithPayload(LoopEvents.output, header, out.buf);
}

/** One subscriber's stream of `output` events, from `nextSeq` on, gap-free and duplicate-free. */
class Subscription {
  private stopped = false;
  /** The pump is waiting for new output (it has sent everything up to the end). */
  private idle = false;
  private wakeUp: (() => void) | null = null;

  constructor(
    private readonly conn: Connection,
    public nextSeq: number,
  ) {}

  get caughtUp(): boolean {
    return this.stopped || (this.nextSeq >= this.conn.runner.history.endSeq && this.conn.peer.bufferedBytes === 0);
  }

  stop(): void {
    this.stopped = true;
    this.wake();
  }

  /**
   * New output was appended. A subscriber that is caught up and reading gets it at once, as it
   * came (no copy out of the ring, no extra turn of the event loop: keystroke echo stays fast);
   * any other is left to its pump. During a burst (`held`) nobody gets it at once: the service
   * releases the held output in one piece (see LoopService.outputAppended).
   */
  appended(chunk: AppendedChunk, held: boolean): void {
    if (held) return;
    const { peer } = this.conn;
    if (this.idle && !this.stopped && chunk.seq === this.nextSeq && peer.bufferedBytes <= SUBSCRIBER_HIGH_WATER) {
      sendOutput(peer, chunk, this.conn.runner.history);
      this.nextSeq = chunk.seq + chunk.bytes;
      if (peer.bufferedBytes <= SUBSCRIBER_HIGH_WATER) return;
    }
    this.wake();
  }

  /** Held output is released: a pump waiting for output sends what it has not sent. */
  release(): void {
    if (this.idle) this.wake();
  }

  private wake(): void {
    const w = this.wakeUp;
    this.wakeUp = null;
    w?.();
  }

  async pump(): Promise<void> {
    const { peer, runner, service } = this.conn;
    const history = runner.history;
    // Let the `subscribe` reply go out before the first event.
    await new Promise<void>((resolve) => setImmediate(resolve));
    try {
      while (!this.stopped && !peer.closed) {
        if (peer.bufferedBytes > SUBSCRIBER_HIGH_WATER) {
          await this.drainOrDrop();
          continue;
        }
        if (this.nextSeq >= history.endSeq) {
          service.progressed();
          this.idle = true;
          await new Promise<void>((resolve) => (this.wakeUp = resolve));
          this.idle = false;
          continue;
        }
        // From memory: a view into the ring, sent before anything else can append.
        const read = history.readBytes(this.nextSeq, OUTPUT_CHUNK_BYTES);
        const chunk: OutputBytes = read instanceof Promise ? await read : read;
        if (this.stopped || peer.closed) return;
        if (chunk.buf.length === 0) {
          // Nothing readable here (a log cut short under us): skip to what memory still holds.
          this.nextSeq = Math.max(this.nextSeq + 1, history.ringStart);
          continue;
        }
        sendOutput(peer, chunk, history);
        this.nextSeq = chunk.seq + chunk.buf.length;
      }
    } catch (err) {
      peer.close(`output could not be read: ${(err as Error).message}`);
    }
  }

  private drainOrDrop(): Promise<void> {
    const { peer, service } = this.conn;
    const stream = peer.stream;
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        stream.off('drain', done);
        stream.off('close', done);
        resolve();
      };
      const timer = setTimeout(() => {
        service.log(`dropped a subscriber that read nothing for ${service.stallTimeoutMs} ms`);
        peer.close(`not reading for ${service.stallTimeoutMs} ms`);
        done();
      }, service.stallTimeoutMs);
      stream.on('drain', done);
      stream.on('close', done);
    });
  }
}

class Connection {
  subscription: Subscription | null = null;
  /** Half-closed by the runner after the loop's end and its last byte (see drainAndClose). */
  ended = false;
  constructor(
    readonly peer: RpcPeer,
    readonly runner: LoopRunner,
    readonly service: LoopService,
  ) {}

  subscribe(fromSeq: number): void {
    this.subscription?.stop();
    const sub = new Subscription(this, fromSeq);
    this.subscription = sub;
    void sub.pump();
  }

  unsubscribe(): void {
    this.subscription?.stop();
    this.subscription = null;
  }

  /** No more bytes from us; the client closes its side once it has read them. */
  end(): void {
    this.ended = true;
    this.unsubscribe();
    this.peer.stream.end();
  }
}

export class LoopService {
  readonly stallTimeoutMs: number;
  private readonly connections = new Set<Connection>();
  /** Connections that turned interactive mode on; it ends when the last of them goes. */
  private readonly interactiveHolders = new Set<Connection>();
  private readonly progressListeners = new Set<() => void>();
  private closed = false;
  /** Output is coming in back-to-back turns of the event loop: hold it (see outputAppended). */
  private burst = false;
  private appendedSinceCheck = false;
  private heldBytes = 0;
  readonly log: (line: string) => void;

  private constructor(
    private readonly runner: LoopRunner,
    private readonly listener: Listener,
    private readonly opts: LoopServiceOptions,
  ) {
    this.stallTimeoutMs = opts.stallTimeoutMs ?? envMs('RALPH_STALL_TIMEOUT_MS') ?? DEFAULT_STALL_TIMEOUT_MS;
    this.log = opts.log ?? ((line) => process.stderr.write(`[ralph runner ${runner.id}] ${line}\n`));
    listener.onConnection((stream) => this.accept(stream));
    runner.history.on('append', (chunk) => this.outputAppended(chunk));
    runner.on('state', (e) => this.broadcast(LoopEvents.state, e));
    runner.on('iteration', (e) => this.broadcast(LoopEvents.iteration, e));
    runner.on('completed', (e) => this.broadcast(LoopEvents.completed, e));
  }

  /** Listens on the loop's socket (0600 in a 0700 directory) and serves `runner`. */
  static async start(runner: LoopRunner, opts: LoopServiceOptions): Promise<LoopService> {
    const listener = await listen(`unix:${opts.socketPath}`);
    return new LoopService(runner, listener, opts);
  }

  get address(): string {
    return this.listener.address;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /**
   * Coalescing without a timer. A PTY read yields at most a few KiB, one per turn of the event
   * loop, so a flood arrives as thousands of small chunks, and one event (one JSON line, one socket
   * write, one wake-up of the client) per chunk is what costs most. Output that comes after a
   * quiet turn of the loop (a keystroke's echo, a line now and then) is sent at once. Output that
   * comes in the very next turn after other output is a burst: it is held, and released as one
   * event per subscriber when BURST_BYTES have gathered or at the first turn that brings nothing
   * new (checked with setImmediate, which runs right after the poll phase: no added wait).
   */
  private outputAppended(chunk: AppendedChunk): void {
    const held = this.burst;
    for (const c of this.connections) c.subscription?.appended(chunk, held);
    this.appendedSinceCheck = true;
    if (held) {
      this.heldBytes += chunk.bytes;
      if (this.heldBytes >= BURST_BYTES) this.releaseHeld();
    } else {
      this.burst = true;
      setImmediate(this.checkBurst);
    }
  }

  private readonly checkBurst = (): void => {
    if (this.appendedSinceCheck) {
      this.appendedSinceCheck = false;
      setImmediate(this.checkBurst);
      return;
    }
    this.burst = false;
    this.releaseHeld();
  };

  private releaseHeld(): void {
    if (this.heldBytes === 0) return;
    this.heldBytes = 0;
    for (const c of this.connections) c.subscription?.release();
  }

  /** Called by pumps as they catch up (and when a connection goes), so drainAndClose hears at once. */
  progressed(): void {
    for (const l of this.progressListeners) l();
  }

  /**
   * After the loop has ended: every client still reading gets all the output and the `completed`
   * event over its own connection before the runner goes. Each connection is ended (half-closed,
   * after its last byte) once it has been sent everything, and the runner waits for the client to
   * close its side: a client that has read to the end does so. A connection that makes no progress
   * (takes no bytes, does not close) for the stall timeout is dropped; after `maxMs` in all (default
   * RALPH_END_DRAIN_MS or 60 s) everything is closed. Returns when no connection is left.
   */
  async drainAndClose(maxMs = envMs('RALPH_END_DRAIN_MS') ?? DEFAULT_END_DRAIN_MS): Promise<void> {
    const deadline = Date.now() + maxMs;
    const lastMove = new Map<Connection, { mark: string; at: number }>();
    await new Promise<void>((resolve) => {
      const check = () => {
        const now = Date.now();
        for (const c of this.connections) {
          if (c.peer.closed) continue;
          const sub = c.subscription;
          const mark = `${sub?.nextSeq ?? -1}:${c.peer.bufferedBytes}:${c.ended}`;
          const seen = lastMove.get(c);
          if (seen === undefined || seen.mark !== mark) {
            lastMove.set(c, { mark, at: now });
          } else if (now - seen.at >= this.stallTimeoutMs) {
            this.log(`dropped a client that took nothing for ${this.stallTimeoutMs} ms after the loop ended`);
            c.peer.close(`not reading for ${this.stallTimeoutMs} ms`);
            continue;
          }
          if (!c.ended && c.peer.bufferedBytes === 0 && (sub === null || sub.caughtUp)) c.end();
        }
        if (this.connections.size === 0 || now >= deadline) finish();
      };
      const finish = () => {
        clearInterval(poll);
        this.progressListeners.delete(check);
        resolve();
      };
      // Socket buffers empty without an event of ours, and a stalled client sends none: look now and then.
      const poll = setInterval(check, 20);
      this.progressListeners.add(check);
      check();
    });
    await this.close();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of this.connections) {
      c.unsubscribe();
      c.peer.close('the loop has ended');
    }
    await this.listener.close();
  }

  private broadcast(method: string, params: unknown): void {
    // A client told of a new state or the end may read the log file next: it must hold all output so far.
    this.runner.history.flush();
    for (const c of this.connections) c.peer.notify(method, params);
  }

  private accept(stream: Duplex): void {
    if (this.closed) {
      stream.destroy();
      return;
    }
    const peer = new RpcPeer(stream, {
      maxLineBytes: this.opts.maxLineBytes ?? MAX_LINE_BYTES,
      firstMessageTimeoutMs:
        this.opts.firstMessageTimeoutMs ?? envMs('RALPH_FIRST_MESSAGE_TIMEOUT_MS') ?? DEFAULT_FIRST_MESSAGE_TIMEOUT_MS,
    });
    const conn = new Connection(peer, this.runner, this);
    this.connections.add(conn);
    peer.onClose(() => this.forget(conn));
    this.registerMethods(conn);
  }

  private forget(conn: Connection): void {
    conn.unsubscribe();
    this.connections.delete(conn);
    if (this.interactiveHolders.delete(conn) && this.interactiveHolders.size === 0) {
      this.runner.setInteractive(false);
    }
    this.progressed();
  }

  private registerMethods(conn: Connection): void {
    const { peer } = conn;
    const runner = this.runner;
    const refusals = <T>(fn: () => T): T => {
      try {
        return fn();
      } catch (err) {
        if (err instanceof LoopRefusedError) throw new RpcError(ErrorCodes.Refused, err.message);
        throw err;
      }
    };

    peer.onRequest(LoopMethods.status, () => runner.statusResult());

    peer.onRequest(LoopMethods.subscribe, async (params): Promise<SubscribeResult> => {
      const p = paramsObject(params);
      const protocol = optionalInteger(p, 'protocol', { min: 1 }) ?? 1;
      if (protocol < LOOP_PROTOCOL) {
        throw new RpcError(
          ErrorCodes.Refused,
          `loop ${runner.id} speaks loop protocol ${LOOP_PROTOCOL} and this client ${protocol}: it is an older ralph; use the same ralph version as the loop's runner`,
          { protocol: LOOP_PROTOCOL },
        );
      }
      const fromSeq = optionalInteger(p, 'fromSeq', { min: 0 });
      const replay = p.replay === undefined ? 'screen' : requireOneOf(p, 'replay', ['screen', 'none'] as const);
      const endSeq = runner.history.endSeq;
      if (fromSeq !== undefined && fromSeq > endSeq) {
        throw new RpcError(ErrorCodes.InvalidParams, `fromSeq ${fromSeq} is past the end of the output (${endSeq})`);
      }
      const base = () => ({ protocol: LOOP_PROTOCOL, ...runner.size, status: runner.state().status, interactive: runner.interactive });
      if (fromSeq !== undefined) {
        conn.subscribe(fromSeq);
        return { seq: fromSeq, endSeq, ...base() };
      }
      if (replay === 'none') {
        conn.subscribe(endSeq);
        return { seq: endSeq, endSeq, ...base() };
      }
      const snap = await runner.screen.snapshot();
      if (peer.closed) throw new RpcError(ErrorCodes.InternalError, 'connection closed');
      conn.subscribe(snap.seq);
      return { seq: snap.seq, endSeq: runner.history.endSeq, screen: snap.screen, ...base() };
    });

    peer.onRequest(LoopMethods.unsubscribe, () => {
      conn.unsubscribe();
      return null;
    });

    const write = (params: unknown): null => {
      const data = requireString(paramsObject(params), 'data');
      if (Buffer.byteLength(data) > MAX_WRITE_BYTES) {
        throw new RpcError(ErrorCodes.InvalidParams, `data must be at most ${MAX_WRITE_BYTES} bytes`);
      }
      refusals(() => runner.write(data));
      return null;
    };
    peer.onRequest(LoopMethods.write, write);
    // Keystrokes as notifications: nothing to answer unless they could not be delivered.
    peer.onNotification(LoopMethods.write, (params) => {
      try {
        write(params);
      } catch (err) {
        const refused: WriteRefusedEvent = { message: (err as Error).message };
        peer.notify(LoopEvents.writeRefused, refused);
      }
    });

    peer.onRequest(LoopMethods.resize, (params) => {
      const p = paramsObject(params);
      const cols = requireInteger(p, 'cols', { min: 2, max: MAX_TERMINAL_SIZE });
      const rows = requireInteger(p, 'rows', { min: 1, max: MAX_TERMINAL_SIZE });
      runner.resize(cols, rows);
      return runner.size;
    });

    peer.onRequest(LoopMethods.interactive, (params) => {
      const on = requireBoolean(paramsObject(params), 'on');
      refusals(() => {
        if (on) {
          this.interactiveHolders.add(conn);
        } else {
          // Turning it off is the user's explicit wish: it ends for every connection holding it.
          this.interactiveHolders.clear();
        }
        runner.setInteractive(on);
      });
      return { interactive: runner.interactive };
    });

    peer.onRequest(LoopMethods.stop, (params) => {
      const p = paramsObject(params);
      const when = p.when === undefined ? 'now' : requireOneOf(p, 'when', ['now', 'after-iteration'] as const);
      runner.stop(when);
      return runner.state();
    });

    peer.onRequest(LoopMethods.addIterations, (params) => {
      const n = requireInteger(paramsObject(params), 'n', { min: 1, max: MAX_ITERATIONS });
      return { maxIterations: refusals(() => runner.addIterations(n)) };
    });
  }
}
