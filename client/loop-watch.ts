// Watching every loop this machine knows, for clients that stay open (`ralph tui`, `ralph watch`):
// the session DB is re-read whenever another process commits to it (runners write their own rows),
// local rows whose runner died are settled, and remotes with open loops are reconciled in the
// background — never in the caller's way. Says when a loop ends or pauses.

import { FINAL_STATUSES, type LoopStatus, type LoopStore } from '../store/loops.js';
import { settleDeadRunners } from './liveness.js';
import { reconcileRemoteRows } from './reconcile.js';
import { statusEntries, type StatusEntry } from './status-view.js';

/** How a remote answered the last time it was asked. */
export interface RemoteState {
  reachable: boolean;
  /** Why it was unreachable (one line naming it), null when it answered. */
  why: string | null;
}

export interface LoopsWatcherOptions {
  /** How often to look whether the DB changed (a cheap pragma; the rows are re-read only then). */
  pollMs?: number;
  /** How often to look for local runners that died. */
  settleMs?: number;
  /** How often to reconcile remotes that have open loops, and how long each may take. */
  reconcileMs?: number;
  timeoutMs?: number;
  onChange?(entries: StatusEntry[]): void;
  onRemotes?(remotes: ReadonlyMap<string, RemoteState>): void;
  /** A loop seen open has ended or paused (also a loop that appeared already so). */
  onEnded?(entry: StatusEntry): void;
}

/** Statuses worth telling the user about: the final ones, and a pause (it waits for a limit to pass). */
export function isNotifiable(status: string): boolean {
  return status === 'paused' || isEndStatus(status);
}

export function isEndStatus(status: string): boolean {
  return FINAL_STATUSES.includes(status as LoopStatus);
}

/** Open: neither ended nor paused — a loop that is (or is about to be) running an iteration. */
export function isRunningStatus(status: string): boolean {
  return !isNotifiable(status);
}

export class LoopsWatcher {
  entries: StatusEntry[] = [];
  readonly remotes = new Map<string, RemoteState>();
  private statusOf = new Map<string, string>();
  private dataVersion = -1;
  private timers: NodeJS.Timeout[] = [];
  private reconciling: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly store: LoopStore,
    private readonly opts: LoopsWatcherOptions = {},
  ) {}

  /**
   * Reads every row now (settling dead local runners first) and starts watching; remotes are asked at
   * once unless `askRemotesNow` is false (a caller with something to show first calls reconcileNow() itself).
   */
  start(opts: { askRemotesNow?: boolean } = {}): StatusEntry[] {
    settleDeadRunners(this.store);
    this.load(false);
    const every = (ms: number, fn: () => void) => this.timers.push(setInterval(fn, ms));
    every(this.opts.pollMs ?? 250, () => this.poll());
    every(this.opts.settleMs ?? 2000, () => {
      if (settleDeadRunners(this.store).length > 0) this.load(true);
    });
    every(this.opts.reconcileMs ?? 5000, () => void this.reconcileNow());
    if (opts.askRemotesNow ?? true) void this.reconcileNow();
    return this.entries;
  }

  /** Re-reads the rows now (after this process wrote to the DB, which `data_version` does not show). */
  refresh(): void {
    this.load(true);
  }

  /** Reconciles the remotes with open loops now, unless that is under way already. */
  reconcileNow(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.reconciling ??= (async () => {
      const reasons = new Map<string, string>();
      try {
        const answers = await reconcileRemoteRows(this.store, { timeoutMs: this.opts.timeoutMs ?? 3000, reasons });
        if (this.closed) return;
        this.remotes.clear();
        for (const [name, r] of answers) this.remotes.set(name, { reachable: r === 'ok', why: r === 'ok' ? null : (reasons.get(name) ?? 'no answer') });
        this.opts.onRemotes?.(this.remotes);
        this.load(true);
      } finally {
        this.reconciling = undefined;
      }
    })();
    return this.reconciling;
  }

  close(): void {
    this.closed = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  private poll(): void {
    // data_version moves when another connection commits: a runner, `ralph run`, another client.
    const version = this.store.db.pragma('data_version', { simple: true }) as number;
    if (version !== this.dataVersion) this.load(true);
  }

  private load(tell: boolean): void {
    if (this.closed) return;
    this.dataVersion = this.store.db.pragma('data_version', { simple: true }) as number;
    const entries = statusEntries(this.store);
    const before = this.statusOf;
    this.statusOf = new Map(entries.map((e) => [e.id, e.status]));
    this.entries = entries;
    if (!tell) return;
    for (const e of entries) {
      const was = before.get(e.id);
      if (was !== e.status && isNotifiable(e.status) && (was === undefined || isRunningStatus(was) || (was === 'paused' && isEndStatus(e.status)))) {
        this.opts.onEnded?.(e);
      }
    }
    this.opts.onChange?.(entries);
  }
}
