// What a key does in the TUI, by mode. Pure: a state and a key in, a state and the effects to carry
// out (stop a loop, open the pager, …) out. Keys arrive already split into one sequence each and
// named by the renderer's key parser (`up`, `pageUp`, `ctrl+c`, `j`, …).
//
// Interactive mode never comes here: its bytes go to the agent as they are (app.ts), all but Ctrl-].

import {
  isEndStatus,
  moveSelection,
  selectedEntry,
  settleSelection,
  type Message,
  type TuiState,
} from './state.js';

export interface KeyPress {
  /** The parsed name (`up`, `pageUp`, `enter`, `ctrl+c`, `j`, `shift+g`, …), if the sequence has one. */
  id: string | undefined;
  /** The sequence as typed (what a prompt inserts). */
  text: string;
}

export type Effect =
  | { kind: 'quit' }
  | { kind: 'attach'; id: string }
  | { kind: 'interactive'; id: string }
  | { kind: 'stop'; id: string }
  | { kind: 'extend'; id: string; n: number }
  | { kind: 'resume'; id: string }
  | { kind: 'pager'; id: string }
  | { kind: 'scroll'; by: number | 'top' | 'live' };

export interface KeyResult {
  state: TuiState;
  effects: Effect[];
}

/** `+` without a number adds this many iterations. */
export const DEFAULT_EXTEND = 5;
const MAX_EXTEND_DIGITS = 5;

const info = (text: string): Message => ({ text, tone: 'info' });

function printable(text: string): boolean {
  // One character (or grapheme) the user typed, not a control or escape sequence.
  return text.length > 0 && !/[\x00-\x1f\x7f]/.test(text);
}

export function handleKey(s: TuiState, key: KeyPress): KeyResult {
  switch (s.mode) {
    case 'help':
      return done({ ...s, mode: 'list' });
    case 'filter':
      return filterKey(s, key);
    case 'extend':
      return extendKey(s, key);
    case 'confirm-stop':
    case 'confirm-resume':
      return confirmKey(s, key);
    case 'interactive':
      return key.id === 'ctrl+]' ? done({ ...s, mode: 'list' }) : done(s);
    case 'list':
      return listKey(s, key);
  }
}

function done(state: TuiState, ...effects: Effect[]): KeyResult {
  return { state, effects };
}

function listKey(s: TuiState, key: KeyPress): KeyResult {
  const entry = selectedEntry(s);
  const { id } = key;
  const pageRows = Math.max(1, s.rows - 8);
  switch (id) {
    case 'up':
    case 'k':
      return done(moveSelection(s, -1));
    case 'down':
    case 'j':
      return done(moveSelection(s, 1));
    case 'g':
      return done(moveSelection(s, 'first'));
    case 'G':
      return done(moveSelection(s, 'last'));
    case 'pageUp':
      return entry ? done(s, { kind: 'scroll', by: pageRows }) : done(s);
    case 'pageDown':
      return entry ? done(s, { kind: 'scroll', by: -pageRows }) : done(s);
    case 'home':
      return entry ? done(s, { kind: 'scroll', by: 'top' }) : done(s);
    case 'end':
      return entry ? done(s, { kind: 'scroll', by: 'live' }) : done(s);
    case 'tab':
      return done(settleSelection({ ...s, view: s.view === 'all' ? 'open' : 'all', listTop: 0 }));
    case '/':
      return done({ ...s, mode: 'filter', input: s.filter, message: null });
    case '?':
      return done({ ...s, mode: 'help' });
    case 'q':
    case 'ctrl+c':
      return done(s, { kind: 'quit' });
    case 'escape':
      return done(settleSelection({ ...s, filter: '', message: null }));
  }
  if (!entry) return done(s);
  const ended = isEndStatus(entry.status);
  switch (id) {
    case 'enter':
      return ended ? done({ ...s, message: info(`loop ${entry.id} has ended (${entry.status}): l shows its log`) }) : done(s, { kind: 'attach', id: entry.id });
    case 'i':
      if (ended) return done({ ...s, message: info(`loop ${entry.id} has ended: there is no agent to type to`) });
      if (s.live?.connection !== 'live') return done({ ...s, message: info(`not connected to loop ${entry.id} yet`) });
      return done(s, { kind: 'interactive', id: entry.id });
    case 's':
      if (ended) return done({ ...s, message: info(`loop ${entry.id} has ended already (${entry.status})`) });
      return done({ ...s, mode: 'confirm-stop', asked: entry.id, message: { text: `stop loop ${entry.id} now? [y/N]`, tone: 'notice' } });
    case '+':
    case '=':
      if (ended) return done({ ...s, message: info(`loop ${entry.id} has ended: r resumes it as a new loop`) });
      return done({ ...s, mode: 'extend', input: '', asked: entry.id, message: null });
    case 'r':
      if (!ended || entry.status === 'completed') {
        return done({ ...s, message: info(`r resumes a loop that failed or was stopped; ${entry.id} is ${entry.status}`) });
      }
      return done({ ...s, mode: 'confirm-resume', asked: entry.id, message: { text: `resume loop ${entry.id} as a new loop? [y/N]`, tone: 'notice' } });
    case 'l':
      return done(s, { kind: 'pager', id: entry.id });
  }
  return done(s);
}

function filterKey(s: TuiState, key: KeyPress): KeyResult {
  const live = (input: string) => settleSelection({ ...s, input, filter: input, listTop: 0 });
  switch (key.id) {
    case 'enter':
      return done({ ...s, mode: 'list', filter: s.input });
    case 'escape':
      return done(settleSelection({ ...s, mode: 'list', input: '', filter: '' }));
    case 'backspace':
      return done(live([...s.input].slice(0, -1).join('')));
    case 'ctrl+u':
      return done(live(''));
  }
  return printable(key.text) ? done(live(s.input + key.text)) : done(s);
}

function extendKey(s: TuiState, key: KeyPress): KeyResult {
  switch (key.id) {
    case 'enter': {
      const n = s.input === '' ? DEFAULT_EXTEND : Number(s.input);
      const back = { ...s, mode: 'list' as const, input: '', asked: null };
      if (s.asked === null || n < 1) return done({ ...back, message: info('no iterations added') });
      return done(back, { kind: 'extend', id: s.asked, n });
    }
    case 'escape':
      return done({ ...s, mode: 'list', input: '', asked: null, message: info('no iterations added') });
    case 'backspace':
      return done({ ...s, input: s.input.slice(0, -1) });
  }
  return /^[0-9]$/.test(key.text) && s.input.length < MAX_EXTEND_DIGITS ? done({ ...s, input: s.input + key.text }) : done(s);
}

function confirmKey(s: TuiState, key: KeyPress): KeyResult {
  const id = s.asked;
  const back = { ...s, mode: 'list' as const, asked: null };
  const yes = key.text === 'y' || key.text === 'Y';
  if (id === null || !yes) return done({ ...back, message: info(s.mode === 'confirm-stop' ? 'not stopped' : 'not resumed') });
  return done({ ...back, message: null }, s.mode === 'confirm-stop' ? { kind: 'stop', id } : { kind: 'resume', id });
}

/** The prompt shown on the message line while a mode waits for input, if any. */
export function promptOf(s: TuiState): string | null {
  if (s.mode === 'filter') return `/${s.input}`;
  if (s.mode === 'extend') return `add iterations to ${s.asked ?? '?'} (Enter: ${DEFAULT_EXTEND}): ${s.input}`;
  return null;
}

