// One `ralph attach`: the loop's screen and live output on this terminal, keys routed by mode,
// reconnection across drops, and the terminal given back on every way out.

import { setTimeout as sleep } from 'node:timers/promises';
import { describeEnd } from '../describe.js';
import { watchCompletionsForRow, type CompletionWatch } from '../events.js';
import { endOf, freshRow, loopAccess } from '../loop-access.js';
import { LoopFeed, type LoopEnd } from '../loop-feed.js';
import { clampTerminalSize, LoopMethods } from '../../loop/protocol.js';
import type { RpcPeer } from '../../rpc/peer.js';
import type { LoopRow, LoopStore } from '../../store/loops.js';
import { KeyRouter, type KeyAction } from './keys.js';
import { AttachTerminal, type AttachIo } from './terminal.js';

export interface AttachOptions {
  /** Start in interactive mode. */
  interactive: boolean;
  /** Redraw the loop's current screen first (else only new output). */
  replay: boolean;
}

export type AttachOutcome =
  | { kind: 'ended'; end: LoopEnd; line: string; /** It ended while attached (not before). */ seenEnd: boolean }
  | { kind: 'detached'; line: string }
  | { kind: 'signal'; signal: NodeJS.Signals; line: string };

const WATCH_HELP = 'watching — i: interactive · s: stop · q: detach';
const INTERACTIVE_HELP = 'interactive — keys go to the agent · Ctrl-] returns to watch mode';
const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
/** How long leaving interactive mode may hold up a detach or a signal. */
const GOODBYE_TIMEOUT_MS = 500;

export async function attachToLoop(
  store: LoopStore,
  loop: LoopRow,
  opts: AttachOptions,
  io: AttachIo = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr },
): Promise<AttachOutcome> {
  const row = await freshRow(store, loop);
  const endedAlready = endOf(row);
  if (endedAlready) {
    return { kind: 'ended', end: endedAlready, line: `${describeEnd(row.id, endedAlready)} (its output: ralph logs ${row.id})`, seenEnd: false };
  }
  return new AttachSession(store, row, opts, new AttachTerminal(io)).run();
}

class AttachSession {
  private readonly keys: KeyRouter;
  /** Whether this client wants interactive mode on: re-asserted after a reconnect. */
  private wantInteractive: boolean;
  /**
   * Interactive mode has been asked for on the current connection: typed keys may be sent (the
   * runner takes requests in order, so they arrive after it).
   */
  private interactiveReady = false;
  /**
   * Keys typed before interactive mode was first in place (e.g. piped in before attach connected),
   * in order. Not while the connection is down: keys delivered minutes late to a screen that has
   * moved on could answer a question nobody saw, so those are dropped with a note instead.
   */
  private outbox: string[] = [];
  /** The connection was lost and is not back yet. */
  private disconnected = false;
  /** stdin ended while interactive: detach once every key typed has reached the loop. */
  private stdinEnded = false;
  private readonly feed: LoopFeed;
  private leave!: (outcome: { kind: 'detached' } | { kind: 'signal'; signal: NodeJS.Signals }) => void;
  private readonly left = new Promise<{ kind: 'detached' } | { kind: 'signal'; signal: NodeJS.Signals }>((resolve) => (this.leave = resolve));
  private warnedOffline = false;
  /** A remote loop's daemon events, applied to the local DB while attached (null: none, or not yet). */
  private completions: CompletionWatch | null = null;
  private finished = false;

