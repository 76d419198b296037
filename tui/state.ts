// What the TUI shows, as one plain value, and the pure rules that change it. Everything the screen
// draws is a function of a TuiState (view.ts); subscriptions (the session DB, the selected loop's
// feed, remotes) and keys produce new states; nothing here does I/O.

import type { RemoteState } from '../client/loop-watch.js';
import { isEndStatus } from '../client/loop-watch.js';
import type { StatusEntry } from '../client/status-view.js';

export type Mode = 'list' | 'filter' | 'confirm-stop' | 'extend' | 'confirm-resume' | 'interactive' | 'help';
/** Which loops the list shows: every one (open loops first), or only those not ended. */
export type ListView = 'all' | 'open';

/** How the live pane stands with the selected loop's runner. */
export type Connection = 'connecting' | 'live' | 'reconnecting' | 'ended' | 'unreachable';

/** The selected loop as its feed reports it (fresher than its DB row while connected). */
export interface LiveHeader {
  loopId: string;
  status: string;
  iteration: number;
  maxIterations: number;
  story: string | null;
  reason: string | null;
  /** While paused: when the loop goes on by itself. */
  pausedUntil: string | null;
  interactive: boolean;
  connection: Connection;
  /** A short note about the connection ("connection lost (…); reconnecting"). */
  note: string | null;
}

/** The pane's rows as drawn (SGR-styled, each exactly the pane's width), and where its cursor is. */
export interface PaneView {
  /** The width the rows were drawn at (a resize makes them stale until the next snapshot). */
  cols: number;
  lines: string[];
  cursor: { row: number; col: number } | null;
}

/** Scrolling back through the loop's log: lines up from the bottom, out of how many above the screen. */
export interface HistoryScroll {
  offset: number;
  above: number;
  loading: boolean;
}

export interface Message {
  text: string;
  tone: 'info' | 'error' | 'notice';
}

export interface TuiState {
  cols: number;
  rows: number;
  /** ms since the epoch: ages are computed from it, so a tick re-renders them. */
  now: number;
  color: boolean;
  loops: StatusEntry[];
  remotes: ReadonlyMap<string, RemoteState>;
  view: ListView;
  filter: string;
  selectedId: string | null;
  /** Index of the first list row on screen. */
  listTop: number;
  mode: Mode;
  /** What is being typed at a prompt (the filter, the number of iterations). */
  input: string;
  /**
   * The loop a prompt (stop? resume? how many more?) asks about: the answer goes to it, not to
   * whichever loop is selected by then (a loop ending can move the selection under the prompt).
   */
  asked: string | null;
  /** Loops that ended or paused since the user last looked at them. */
  flagged: ReadonlySet<string>;
  message: Message | null;
  live: LiveHeader | null;
  pane: PaneView;
  history: HistoryScroll | null;
}

export function initialState(opts: { cols: number; rows: number; color: boolean; now: number }): TuiState {
  return {
    ...opts,
    loops: [],
    remotes: new Map(),
    view: 'all',
    filter: '',
    selectedId: null,
    listTop: 0,
    mode: 'list',
    input: '',
    asked: null,
    flagged: new Set(),
    message: null,
    live: null,
    pane: { cols: 0, lines: [], cursor: null },
    history: null,
  };
}

// ---- layout ----

export interface Layout {
  listRows: number;
  paneRows: number;
  /** Too small to draw anything useful: only a one-line request to enlarge. */
  tooSmall: boolean;
}

export const MIN_COLS = 40;
export const MIN_ROWS = 10;
/** Title, list header, pane header, message line, key bar. */
const CHROME_ROWS = 5;

/** The list takes about a third of what the chrome leaves, the pane the rest (a fixed split: the loop's PTY follows the pane). */
export function layout(cols: number, rows: number): Layout {
  if (cols < MIN_COLS || rows < MIN_ROWS) return { listRows: 0, paneRows: 0, tooSmall: true };
  const avail = rows - CHROME_ROWS;
  const listRows = Math.max(3, Math.round(avail * 0.35));
  return { listRows, paneRows: avail - listRows, tooSmall: false };
}

// ---- the list ----

const visibleCache = new WeakMap<StatusEntry[], { view: ListView; filter: string; result: StatusEntry[] }>();

