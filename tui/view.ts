// The frame: a pure function from a TuiState to exactly `rows` lines, each at most `cols` wide.
//
//   title       ralph · loops, how many run · remotes and whether they answer
//   list        one row per loop: LOOP WHERE STATUS ITER AGENT AGE COST (open loops first)
//   pane head   the selected loop: status, iteration, story, tokens/cost, reason, connection
//   pane        its terminal, live (or its log when scrolled back)
//   message     a prompt, a notification, an error
//   key bar     the keys of the current mode

import { oneLine } from '../agents/safe-text.js';
import type { StatusEntry } from '../client/status-view.js';
import { promptOf } from './keys.js';
import { Colors, clip, fit, paint, visibleWidth, type Style } from './style.js';
import { MIN_COLS, MIN_ROWS, isEndStatus, layout, selectedEntry, visibleLoops, type TuiState } from './state.js';

export function renderFrame(s: TuiState): string[] {
  const { cols, rows } = s;
  const l = layout(cols, rows);
  if (l.tooSmall) {
    const say = wrap(`ralph tui needs a terminal of at least ${MIN_COLS}×${MIN_ROWS}; this one is ${cols}×${rows}`, Math.max(1, cols));
    return Array.from({ length: Math.max(1, rows) }, (_, i) => clip(say[i] ?? '', cols));
  }
  const lines: string[] = [titleLine(s)];
  if (s.mode === 'help') {
    lines.push(...helpLines(s, l.listRows + 1 + 1 + l.paneRows));
  } else {
    lines.push(...listLines(s, l.listRows + 1));
    lines.push(paneHeader(s));
    lines.push(...paneLines(s, l.paneRows));
  }
  lines.push(messageLine(s), keyBar(s));
  return lines;
}

// ---- title ----

function titleLine(s: TuiState): string {
  let open = 0;
  let paused = 0;
  for (const e of s.loops) {
    if (e.status === 'paused') paused += 1;
    else if (!isEndStatus(e.status)) open += 1;
  }
  const parts = [`ralph · ${count(s.loops.length, 'loop')} · ${open} running`];
  if (paused > 0) parts.push(`${paused} paused`);
  if (s.remotes.size > 0) {
    parts.push([...s.remotes].map(([name, r]) => `${name} ${r.reachable ? 'ok' : 'unreachable'}`).join(', '));
  }
  const view = s.view === 'open' ? 'showing open loops (Tab: all)' : '';
  const text = ` ${parts.join(' · ')}${view ? ` · ${view}` : ''}`;
  return paint(fit(text, s.cols), { inverse: true }, s.color);
}

function count(n: number, what: string): string {
  return `${n} ${what}${n === 1 ? '' : 's'}`;
}

// ---- list ----

interface Column {
  title: string;
  width: number;
  cell(e: StatusEntry): string;
  style?(e: StatusEntry): Style;
}

function listLines(s: TuiState, height: number): string[] {
  const shown = visibleLoops(s);
  const rowsForLoops = height - 1;
  const columns = listColumns(s, shown.slice(s.listTop, s.listTop + rowsForLoops));
  const header = '  ' + columns.map((c) => fit(c.title, c.width)).join(' ');
  const out = [paint(fit(header, s.cols), { bold: true }, s.color)];
  if (shown.length === 0) {
    out.push(fit(s.loops.length === 0 ? '  no loops yet: start one with ralph run DIR, or push to a remote' : `  no loop matches "${s.filter}" (Esc clears)`, s.cols));
  }
  for (const e of shown.slice(s.listTop, s.listTop + rowsForLoops)) {
    const selected = e.id === s.selectedId;
    const mark = (selected ? '▶' : ' ') + (s.flagged.has(e.id) ? '●' : ' ');
    let row = paint(mark, { fg: Colors.yellow, bold: true }, s.color);
    columns.forEach((c, i) => {
      const text = fit(oneLine(c.cell(e)), c.width);
      row += (i > 0 ? ' ' : '') + (selected ? text : paint(text, c.style?.(e) ?? {}, s.color));
    });
    // Cells are cut to their columns, which fit the width by construction (unless the terminal is very narrow).
    const width = 2 + columns.reduce((sum, c, i) => sum + c.width + (i > 0 ? 1 : 0), 0);
    out.push(selected ? paint(fit(stripStyle(row), s.cols), { inverse: true }, s.color) : width <= s.cols ? row : clip(row, s.cols));
  }
  while (out.length < height) out.push('');
  const more = shown.length - s.listTop - rowsForLoops;
  if (more > 0) out[height - 1] = paint(fit(`  … ${more} more (j/k, G)`, s.cols), { dim: true }, s.color);
  return out;
}