  constructor(
    private readonly store: LoopStore,
    private readonly row: LoopRow,
    opts: AttachOptions,
    private readonly term: AttachTerminal,
  ) {
    this.wantInteractive = opts.interactive;
    // With --interactive every key is the agent's from the start, even before the connection is up.
    this.keys = new KeyRouter(opts.interactive ? 'interactive' : 'watch');
    this.feed = new LoopFeed({
      ...loopAccess(store, row),
      replay: opts.replay ? 'screen' : 'none',
      size: () => term.size(),
      onScreen: (screen) => term.write(screen),
      onOutput: (data) => this.showOutput(data),
      onWriteRefused: (message) => term.note(`write failed: ${message}`),
      onSubscribed: (_result, peer, isReconnect) => this.subscribed(peer, isReconnect),
      onDisconnected: (reason) => {
        this.interactiveReady = false;
        this.disconnected = true;
        const lost = this.outbox.splice(0).length;
        term.note(`connection lost (${reason}); reconnecting…${lost > 0 ? ` (${lost} key${lost === 1 ? '' : 's'} typed meanwhile not delivered)` : ''}`);
      },
    });
  }

  async run(): Promise<AttachOutcome> {
    const onSignal = (signal: NodeJS.Signals) => this.leave({ kind: 'signal', signal });
    for (const s of SIGNALS) process.on(s, onSignal);
    try {
      this.term.enter(
        (chunk) => this.onKeys(chunk),
        () => this.onStdinEnd(),
      );
      this.term.onResize(() => this.sendSize());
      if (!this.wantInteractive) this.term.note(`attached to loop ${this.row.id}: ${WATCH_HELP}`);
      this.watchCompletions();
      // q or a signal count while the first connection is still being tried, too.
      const ended = this.feed.start().then(() => this.feed.ended);
      ended.catch(() => {}); // after a detach, a late connection failure has nobody to tell
      const outcome = await Promise.race([ended.then((end) => ({ kind: 'ended' as const, end })), this.left]);
      if (outcome.kind !== 'ended') await this.leaveInteractive();
      this.feed.close();
      this.term.restore();
      if (outcome.kind === 'ended') {
        if (this.row.location === 'remote') await freshRow(this.store, this.row); // record the end locally
        return { ...outcome, line: describeEnd(this.row.id, outcome.end), seenEnd: true };
      }
      if (outcome.kind === 'detached') {
        return { ...outcome, line: `detached from loop ${this.row.id}; it runs on (ralph attach ${this.row.id} to come back)` };
      }
      return { ...outcome, line: `detached from loop ${this.row.id} on ${outcome.signal}; it runs on` };
    } finally {
      this.finished = true;
      this.completions?.close();
      for (const s of SIGNALS) process.off(s, onSignal);
      this.feed.close();
      this.term.restore();
    }
  }

  /**
   * While attached to a remote loop, the daemon's loop events (this loop's end, and any other loop of
   * that box) go into the local DB at once. Best effort: without it, the end is still recorded when
   * attach ends and other loops on the next `ralph status`.
   */
  private watchCompletions(): void {
    watchCompletionsForRow(this.store, this.row).then(
      (watch) => {
        if (this.finished) watch?.close();
        else this.completions = watch;
      },
      () => {}, // unreachable: the feed says so, and reconnects on its own
    );
  }

  private showOutput(data: Buffer): void {
    if (!this.term.write(data)) this.feed.holdUntilDrained(this.term.io.stdout);
  }

  private async subscribed(peer: RpcPeer, isReconnect: boolean): Promise<void> {
    this.warnedOffline = false;
    this.disconnected = false;
    if (isReconnect) this.term.note('reconnected');
    if (!this.wantInteractive) return;
    // Asked even when the loop is interactive already (someone else holds it): the runner counts
    // who holds the mode, and ends it when the last holder leaves.
    const asked = peer.request(LoopMethods.interactive, { on: true });
    this.interactiveOn();
    try {
      await asked;
      if (!isReconnect) this.term.note(`attached to loop ${this.row.id}: ${INTERACTIVE_HELP}`);
    } catch (err) {
      this.interactiveRefused(`cannot enter interactive mode: ${(err as Error).message}`);
    }
  }

  /** Interactive mode is (being) turned on: keys typed meanwhile go out now, in order, after that request. */
  private interactiveOn(): void {
    if (!this.wantInteractive) return;
    this.keys.mode = 'interactive';
    this.interactiveReady = true;
    for (const data of this.outbox.splice(0)) this.sendKeys(data);
    this.leaveIfInputDone();
  }

