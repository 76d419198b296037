// The selected loop, live: its screen replayed and then its output as it comes, through the same
// LoopFeed as `ralph attach` (reconnect with backoff, resume from the last byte seen), into a pane
// emulator sized to the pane (the agent's PTY follows it, as it follows attach's terminal). A loop
// that has ended shows the tail of its stored log instead. Typing in place uses the feed's connection,
// as attach's interactive mode does. Knows nothing of the screen: it reports through callbacks.

import { readStoredTail, loopAccess, endOf } from '../client/loop-access.js';
import { LoopFeed } from '../client/loop-feed.js';
import { LoopMethods } from '../loop/protocol.js';
import type { RpcPeer } from '../rpc/peer.js';
import type { LoopRow, LoopStore } from '../store/loops.js';
import { PaneTerminal } from './pane.js';
import type { LiveHeader } from './state.js';

export interface LiveCallbacks {
  header(patch: Partial<LiveHeader>): void;
  /** The pane's content changed (after a parse; the caller paces its frames). */
  changed(): void;
}

/** Lines kept above a live pane's screen (the screen replay brings up to 500 of the runner's). */
const LIVE_SCROLLBACK = 2000;
/** Lines kept of a log read for scrolling back. */
const HISTORY_SCROLLBACK = 20_000;
/** How much of the stored log is read for scrolling back (or for a loop that has ended). */
const HISTORY_BYTES = 1024 * 1024;
/** After the first connection failed for good (runner not answering, remote away): try again this often. */
const RETRY_MS = 5000;
/** How long leaving interactive mode may hold up closing. */
const GOODBYE_MS = 500;

export class LiveView {
  readonly pane: PaneTerminal;
  private feed: LoopFeed | undefined;
  private retry: NodeJS.Timeout | undefined;
  private closed = false;
  private wantInteractive = false;

  constructor(
    private readonly store: LoopStore,
    readonly row: LoopRow,
    cols: number,
    rows: number,
    private readonly cb: LiveCallbacks,
  ) {
    this.pane = new PaneTerminal(cols, rows, { scrollback: LIVE_SCROLLBACK, onParsed: () => cb.changed() });
  }

  get loopId(): string {
    return this.row.id;
  }

  /** Whether the pane follows a running loop (else it shows an ended loop's log). */
  get following(): boolean {
    return this.feed !== undefined;
  }

  get interactive(): boolean {
    return this.wantInteractive;
  }

  start(): void {
    const ended = endOf(this.store.get(this.row.id) ?? this.row);
    if (ended) {
      this.cb.header({ connection: 'ended', status: ended.status, reason: ended.reason, iteration: ended.iteration });
      void this.showStoredTail(this.pane);
      return;
    }
    this.follow();
  }

  resize(cols: number, rows: number): void {
    this.pane.resize(cols, rows);
    this.feed?.connection?.request(LoopMethods.resize, { cols, rows }).catch(() => {});
  }

  /**
   * Turns interactive mode on or off for this client (the runner holds it per connection). Off
   * always takes at once here: without a connection there is nothing to tell the runner (it let
   * interactive mode go with the connection), and a reconnect must not turn it on again.
   */
  async setInteractive(on: boolean): Promise<void> {
    if (!on) this.wantInteractive = false;
    const peer = this.feed?.connection;
    if (!peer) {
      if (!on) return;
      throw new Error(`not connected to loop ${this.row.id}`);
    }
    this.wantInteractive = on;
    try {
      await peer.request(LoopMethods.interactive, { on });
    } catch (err) {
      this.wantInteractive = false;
      throw err;
    }
  }

  /** Keys typed in interactive mode, to the agent; fire and forget (keys must not wait for each other). */
  send(data: string): void {
    const peer = this.feed?.connection;
    if (!peer) {
      this.cb.header({ note: 'not connected right now: that key was not delivered' });
      return;
    }
    peer.request(LoopMethods.write, { data }).catch((err: Error) => {
      if (!peer.closed) this.cb.header({ note: `write failed: ${err.message}` });
    });
  }