function listColumns(s: TuiState, rows: StatusEntry[]): Column[] {
  const widest = (f: (e: StatusEntry) => string, min: number, max: number) =>
    Math.min(max, Math.max(min, ...rows.map((e) => oneLine(f(e)).length)));
  const where = (e: StatusEntry) => {
    if (e.location !== 'remote') return 'local';
    const name = e.remote ?? 'remote';
    return s.remotes.get(name)?.reachable === false ? `${name} ×` : name;
  };
  const iter = (e: StatusEntry) => `${e.iteration}/${e.maxIterations}`;
  const showCost = rows.some((e) => typeof e.usage?.costUsd === 'number');
  const columns: Column[] = [
    { title: 'LOOP', width: 0, cell: loopLabel },
    {
      title: 'WHERE',
      width: widest(where, 5, 16),
      cell: where,
      style: (e) => (e.location === 'remote' && s.remotes.get(e.remote ?? '')?.reachable === false ? { fg: Colors.red } : {}),
    },
    { title: 'STATUS', width: 9, cell: (e) => e.status, style: (e) => statusStyle(e.status) },
    { title: 'ITER', width: widest(iter, 5, 9), cell: iter },
    { title: 'AGENT', width: widest((e) => e.agent, 5, 10), cell: (e) => e.agent },
    { title: 'AGE', width: 4, cell: (e) => age(e.startedAt, s.now) },
  ];
  if (showCost) columns.push({ title: 'COST', width: 7, cell: (e) => usd(e.usage?.costUsd) });
  // On a narrow terminal the loop's id keeps room: columns go, least wanted first.
  const others = () => columns.slice(1).reduce((sum, c) => sum + c.width + 1, 0);
  for (const title of ['COST', 'AGENT', 'AGE', 'ITER']) {
    if (s.cols - 2 - others() >= MIN_LOOP_WIDTH) break;
    const at = columns.findIndex((c) => c.title === title);
    if (at !== -1) columns.splice(at, 1);
  }
  columns[0]!.width = Math.max(MIN_LOOP_WIDTH, Math.min(widest(loopLabel, 4, 32), s.cols - 2 - others()));
  return columns;
}

const MIN_LOOP_WIDTH = 12;

function loopLabel(e: StatusEntry): string {
  return e.name && e.name !== e.id ? `${e.id} (${e.name})` : e.id;
}

function statusStyle(status: string): Style {
  switch (status) {
    case 'running':
      return { fg: Colors.green };
    case 'starting':
    case 'paused':
      return { fg: Colors.yellow };
    case 'completed':
      return { fg: Colors.cyan };
    case 'failed':
      return { fg: Colors.red, bold: true };
    default:
      return { dim: true };
  }
}