  private interactiveRefused(note: string): void {
    this.wantInteractive = false;
    this.interactiveReady = false;
    this.keys.mode = 'watch';
    if (this.outbox.length > 0) note += ` (${this.outbox.length} key${this.outbox.length === 1 ? '' : 's'} typed meanwhile not sent)`;
    this.outbox = [];
    this.term.note(note);
    this.leaveIfInputDone();
  }

  /**
   * Keys go out as they come, unanswered (a refusal comes back as a note); they wait in the outbox
   * only while interactive mode is being put in place. While the connection is down they are
   * dropped, and the user told. The runner takes messages in order, so the request that leaves
   * interactive mode on the way out is answered only after every key sent before it was handled.
   */
  private sendKeys(data: string): void {
    if (this.interactiveReady) {
      if (!this.feed.write(data)) this.notConnected();
    } else if (this.disconnected) {
      this.notConnected();
    } else {
      this.outbox.push(data);
    }
  }

  /** stdin ended: in interactive mode, leave it (the loop goes on) and detach; watching goes on. */
  private onStdinEnd(): void {
    if (!this.wantInteractive) return;
    this.stdinEnded = true;
    this.leaveIfInputDone();
  }

  private leaveIfInputDone(): void {
    if (!this.stdinEnded) return;
    if (this.wantInteractive && (!this.interactiveReady || this.outbox.length > 0)) return;
    this.leave({ kind: 'detached' });
  }

  private onKeys(chunk: Buffer): void {
    for (const action of this.keys.route(chunk)) this.act(action);
  }

  private act(action: KeyAction): void {
    switch (action.kind) {
      case 'send':
        this.sendKeys(action.data);
        return;
      case 'interactive': {
        this.wantInteractive = action.on;
        this.interactiveReady = false;
        if (!action.on) this.outbox = [];
        this.term.note(action.on ? INTERACTIVE_HELP : WATCH_HELP);
        // Not before the runner has answered this connection's subscribe: keys typed meanwhile wait
        // in the outbox, and subscribed() asks for the mode and sends them.
        const peer = this.feed.subscribedConnection;
        if (!peer) return;
        peer
          .request(LoopMethods.interactive, { on: action.on })
          // Refused (the loop is ending, say): back to watching.
          .catch((err: Error) => this.interactiveRefused(`interactive failed: ${err.message}`));
        if (action.on) this.interactiveOn();
        return;
      }
      case 'ask-stop':
        this.term.note(`stop loop ${this.row.id} now? [y/N]`);
        return;
      case 'stop':
        this.term.note(`stopping loop ${this.row.id}…`);
        this.request(LoopMethods.stop, { when: 'now' });
        return;
      case 'keep-running':
        this.term.note(`not stopped. ${WATCH_HELP}`);
        return;
      case 'detach':
        this.leave({ kind: 'detached' });
        return;
    }
  }

  /** Fire and forget (keystrokes must not wait for each other); failures become a note. */
  private request(method: string, params: unknown, onError?: () => void): void {
    const peer = this.feed.connection;
    if (!peer) {
      this.notConnected();
      onError?.();
      return;
    }
    peer.request(method, params).catch((err: Error) => {
      if (!peer.closed) this.term.note(`${method} failed: ${err.message}`);
      onError?.();
    });
  }

  private notConnected(): void {
    if (!this.warnedOffline) this.term.note('not connected right now: that key was not delivered');
    this.warnedOffline = true;
  }

  private sendSize(): void {
    const size = this.term.size();
    if (size) this.feed.connection?.request(LoopMethods.resize, clampTerminalSize(size)).catch(() => {});
  }

  /** A detaching client that turned interactive mode on turns it off, so the loop can go on. */
  private async leaveInteractive(): Promise<void> {
    const peer = this.feed.connection;
    if (!this.wantInteractive || !peer) return;
    await Promise.race([peer.request(LoopMethods.interactive, { on: false }).catch(() => {}), sleep(GOODBYE_TIMEOUT_MS)]);
  }
}
