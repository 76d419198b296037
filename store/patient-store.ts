// The loop runner's writer of its own row, for a DB that cannot take a write right now: another
// process holds the write lock longer than the busy timeout, the disk is full, an I/O error. Such a
// write is kept in memory (merged with any later ones, in order) and retried with a growing delay
// instead of failing the loop; the row catches up as soon as the DB takes writes again, and a loop
// that ends meanwhile still gets its final status recorded. Nothing waits on the lock for long:
// better-sqlite3 blocks the whole process while it waits, and a runner has an agent's PTY and its
// clients to serve.

import type { Db } from './db.js';
import { dbFaultMessage, DbFaultError, isTransientDbFault } from './db-fault.js';
import { IterationStore, type IterationEnd } from './iterations.js';
import { LoopStore, nowIso, type LoopPatch, type LoopRow, type LoopStatus } from './loops.js';

const FIRST_RETRY_MS = 250;
const MAX_RETRY_MS = 5000;

/** The writes the DB could not take yet, in the order they were made; retried in that order. */
class HeldWrites {
  private readonly queue: Array<() => void> = [];
  private retryTimer: NodeJS.Timeout | undefined;
  private delay = FIRST_RETRY_MS;
  private settledListeners: Array<() => void> = [];
  fault: string | null = null;

  constructor(
    private readonly db: Db,
    private readonly dbPath: string,
    private readonly log: (line: string) => void,
  ) {}

  get size(): number {
    return this.queue.length;
  }

  /** Runs `write` now, or after the writes held before it; true when it ran now. */
  run(write: () => void): boolean {
    if (this.queue.length > 0) {
      this.queue.push(write);
      return false;
    }
    try {
      write();
      return true;
    } catch (err) {
      if (!isTransientDbFault(err)) throw err;
      this.queue.push(write);
      this.held(err);
      return false;
    }
  }

  settled(timeoutMs: number): Promise<boolean> {
    if (this.queue.length === 0) return Promise.resolve(true);
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

  close(): void {
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
  }

  private held(err: unknown): void {
    const why = dbFaultMessage(this.dbPath, err);
    if (this.fault !== why) this.log(`${why}; the loop goes on and its records are written once the DB takes writes again`);
    this.fault = why;
    if (this.retryTimer === undefined) {
      this.retryTimer = setTimeout(() => this.retry(), this.delay);
      this.delay = Math.min(this.delay * 2, MAX_RETRY_MS);
    }
  }

  private retry(): void {
    this.retryTimer = undefined;
    while (this.queue.length > 0) {
      const write = this.queue[0]!;
      try {
        this.db.transaction(write).immediate();
      } catch (err) {
        if (isTransientDbFault(err)) return this.held(err);
        this.log(`gave up a held write: ${(err as Error).message}`);
      }
      this.queue.shift();
    }
    if (this.fault !== null) this.log('the session DB takes writes again; the records are up to date');
    this.fault = null;
    this.delay = FIRST_RETRY_MS;
    for (const l of this.settledListeners.splice(0)) l();
  }
}

export class PatientLoopStore extends LoopStore {
  private readonly writes: HeldWrites;
  /** The runner's `iterations` rows, written through the same queue (order kept). */
  readonly iterations: PatientIterationStore;

  constructor(
    db: Db,
    private readonly dbPath: string,
    log: (line: string) => void,
  ) {
    super(db);
    this.writes = new HeldWrites(db, dbPath, log);
    this.iterations = new PatientIterationStore(db, this.writes);
  }

  /** Why writes are being held back right now (null when the DB takes them). */
  get faultReason(): string | null {
    return this.writes.fault;
  }

  override update(id: string, patch: LoopPatch): void {
    this.writes.run(() => super.update(id, patch));
  }

  override finish(id: string, status: LoopStatus, reason: string | null, extra: LoopPatch = {}): boolean {
    let done = true; // a held final write is the runner's own: nothing else finishes its loop first
    this.writes.run(() => void (done = super.finish(id, status, reason, extra)));
    return done;
  }

  /** The row; a DB that cannot be read now throws its fault in the user's terms (never "no such loop"). */
  override get(id: string): LoopRow | undefined {
    try {
      return super.get(id);
    } catch (err) {
      if (!isTransientDbFault(err)) throw err;
      throw new DbFaultError(this.dbPath, err);
    }
  }

  /** The usage totals, after the writes held before them: a run's held finish counts. */
  override updateUsageTotals(id: string): void {
    this.writes.run(() => super.updateUsageTotals(id));
  }

  /**
   * Resolves once every held write has reached the DB, or after `timeoutMs` (false then). The runner
   * waits here before it exits, so a loop that ended while the DB was locked or full is recorded.
   */
  settled(timeoutMs: number): Promise<boolean> {
    return this.writes.settled(timeoutMs);
  }

  /** Stops retrying (the process is leaving). */
  close(): void {
    this.writes.close();
  }
}

/**
 * IterationStore over held writes. A run started while the DB is unwritable gets a stand-in id
 * (negative) until its row exists; its finish waits for that row.
 */
export class PatientIterationStore extends IterationStore {
  private readonly realIds = new Map<number, number>();
  private nextStandIn = -1;

  constructor(
    db: Db,
    private readonly writes: HeldWrites,
  ) {
    super(db);
  }

  override start(loopId: string, iteration: number, agent: string, story: string | null, startedAt?: string): number {
    const standIn = this.nextStandIn--;
    const at = startedAt ?? new Date().toISOString();
    let id = standIn;
    this.writes.run(() => {
      id = super.start(loopId, iteration, agent, story, at);
      this.realIds.set(standIn, id);
    });
    return id;
  }

  override finish(id: number, end: IterationEnd, endedAt?: string): void {
    const at = endedAt ?? new Date().toISOString();
    this.writes.run(() => {
      super.finish(this.realIds.get(id) ?? id, end, at);
      this.realIds.delete(id);
    });
  }
}