/** The plain text of a styled string (the selected row is drawn inverse, in one style). */
function stripStyle(text: string): string {
  return text.replace(/\x1b\[[0-9;]*m/g, '');
}

/** 5s, 3m, 2h, 4d: the largest unit that fits, as `ralph status` shows it. */
export function age(startedAt: string, now: number): string {
  const secs = Math.max(0, Math.floor((now - Date.parse(startedAt)) / 1000));
  if (!Number.isFinite(secs)) return '?';
  if (secs < 60) return `${secs}s`;
  if (secs < 3600) return `${Math.floor(secs / 60)}m`;
  if (secs < 86400) return `${Math.floor(secs / 3600)}h`;
  return `${Math.floor(secs / 86400)}d`;
}

/** An ISO time as the local HH:MM (with the date when it is not today). */
function clock(iso: string, now: number): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const hm = `${String(d.getHours()).padStart(2, '0')}:${String(d.getMinutes()).padStart(2, '0')}`;
  return d.toDateString() === new Date(now).toDateString() ? hm : `${d.toISOString().slice(0, 10)} ${hm}`;
}

function usd(v: number | null | undefined): string {
  if (typeof v !== 'number') return '';
  return v < 10 ? `$${v.toFixed(2)}` : `$${v.toFixed(0)}`;
}

function tokens(n: number | null | undefined): string | null {
  if (typeof n !== 'number') return null;
  return n < 1000 ? String(n) : n < 1_000_000 ? `${(n / 1000).toFixed(1)}k` : `${(n / 1_000_000).toFixed(1)}M`;
}

// ---- pane ----

function paneHeader(s: TuiState): string {
  const e = selectedEntry(s);
  if (!e) return paint('─'.repeat(s.cols), { dim: true }, s.color);
  const live = s.live?.loopId === e.id ? s.live : null;
  const status = live?.status ?? e.status;
  const parts: string[] = [e.id, status, `iteration ${live?.iteration ?? e.iteration}/${live?.maxIterations ?? e.maxIterations}`];
  if (live?.interactive) parts.push('interactive');
  if (live?.story) parts.push(live.story);
  const used = [tokens(e.usage?.inputTokens), tokens(e.usage?.outputTokens)];
  if (used[0] !== null || used[1] !== null) parts.push(`${used[0] ?? '?'} in / ${used[1] ?? '?'} out tokens`);
  if (typeof e.usage?.costUsd === 'number') parts.push(usd(e.usage.costUsd));
  const pausedUntil = status === 'paused' ? (live?.pausedUntil ?? e.pausedUntil) : null;
  if (pausedUntil) parts.push(`goes on at ${clock(pausedUntil, s.now)}`);
  const reason = live?.reason ?? e.reason;
  if (reason) parts.push(reason);
  const remote = e.location === 'remote' ? s.remotes.get(e.remote ?? '') : undefined;
  if (remote && !remote.reachable) parts.push(`${e.remote} unreachable`);
  if (s.history) {
    parts.push(s.history.loading ? 'loading its log…' : `log: ${s.history.offset} of ${s.history.above} lines up · End: live`);
  } else if (live?.note) {
    parts.push(live.note);
  } else if (live && live.connection !== 'live' && live.connection !== 'ended') {
    parts.push(live.connection === 'connecting' ? 'connecting…' : live.connection);
  }
  // Story, reason and notes come from the agent and from remote daemons: one line, no escapes.
  const text = clip(`─ ${oneLine(parts.join(' · '))} `, s.cols);
  const rule = text + '─'.repeat(Math.max(0, s.cols - visibleWidth(text)));
  const fg = statusStyle(status).fg;
  return paint(rule, fg === undefined ? { dim: true } : { fg }, s.color);
}

function paneLines(s: TuiState, height: number): string[] {
  const e = selectedEntry(s);
  const lines = e && s.live?.loopId === e.id ? s.pane.lines.slice(0, height) : [];
  // The pane's rows are exactly its width; only a stale view (from before a resize) is cut to fit.
  const out = s.pane.cols === s.cols ? [...lines] : lines.map((line) => clip(line, s.cols));
  if (!e && out.length === 0) out.push(fit('  select a loop to see its terminal here', s.cols));
  const remote = e?.location === 'remote' ? s.remotes.get(e.remote ?? '') : undefined;
  if (remote && !remote.reachable && out.every((l) => l.trim() === '')) {
    // Nothing to show from a box that does not answer: say why instead, in full.
    const why = [`remote ${e!.remote} does not answer:`, oneLine(remote.why ?? 'no answer'), 'its loops keep their last known state here; ralph tui asks again every few seconds'];
    out.splice(0, out.length, ...why.flatMap((t) => wrap(t, s.cols - 2)).map((t) => paint(`  ${t}`, { fg: Colors.red }, s.color)));
  }
  while (out.length < height) out.push('');
  return out.slice(0, height);
}