  /**
   * The loop's log for scrolling back: an ended loop's pane already is; for a running one, the stored
   * tail is read and laid out at the pane's width in an emulator of its own (the live pane goes on).
   */
  async history(): Promise<PaneTerminal> {
    if (!this.following) return this.pane;
    const pane = new PaneTerminal(this.pane.cols, this.pane.rows, { scrollback: HISTORY_SCROLLBACK, unbudgeted: true });
    try {
      await this.showStoredTail(pane);
    } catch (err) {
      pane.dispose();
      throw err;
    }
    return pane;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retry);
    const peer = this.feed?.connection;
    if (this.wantInteractive && peer) {
      await Promise.race([peer.request(LoopMethods.interactive, { on: false }).catch(() => {}), new Promise((r) => setTimeout(r, GOODBYE_MS))]);
    }
    this.feed?.close();
    this.pane.dispose();
  }

  private follow(): void {
    if (this.closed) return;
    this.cb.header({ connection: 'connecting', note: null });
    const feed = new LoopFeed({
      ...loopAccess(this.store, this.row),
      replay: 'screen',
      size: () => ({ cols: this.pane.cols, rows: this.pane.rows }),
      onScreen: (screen) => {
        this.pane.reset();
        this.pane.write(screen);
      },
      onOutput: (data) => this.pane.write(data.toString('utf8')),
      onState: (e) =>
        this.cb.header({
          status: e.status,
          iteration: e.iteration,
          maxIterations: e.maxIterations,
          story: e.currentStory,
          reason: e.reason,
          pausedUntil: e.pausedUntil ?? null,
          interactive: e.interactive,
        }),
      onSubscribed: (result, peer, isReconnect) => this.subscribed(result.status, result.interactive, peer, isReconnect),
      onDisconnected: (reason) => this.cb.header({ connection: 'reconnecting', note: `connection lost (${reason}); reconnecting…` }),
    });
    this.feed = feed;
    feed
      .start()
      .then(() => feed.ended)
      .then(
        (end) => {
          if (this.closed) return;
          this.wantInteractive = false;
          this.cb.header({ connection: 'ended', status: end.status, reason: end.reason, iteration: end.iteration, interactive: false, note: null });
        },
        (err: Error) => {
          if (this.closed) return;
          // Never reached: say why, and try again a little later (a daemon restarting, a remote coming back).
          this.cb.header({ connection: 'unreachable', note: `${err.message}; trying again` });
          this.retry = setTimeout(() => this.follow(), RETRY_MS);
        },
      );
  }

  private async subscribed(status: string, runnerInteractive: boolean, peer: RpcPeer, isReconnect: boolean): Promise<void> {
    this.cb.header({ connection: 'live', status, interactive: runnerInteractive, note: isReconnect ? 'reconnected' : null });
    if (this.wantInteractive && !runnerInteractive) {
      // A reconnect: the runner let interactive mode go with the old connection.
      await peer.request(LoopMethods.interactive, { on: true }).catch(() => {
        this.wantInteractive = false;
      });
    }
  }

  private async showStoredTail(pane: PaneTerminal): Promise<void> {
    try {
      const { seq, data } = await readStoredTail(this.row, HISTORY_BYTES);
      let bytes = data;
      if (seq > 0) {
        // Started mid-log: begin at a line start.
        const nl = bytes.indexOf(0x0a);
        bytes = nl === -1 ? bytes : bytes.subarray(nl + 1);
      }
      pane.write(bytes.toString('utf8'));
      await pane.whenIdle();
      this.cb.changed();
    } catch (err) {
      if (pane === this.pane) this.cb.header({ note: `cannot read its log: ${(err as Error).message}` });
      else throw err;
    }
  }
}
