// A loop's output as one unbroken stream, across dropped connections: connect, subscribe, and on a
// drop reconnect with backoff and resubscribe from the last byte seen (`fromSeq`), so nothing is lost
// and nothing is shown twice. Used by `attach`, `logs -f` and `stop`; knows nothing of terminals.

import { Buffer } from 'node:buffer';
import { ErrorCodes, RpcError } from '../rpc/messages.js';
import type { RpcPeer } from '../rpc/peer.js';
import {
  clampTerminalSize,
  LOOP_PROTOCOL,
  LoopEvents,
  LoopMethods,
  type CompletedEvent,
  type LoopStatusResult,
  type OutputEvent,
  type OutputEventV1,
  type StateEvent,
  type SubscribeParams,
  type SubscribeResult,
  type WriteParams,
  type WriteRefusedEvent,
} from '../loop/protocol.js';
import { isFinal, type LoopStatus } from '../store/loops.js';

/** How long the runner (or the daemon in between) may take to answer a request of the feed's. */
const ANSWER_TIMEOUT_MS = 30_000;
/**
 * With nothing heard from the loop for this long, the feed asks for its status: a connection that
 * died without a word (a suspended laptop, a NAT entry gone) is found and replaced, instead of a
 * frozen screen and keystrokes sent into nothing.
 */
const QUIET_CHECK_MS = 15_000;
const QUIET_ANSWER_TIMEOUT_MS = 10_000;

/** How a loop ended, as far as this client could learn it. */
export interface LoopEnd {
  status: LoopStatus;
  reason: string | null;
  iteration: number;
}

export interface LoopFeedOptions {
  /** Opens a fresh connection to the loop: the first time and on every reconnect. */
  connect(): Promise<RpcPeer>;
  /** Start at this byte offset; without it, at the current screen (or, with replay "none", at the end). */
  fromSeq?: number;
  replay?: 'screen' | 'none';
  /**
   * Asked when the loop cannot be reached: has it ended meanwhile? (The DB row is final, or its
   * runner is gone.) Undefined means "keep trying".
   */
  endedWhileAway(): Promise<LoopEnd | undefined>;
  /**
   * The loop's output from `fromSeq` to its end as far as it can be read without the runner
   * (a local loop's log file, where seq == byte offset). Fills what a dead or departed runner
   * could no longer send.
   */
  readRest?(fromSeq: number): Promise<Buffer>;
  /** Sent as `resize` before each subscribe, so the agent's PTY matches this terminal. */
  size?(): { cols: number; rows: number } | undefined;
  onScreen?(screen: string): void;
  /** Output bytes [seq, seq + data.length): whole UTF-8 characters, each byte exactly once. */
  onOutput(data: Buffer, seq: number): void;
  /** Keys sent with write() that the runner did not deliver, and why. */
  onWriteRefused?(message: string): void;
  onState?(event: StateEvent): void;
  /** Each time a subscription is in place (after the screen, before any output it leads to). */
  onSubscribed?(result: SubscribeResult, peer: RpcPeer, isReconnect: boolean): void | Promise<void>;
  onDisconnected?(reason: string): void;
  /** Backoff between connection attempts. */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** How long the first connection may keep failing before start() gives up. */
  firstConnectTimeoutMs?: number;
  /** Quiet this long, the loop is asked for its status (default QUIET_CHECK_MS), and must answer within quietAnswerTimeoutMs. */
  quietCheckMs?: number;
  quietAnswerTimeoutMs?: number;
}

export class LoopFeed {
  /** The next byte offset expected: everything before it has been delivered exactly once. */
  nextSeq: number | undefined;
  private peer: RpcPeer | undefined;
  /** The connection whose subscription is in place: only its loss means "reconnect". */
  private live: RpcPeer | undefined;
  private subscribing = false;
  /** The loop protocol of the current connection's runner (older runners speak 1), once its subscribe answer is in. */
  private protocol = LOOP_PROTOCOL;
  /** The connection whose subscribe answer has arrived: keys go out only on it (in its runner's protocol). */
  private answered: RpcPeer | undefined;
  private queued: Array<{ seq: number; data: Buffer }> = [];
  private completed: CompletedEvent | undefined;
  private closedByUs = false;
  private finished = false;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Reading is paused until the consumer's stream drains. */
  private holding = false;
  private resolveEnded!: (end: LoopEnd) => void;
  /** Resolves once, when the loop has ended and its last output was delivered. */
  readonly ended: Promise<LoopEnd>;

  constructor(private readonly opts: LoopFeedOptions) {
    this.nextSeq = opts.fromSeq;
    this.ended = new Promise((resolve) => (this.resolveEnded = resolve));
  }

  /** The live connection, if there is one right now. */
  get connection(): RpcPeer | undefined {
    return this.peer && !this.peer.closed ? this.peer : undefined;
  }

  /** The live connection once its runner has answered the subscribe (keys can go out on it). */
  get subscribedConnection(): RpcPeer | undefined {
    const peer = this.connection;
    return peer && peer === this.answered ? peer : undefined;
  }

