// The loop supervisor: keeps one connection to every open loop's runner, hears its `completed` event,
// notices a runner that vanished without one, and tells the daemon's subscribers. It owns no loop
// state: each runner writes its own row, and a restarted daemon re-adopts open rows from the DB.

import type { Duplex } from 'node:stream';
import { LoopEvents, LoopMethods, type CompletedEvent, type StateEvent } from '../loop/protocol.js';
import { RpcPeer } from '../rpc/peer.js';
import { isFinal, type LoopRow, type LoopStatus, type LoopStore } from '../store/loops.js';
import { runnerAlive, RUNNER_GONE_REASON } from '../store/process.js';
import { dial } from '../transport/index.js';
import type { DaemonLogger } from './context.js';
import { BUSY_RETRY_MS, DB_BUSY, isDbBusy } from './db-busy.js';
import { toDaemonLoop } from './loops.js';
import { ControlEvents, type DaemonLoop } from './protocol.js';

export const RUNNER_GONE_WHILE_DOWN_REASON = 'runner exited unexpectedly (found dead when the daemon started)';
export const START_INTERRUPTED_REASON = 'the daemon stopped while the loop was starting';

export type LoopEventName = (typeof ControlEvents)[keyof typeof ControlEvents];

export function finalEventFor(status: LoopStatus): LoopEventName {
  return status === 'completed' ? ControlEvents.completed : status === 'stopped' ? ControlEvents.stopped : ControlEvents.failed;
}

interface Watch {
  loopId: string;
  peer: RpcPeer | undefined;
  retryTimer: NodeJS.Timeout | undefined;
  /** Consecutive reconnects to a runner that is alive but dropped us. */
  retries: number;
}

const DIAL_TIMEOUT_MS = 5000;
const STARTING_GRACE_MS = 2 * 60_000;
const MAX_RETRY_DELAY_MS = 5000;

export class Supervisor {
  private readonly watches = new Map<string, Watch>();
  private readonly listeners: Array<(event: LoopEventName, loop: DaemonLoop) => void> = [];
  private closed = false;

  constructor(
    private readonly store: LoopStore,
    private readonly log: DaemonLogger,
    private readonly dialRunner: (socketPath: string) => Promise<Duplex> = (p) => dial({ kind: 'unix', path: p }, { timeoutMs: DIAL_TIMEOUT_MS }),
  ) {}

  onEvent(listener: (event: LoopEventName, loop: DaemonLoop) => void): void {
    this.listeners.push(listener);
  }

  emit(event: LoopEventName, row: LoopRow): void {
    const loop = toDaemonLoop(row);
    for (const l of this.listeners) {
      try {
        l(event, loop);
      } catch (err) {
        this.log.error(`event listener failed on ${event} ${row.id}: ${(err as Error).message}`);
      }
    }
  }

  get watching(): number {
    return this.watches.size;
  }

  /**
   * At start-up: every open row of the DB is either re-adopted (its runner answers) or settled.
   * `starting` rows without a runner pid were left by a start this daemon never finished.
   */
  adoptAll(): { adopted: number; failed: number } {
    let adopted = 0;
    let failed = 0;
    for (const row of this.store.listOpen()) {
      if (row.location !== 'local') continue;
      if (row.pid === null) {
        // A daemon start (it has a repo) that never got its runner; a bare `ralph run` sharing this
        // home may still be on its way, so leave those to it for a while.
        const stale = row.repo !== null || Date.now() - Date.parse(row.updatedAt) > STARTING_GRACE_MS;
        if (stale && this.store.finish(row.id, 'failed', START_INTERRUPTED_REASON)) {
          failed += 1;
          this.log.warn(`loop ${row.id}: ${START_INTERRUPTED_REASON}; marked failed`);
          this.emit(ControlEvents.failed, this.store.get(row.id)!);
        }
        continue;
      }
      if (!runnerAlive(row.pid, row.id)) {
        if (this.store.finish(row.id, 'failed', RUNNER_GONE_WHILE_DOWN_REASON)) {
          failed += 1;
          this.log.warn(`loop ${row.id}: runner pid ${row.pid} is gone; marked failed`);
          this.emit(ControlEvents.failed, this.store.get(row.id)!);
        }
        continue;
      }
      adopted += 1;
      this.log.info(`loop ${row.id}: re-adopting runner pid ${row.pid}`);
      this.watch(row.id);
    }
    return { adopted, failed };
  }

  /** Starts watching a loop whose runner is listening (idempotent). */
  watch(loopId: string): void {
    if (this.closed || this.watches.has(loopId)) return;
    const w: Watch = { loopId, peer: undefined, retryTimer: undefined, retries: 0 };
    this.watches.set(loopId, w);
    void this.connect(w);
  }