function matches(e: StatusEntry, needle: string): boolean {
  return [e.id, e.name, e.location === 'remote' ? (e.remote ?? 'remote') : 'local', e.status, e.agent, e.branch ?? '', e.dir]
    .some((f) => f.toLowerCase().includes(needle));
}

/** The list as shown: open loops first (each group newest first), then the view and text filters. */
export function visibleLoops(s: Pick<TuiState, 'loops' | 'view' | 'filter'>): StatusEntry[] {
  const cached = visibleCache.get(s.loops);
  if (cached && cached.view === s.view && cached.filter === s.filter) return cached.result;
  const needle = s.filter.trim().toLowerCase();
  const open: StatusEntry[] = [];
  const rest: StatusEntry[] = [];
  for (const e of s.loops) {
    if (needle && !matches(e, needle)) continue;
    if (!isEndStatus(e.status)) open.push(e);
    else if (s.view === 'all') rest.push(e);
  }
  const result = open.concat(rest);
  visibleCache.set(s.loops, { view: s.view, filter: s.filter, result });
  return result;
}

export function selectedEntry(s: TuiState): StatusEntry | undefined {
  return s.selectedId === null ? undefined : s.loops.find((e) => e.id === s.selectedId);
}

/** Keeps the selection on a shown loop (the first one when it left the list) and in view. */
export function settleSelection(s: TuiState): TuiState {
  const shown = visibleLoops(s);
  let index = s.selectedId === null ? -1 : shown.findIndex((e) => e.id === s.selectedId);
  if (index === -1) index = shown.length > 0 ? 0 : -1;
  const selectedId = index === -1 ? null : shown[index]!.id;
  const { listRows } = layout(s.cols, s.rows);
  const listTop = scrolledTop(s.listTop, index, listRows, shown.length);
  return selectedId === s.selectedId && listTop === s.listTop ? s : { ...s, selectedId, listTop };
}

function scrolledTop(top: number, index: number, rows: number, count: number): number {
  if (index < 0 || rows <= 0) return 0;
  let t = Math.min(top, Math.max(0, count - rows));
  if (index < t) t = index;
  if (index >= t + rows) t = index - rows + 1;
  return Math.max(0, t);
}

/** Moves the selection by `delta` rows (clamped). */
export function moveSelection(s: TuiState, delta: number | 'first' | 'last'): TuiState {
  const shown = visibleLoops(s);
  if (shown.length === 0) return s;
  const at = Math.max(0, shown.findIndex((e) => e.id === s.selectedId));
  const to = delta === 'first' ? 0 : delta === 'last' ? shown.length - 1 : Math.min(shown.length - 1, Math.max(0, at + delta));
  const selectedId = shown[to]!.id;
  return settleSelection({ ...s, selectedId, history: selectedId === s.selectedId ? s.history : null });
}

// ---- what the subscriptions say ----

export function withLoops(s: TuiState, loops: StatusEntry[]): TuiState {
  return settleSelection({ ...s, loops, live: headerWhileConnecting(s.live, loops) });
}

/**
 * Until the selected loop's feed is up, its header is the copy of its row taken at selection: it
 * follows the row, so the header does not say `starting · iteration 0/1` next to a row that says
 * `running 1/1` while a slow connection (a remote over the Ziti tunnelers) comes up.
 */
function headerWhileConnecting(live: LiveHeader | null, loops: StatusEntry[]): LiveHeader | null {
  if (!live || live.connection !== 'connecting') return live;
  const e = loops.find((x) => x.id === live.loopId);
  if (!e) return live;
  return { ...live, status: e.status, iteration: e.iteration, maxIterations: e.maxIterations, reason: e.reason, pausedUntil: e.pausedUntil };
}

/** A loop ended or paused: flagged until the user selects it (the selected one is not flagged). */
export function withFlag(s: TuiState, entry: StatusEntry): TuiState {
  if (entry.id === s.selectedId) return s;
  const flagged = new Set(s.flagged);
  flagged.add(entry.id);
  return { ...s, flagged };
}

/** Looking at a loop clears its flag. */
export function unflagSelected(s: TuiState): TuiState {
  if (s.selectedId === null || !s.flagged.has(s.selectedId)) return s;
  const flagged = new Set(s.flagged);
  flagged.delete(s.selectedId);
  return { ...s, flagged };
}

export { isEndStatus };
