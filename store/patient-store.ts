// The loop runner's writer of its own row, for a DB that cannot take a write right now: another
// process holds the write lock longer than the busy timeout, the disk is full, an I/O error. Such a
// write is kept in memory (merged with any later ones, in order) and retried with a growing delay
// instead of failing the loop; the row catches up as soon as the DB takes writes again, and a loop
// that ends meanwhile still gets its final status recorded. Nothing waits on the lock for long:
// better-sqlite3 blocks the whole process while it waits, and a runner has an agent's PTY and its
// clients to serve.

import type { Db } from './db.js';
import { dbFaultMessage, isTransientDbFault } from './db-fault.js';
import { LoopStore, type LoopPatch, type LoopRow, type LoopStatus } from './loops.js';

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 5000;

interface Pending {
  patch: LoopPatch;
  final: { status: LoopStatus; reason: string | null; extra: LoopPatch } | null;
}

export class PatientLoopStore extends LoopStore {
  private readonly pending = new Map<string, Pending>();
  private retryTimer: NodeJS.Timeout | undefined;
  private delay = FIRST_RETRY_MS;
  private fault: string | null = null;
  private settledListeners: Array<() => void> = [];

  constructor(
    db: Db,
    private readonly dbPath: string,
    private readonly log: (line: string) => void,
  ) {
    super(db);
  }

  /** Why writes are being held back right now (null when the DB takes them). */
  get faultReason(): string | null {
    return this.fault;
  }

  /** True while some write waits for the DB. */
  get behind(): boolean {
    return this.pending.size > 0;
  }

  override update(id: string, patch: LoopPatch): void {
    const p = this.pending.get(id);
    if (p) {
      // Keep the order: what comes after a held write waits with it.
      if (p.final) Object.assign(p.final.extra, patch);
      else Object.assign(p.patch, patch);
      return;
    }
    this.attempt(id, () => super.update(id, patch), { patch: { ...patch }, final: null });
  }

  override finish(id: string, status: LoopStatus, reason: string | null, extra: LoopPatch = {}): boolean {
    const p = this.pending.get(id);
    if (p) {
      p.final ??= { status, reason, extra: { ...extra } };
      return true;
    }
    let done = true;
    this.attempt(id, () => (done = super.finish(id, status, reason, extra)), { patch: {}, final: { status, reason, extra: { ...extra } } });
    return done;
  }

  override get(id: string): LoopRow | undefined {
    try {
      return super.get(id);
    } catch (err) {
      if (!isTransientDbFault(err)) throw err;
      return undefined;
    }
  }

  /**
   * Resolves once every held write has reached the DB, or after `timeoutMs` (false then). The runner
   * waits here before it exits, so a loop that ended while the DB was locked or full is recorded.
   */
  settled(timeoutMs: number): Promise<boolean> {
    if (this.pending.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.settledListeners = this.settledListeners.filter((l) => l !== done);
        resolve(false);
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.settledListeners.push(done);
    });
  }

  /** Stops retrying (the process is leaving). */
  close(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private attempt(id: string, write: () => void, ifHeld: Pending): void {
    try {
      write();
    } catch (err) {
      if (!isTransientDbFault(err)) throw err;
      this.pending.set(id, ifHeld);
      this.held(err);
    }
  }

  private held(err: unknown): void {
    const why = dbFaultMessage(this.dbPath, err);
    if (this.fault !== why) this.log(`${why}; the loop goes on and its row is written once the DB takes writes again`);
    this.fault = why;
    if (this.retryTimer === undefined) {
      this.retryTimer = setTimeout(() => this.retry(), this.delay);
      this.delay = Math.min(this.delay * 2, MAX_RETRY_MS);
    }
  }

  private retry(): void {
    this.retryTimer = undefined;
    for (const [id, p] of this.pending) {
      try {
        this.db.transaction(() => {
          if (Object.keys(p.patch).length > 0) LoopStore.prototype.update.call(this, id, p.patch);
          if (p.final) LoopStore.prototype.finish.call(this, id, p.final.status, p.final.reason, p.final.extra);
        }).immediate();
        this.pending.delete(id);
      } catch (err) {
        if (!isTransientDbFault(err)) {
          this.pending.delete(id);
          this.log(`gave up a write of loop ${id}'s row: ${(err as Error).message}`);
          continue;
        }
        this.held(err);
        return;
      }
    }
    if (this.fault !== null) this.log('the session DB takes writes again; the row is up to date');
    this.fault = null;
    this.delay = FIRST_RETRY_MS;
    for (const l of this.settledListeners.splice(0)) l();
  }
}