  /**
   * Makes the first connection and subscription, retrying with backoff for a while (a runner may be
   * just starting). Resolves when subscribed or when the loop turns out to have ended already.
   */
  async start(): Promise<void> {
    const deadline = Date.now() + (this.opts.firstConnectTimeoutMs ?? 10_000);
    let delay = this.opts.retryInitialMs ?? 50;
    for (;;) {
      try {
        await this.connectOnce(false);
        return;
      } catch (err) {
        if (this.closedByUs || this.finished) return;
        const end = await this.opts.endedWhileAway();
        if (end) return this.finishFromElsewhere(end);
        if (Date.now() + delay > deadline) throw err;
        await new Promise((r) => setTimeout(r, delay));
        delay = Math.min(delay * 2, this.opts.retryMaxMs ?? 2000);
      }
    }
  }

  /** Stops everything (detach): no reconnect, no end. */
  close(): void {
    this.closedByUs = true;
    clearTimeout(this.retryTimer);
    this.peer?.close('detached');
  }

  /**
   * Sends keys to the agent (the loop must be in interactive mode): fire and forget, so keystrokes
   * never wait for each other; a refusal comes back through onWriteRefused. False when not
   * connected right now, or the runner has not answered this connection's subscribe yet (its
   * protocol, and so how keys are sent, is not known): the keys are not sent.
   */
  write(data: string): boolean {
    const peer = this.connection;
    if (!peer || peer !== this.answered) return false;
    const params: WriteParams = { data };
    if (this.protocol >= 2) peer.notify(LoopMethods.write, params);
    else peer.request(LoopMethods.write, params).catch((err: Error) => {
      if (!peer.closed) this.opts.onWriteRefused?.(err.message);
    });
    return true;
  }

  /**
   * Flow control for a consumer whose write() said "wait": stop reading the connection until `out`
   * drains. (The runner then waits for us, or drops us and we resume from the last byte seen.)
   */
  holdUntilDrained(out: NodeJS.WritableStream): void {
    if (this.holding) return;
    this.holding = true;
    this.peer?.stream.pause();
    out.once('drain', () => {
      this.holding = false;
      this.peer?.stream.resume();
    });
  }

  private async connectOnce(isReconnect: boolean): Promise<void> {
    const peer = await this.opts.connect();
    if (this.closedByUs) {
      peer.close('detached');
      return;
    }
    try {
      await this.subscribeOn(peer, isReconnect);
    } catch (err) {
      peer.close('subscribe failed');
      throw err;
    }
  }

  private async subscribeOn(peer: RpcPeer, isReconnect: boolean): Promise<void> {
    this.peer = peer;
    this.answered = undefined;
    peer.onNotification(LoopEvents.output, (p, _peer, payload) => {
      const seq = (p as OutputEvent | null)?.seq;
      if (typeof seq !== 'number') return;
      if (payload !== undefined) this.onOutputEvent(seq, payload);
      else if (typeof (p as OutputEventV1).data === 'string') this.onOutputEvent(seq, Buffer.from((p as OutputEventV1).data, 'utf8'));
    });
    peer.onNotification(LoopEvents.state, (p) => this.opts.onState?.(p as StateEvent));
    peer.onNotification(LoopEvents.completed, (p) => this.onCompleted(p as CompletedEvent));
    peer.onNotification(LoopEvents.writeRefused, (p) => this.opts.onWriteRefused?.(String((p as WriteRefusedEvent | null)?.message)));
    peer.onClose((reason) => this.onClose(peer, reason));

    const size = this.opts.size?.();
    if (size) {
      await peer.request(LoopMethods.resize, clampTerminalSize(size), { timeoutMs: ANSWER_TIMEOUT_MS }).catch((err: unknown) => {
        // A size the runner refuses leaves the agent at its size; only a connection gone is fatal.
        if (!(err instanceof RpcError && err.code === ErrorCodes.InvalidParams)) throw err;
      });
    }
    const params: SubscribeParams =
      this.nextSeq !== undefined
        ? { protocol: LOOP_PROTOCOL, fromSeq: this.nextSeq }
        : { protocol: LOOP_PROTOCOL, replay: this.opts.replay ?? 'screen' };
    // Until the subscription is in place (screen shown, interactive mode re-asserted), output
    // events wait in `queued`: the peer hands notifications over before a reply's promise continues.
    this.subscribing = true;
    let result: SubscribeResult;
    try {
      result = await peer.request<SubscribeResult>(LoopMethods.subscribe, params, { timeoutMs: ANSWER_TIMEOUT_MS });
      this.protocol = result.protocol ?? 1;
      this.answered = peer;
      if (result.screen !== undefined) this.opts.onScreen?.(result.screen);
      if (this.nextSeq === undefined || result.seq > this.nextSeq) {
        // First subscription (events start where the screen ends), or the runner holds no more
        // history from where we were: take what the log still has, then go on from the runner's seq.
        if (this.nextSeq !== undefined && this.opts.readRest) this.deliverFromLog(await this.opts.readRest(this.nextSeq), result.seq);
        this.nextSeq = result.seq;
      }
      await this.opts.onSubscribed?.(result, peer, isReconnect);
      if (peer.closed) throw new Error('the connection closed while subscribing');
      this.live = peer;
      this.checkWhenQuiet(peer);
    } catch (err) {
      this.queued = []; // the resubscription asks again from nextSeq
      throw err;
    } finally {
      this.subscribing = false;
    }
    for (const e of this.queued.splice(0)) this.onOutputEvent(e.seq, e.data);
    this.maybeFinish(); // a `completed` that came while subscribing
    if (isFinal(result.status) && !this.completed) {
      // It ended before we subscribed: the `completed` event went out to others.
      const s = await peer.request<LoopStatusResult>(LoopMethods.status).catch(() => undefined);
      this.onCompleted({
        status: result.status,
        reason: s?.reason ?? null,
        iteration: s?.iteration ?? 0,
        seq: result.endSeq,
      });
    }
  }