  private async connect(w: Watch): Promise<void> {
    const row = this.store.get(w.loopId);
    if (!row || isFinal(row.status)) {
      this.finishWatch(w, row);
      return;
    }
    const socketPath = row.socketPath;
    if (!socketPath) {
      this.settle(w.loopId, 'no socket recorded');
      return;
    }
    let stream: Duplex;
    try {
      stream = await this.dialRunner(socketPath);
    } catch (err) {
      if (this.closed || this.watches.get(w.loopId) !== w) return;
      this.settle(w.loopId, (err as Error).message);
      return;
    }
    if (this.closed || this.watches.get(w.loopId) !== w) {
      stream.destroy();
      return;
    }
    const peer = new RpcPeer(stream);
    w.peer = peer;
    peer.onNotification(LoopEvents.completed, (params) => {
      const ev = params as CompletedEvent;
      if (ev && typeof ev.status === 'string' && isFinal(ev.status)) {
        // The runner writes its final status itself; this covers an event that beats the write.
        this.store.finish(w.loopId, ev.status, ev.reason ?? null, { iteration: ev.iteration });
        this.settle(w.loopId, 'completed');
      }
    });
    peer.onNotification(LoopEvents.state, (params) => {
      const s = params as StateEvent;
      if (s && typeof s.status === 'string' && isFinal(s.status)) this.settle(w.loopId, 'final state');
      else w.retries = 0;
    });
    peer.onClose((reason) => {
      if (this.closed || this.watches.get(w.loopId) !== w || w.peer !== peer) return;
      w.peer = undefined;
      this.settle(w.loopId, `connection closed: ${reason}`);
    });
    try {
      // A runner sends `state` and `completed` to every connection, subscribed or not: no output is
      // asked for. The `status` asked right away also catches a loop that ended between the DB read
      // and this connection (and is the first message the runner wants to see).
      const st = await peer.request<{ status: LoopStatus; reason: string | null; iteration: number }>(LoopMethods.status, undefined, {
        timeoutMs: DIAL_TIMEOUT_MS,
      });
      w.retries = 0;
      if (st && isFinal(st.status)) {
        this.store.finish(w.loopId, st.status, st.reason ?? null, { iteration: st.iteration });
        this.settle(w.loopId, 'final status');
      }
    } catch (err) {
      if (!peer.closed) {
        this.log.warn(`loop ${w.loopId}: runner did not answer (${(err as Error).message})`);
        peer.close('runner did not answer');
      }
    }
  }

  /**
   * Re-reads the loop's row after its runner connection ended (or never opened). A final row is
   * announced; a non-final row whose runner is dead is failed and announced; a live runner that
   * dropped the connection is dialled again with a growing delay.
   */
  private settle(loopId: string, why: string): void {
    try {
      this.settleNow(loopId, why);
    } catch (err) {
      // Called from connection events and timers: a DB locked by another process must not end the
      // daemon. The loop is looked at again once the lock has had time to go.
      if (!isDbBusy(err)) throw err;
      this.log.warn(`loop ${loopId}: ${DB_BUSY}; looking at it again in ${BUSY_RETRY_MS} ms`);
      const w = this.watches.get(loopId);
      const timer = setTimeout(() => {
        if (w) w.retryTimer = undefined;
        if (!this.closed) this.settle(loopId, why);
      }, BUSY_RETRY_MS);
      if (w) {
        clearTimeout(w.retryTimer);
        w.retryTimer = timer;
      } else {
        timer.unref();
      }
    }
  }

  private settleNow(loopId: string, why: string): void {
    const w = this.watches.get(loopId);
    let row = this.store.get(loopId);
    if (!row) {
      if (w) this.finishWatch(w, undefined);
      return;
    }
    if (!isFinal(row.status)) {
      if (row.pid !== null && runnerAlive(row.pid, row.id)) {
        if (!w || w.peer) return; // still connected: a `state` said final but the row lags; `completed` or close follows
        w.retries += 1;
        const delay = Math.min(100 * 2 ** Math.min(w.retries, 6), MAX_RETRY_DELAY_MS);
        this.log.warn(`loop ${loopId}: lost the runner connection (${why}); runner pid ${row.pid} is alive, reconnecting in ${delay} ms`);
        w.retryTimer = setTimeout(() => {
          w.retryTimer = undefined;
          void this.connect(w);
        }, delay);
        return;
      }
      if (this.store.finish(loopId, 'failed', RUNNER_GONE_REASON)) {
        this.log.warn(`loop ${loopId}: ${RUNNER_GONE_REASON} (${why})`);
      }
      row = this.store.get(loopId)!;
    }
    if (w) this.finishWatch(w, row);
  }

  private finishWatch(w: Watch, row: LoopRow | undefined): void {
    if (this.watches.get(w.loopId) !== w) return;
    this.watches.delete(w.loopId);
    clearTimeout(w.retryTimer);
    const peer = w.peer;
    w.peer = undefined;
    peer?.close('loop ended');
    if (row && isFinal(row.status)) {
      this.log.info(`loop ${row.id}: ${row.status}${row.reason ? ` (${row.reason})` : ''}`);
      this.emit(finalEventFor(row.status), row);
    }
  }

  /**
   * Called when something else (a loop channel, loop.stop) found the runner unreachable: settles the
   * loop now and returns its row as it stands.
   */
  check(loopId: string): LoopRow | undefined {
    const row = this.store.get(loopId);
    if (!row || isFinal(row.status)) return row;
    if (row.pid !== null && runnerAlive(row.pid, row.id)) return row;
    if (row.pid === null) return row; // still being started
    if (this.watches.has(loopId)) {
      this.settle(loopId, 'runner unreachable');
    } else if (this.store.finish(loopId, 'failed', RUNNER_GONE_REASON)) {
      this.log.warn(`loop ${loopId}: ${RUNNER_GONE_REASON}`);
      this.emit(ControlEvents.failed, this.store.get(loopId)!);
    }
    return this.store.get(loopId);
  }

  /** Drops every runner connection; the runners go on. */
  close(): void {
    this.closed = true;
    for (const w of this.watches.values()) {
      clearTimeout(w.retryTimer);
      w.peer?.close('daemon shutting down');
    }
    this.watches.clear();
  }
}