/** Plain text cut into lines of at most `width` columns, at spaces where it can. */
function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && visibleWidth(line) + 1 + visibleWidth(word) > width) {
      out.push(line);
      line = '';
    }
    line = line === '' ? word : `${line} ${word}`;
    while (visibleWidth(line) > width) {
      out.push(clip(line, width));
      line = line.slice(width);
    }
  }
  if (line !== '') out.push(line);
  return out;
}

// ---- bottom lines ----

function messageLine(s: TuiState): string {
  const prompt = promptOf(s);
  if (prompt !== null) return clip(prompt, s.cols);
  if (!s.message) return '';
  const style: Style = s.message.tone === 'error' ? { fg: Colors.red, bold: true } : s.message.tone === 'notice' ? { fg: Colors.yellow, bold: true } : {};
  return paint(clip(oneLine(s.message.text), s.cols), style, s.color);
}

const LIST_KEYS = '↑↓/jk select · Enter attach · i type · s stop · + extend · r resume · l log · / filter · Tab open · ? help · q quit';

function keyBar(s: TuiState): string {
  let text: string;
  switch (s.mode) {
    case 'interactive':
      return paint(fit(` INTERACTIVE: keys go to ${s.selectedId ?? 'the agent'} · Ctrl-] back`, s.cols), { inverse: true, bold: true }, s.color);
    case 'filter':
      text = 'type to filter · Enter keeps it · Esc clears';
      break;
    case 'extend':
      text = 'digits: how many · Enter adds · Esc cancels';
      break;
    case 'confirm-stop':
    case 'confirm-resume':
      text = 'y: yes · any other key: no';
      break;
    case 'help':
      text = 'any key closes this help';
      break;
    default:
      text = LIST_KEYS;
  }
  return paint(fit(` ${text}`, s.cols), { dim: true }, s.color);
}

const HELP: Array<[string, string]> = [
  ['↑ ↓  j k', 'select a loop (g: first, G: last)'],
  ['Enter', 'attach: the loop full screen, as ralph attach (q there comes back here)'],
  ['i', 'interactive: every key goes to the agent; Ctrl-] comes back'],
  ['s', 'stop the selected loop (asks first)'],
  ['+', 'give it more iterations (type a number, Enter)'],
  ['r', 'resume a loop that failed or was stopped, as a new loop'],
  ['l', "the loop's whole log in a pager ($PAGER, else less)"],
  ['PgUp PgDn', "scroll back through the loop's log; Home: its start, End: live again"],
  ['/', 'filter the list by text (id, name, where, status, agent, branch)'],
  ['Tab', 'all loops, or only the open ones'],
  ['q  Ctrl-C', 'quit (loops run on)'],
  ['', ''],
  ['●', 'the loop ended or paused since you last looked (the terminal bell rang)'],
  ['×', 'its remote did not answer (why: in the pane, when one of its loops is selected)'],
  ['', 'notify.command in the config runs on each end, with RALPH_LOOP_ID, _STATUS, _REASON set'],
];

function helpLines(s: TuiState, height: number): string[] {
  const out = [paint(fit(' keys', s.cols), { bold: true }, s.color)];
  for (const [key, what] of HELP) out.push(clip(`  ${key.padEnd(11)} ${what}`, s.cols));
  while (out.length < height) out.push('');
  return out.slice(0, height);
}