  /** Asks the loop for its status when it has been quiet for QUIET_CHECK_MS; no answer closes the connection (and so reconnects). */
  private checkWhenQuiet(peer: RpcPeer): void {
    const quietMs = this.opts.quietCheckMs ?? QUIET_CHECK_MS;
    const answerMs = this.opts.quietAnswerTimeoutMs ?? QUIET_ANSWER_TIMEOUT_MS;
    let heard = Date.now();
    let asking = false;
    const onData = () => (heard = Date.now());
    peer.stream.on('data', onData);
    const timer = setInterval(() => {
      // While we hold reading (the terminal is slow) nothing can be heard: not the connection's fault.
      if (asking || this.holding || Date.now() - heard < quietMs) return;
      asking = true;
      peer.request(LoopMethods.status, undefined, { timeoutMs: answerMs }).then(
        () => (asking = false),
        () => peer.close(`no answer from the loop within ${answerMs / 1000} s`),
      );
    }, quietMs / 3);
    timer.unref();
    peer.onClose(() => {
      clearInterval(timer);
      peer.stream.off('data', onData);
    });
  }

  private onOutputEvent(seq: number, data: Buffer): void {
    if (this.finished) return;
    if (this.subscribing || this.nextSeq === undefined) {
      this.queued.push({ seq, data });
      return;
    }
    const end = seq + data.length;
    if (end <= this.nextSeq) return; // seen already (a resubscribe overlapping what came before)
    const from = this.nextSeq;
    this.nextSeq = end;
    this.opts.onOutput(seq < from ? data.subarray(from - seq) : data, Math.max(seq, from));
    this.maybeFinish();
  }

  private deliverFromLog(bytes: Buffer, upTo: number): void {
    if (bytes.length === 0 || this.nextSeq === undefined) return;
    const wanted = bytes.subarray(0, Math.max(0, upTo - this.nextSeq));
    if (wanted.length === 0) return;
    const seq = this.nextSeq;
    this.nextSeq += wanted.length;
    this.opts.onOutput(wanted, seq);
  }

  private onCompleted(e: CompletedEvent): void {
    if (this.completed || typeof e?.status !== 'string') return;
    this.completed = e;
    this.maybeFinish();
  }

  /** Ends once the loop has completed and every byte up to its last has been delivered. */
  private maybeFinish(): void {
    const c = this.completed;
    if (!c || this.finished || this.subscribing) return;
    if (this.nextSeq !== undefined && this.nextSeq < c.seq) return;
    this.finish({ status: c.status, reason: c.reason, iteration: c.iteration });
  }

  private finish(end: LoopEnd): void {
    if (this.finished) return;
    this.finished = true;
    clearTimeout(this.retryTimer);
    this.peer?.close('the loop has ended');
    this.resolveEnded(end);
  }

  /** The loop ended and its runner is gone: what it could not send is in the log. */
  private async finishFromElsewhere(end: LoopEnd): Promise<void> {
    if (this.nextSeq !== undefined && this.opts.readRest) {
      this.deliverFromLog(await this.opts.readRest(this.nextSeq), Number.MAX_SAFE_INTEGER);
    }
    this.finish(end);
  }

  private onClose(peer: RpcPeer, reason: string): void {
    if (peer !== this.live || this.closedByUs || this.finished) return;
    this.live = undefined;
    if (this.completed) {
      // The runner closed after the end before we had every byte (its linger ran out): read the rest.
      const c = this.completed;
      void this.finishFromElsewhere({ status: c.status, reason: c.reason, iteration: c.iteration });
      return;
    }
    this.opts.onDisconnected?.(reason);
    this.scheduleReconnect(this.opts.retryInitialMs ?? 50);
  }

  private scheduleReconnect(delay: number): void {
    this.retryTimer = setTimeout(async () => {
      if (this.closedByUs || this.finished) return;
      try {
        await this.connectOnce(true);
      } catch {
        if (this.closedByUs || this.finished) return;
        const end = await this.opts.endedWhileAway().catch(() => undefined);
        if (end) return void this.finishFromElsewhere(end);
        this.scheduleReconnect(Math.min(delay * 2, this.opts.retryMaxMs ?? 2000));
      }
    }, delay);
  }
}
