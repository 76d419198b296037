// The TUI's parts on their own: the pane emulator (what the agent's bytes look like on screen), the
// key rules, the frame (widths, 80x24, NO_COLOR), and the session-DB watcher that says when loops end.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { visibleWidth } from '@mariozechner/pi-tui';
import { LoopsWatcher } from '../client/loop-watch.js';
import { statusTable, type StatusEntry } from '../client/status-view.js';
import { openDb } from '../store/db.js';
import { LoopStore } from '../store/loops.js';
import { handleKey, type KeyPress } from '../tui/keys.js';
import { PaneTerminal } from '../tui/pane.js';
import { initialState, layout, visibleLoops, withLoops, type TuiState } from '../tui/state.js';
import { renderFrame } from '../tui/view.js';
import { makeTempHome, waitUntil } from './helpers/env.js';

const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '').replace(/\x1b_[^\x07]*\x07/g, '');

async function paneOf(text: string, cols = 20, rows = 4, opts: { scrollback?: number; color?: boolean } = {}): Promise<{ pane: PaneTerminal; lines: string[] }> {
  const pane = new PaneTerminal(cols, rows, { scrollback: opts.scrollback ?? 100 });
  pane.write(text);
  await pane.whenIdle();
  return { pane, lines: pane.view(0, opts.color ?? true).lines };
}

test('pane: carriage returns, cursor movement and clears land where a terminal puts them; every row is the pane width', async () => {
  const { lines } = await paneOf('hello\rJ\r\nabc\x1b[2DX\r\n\x1b[2J\x1b[Hnew top');
  assert.is(plain(lines[0]!), 'new top'.padEnd(20));
  for (const l of lines) assert.is(visibleWidth(l), 20);
  const again = await paneOf('hello\rJ\r\nabc\x1b[2DX');
  assert.is(plain(again.lines[0]!).trimEnd(), 'Jello');
  assert.is(plain(again.lines[1]!).trimEnd(), 'aXc');
  const wide = await paneOf('日本語 ok\r\n✓ done');
  assert.is(plain(wide.lines[0]!).trimEnd(), '日本語 ok');
  assert.is(visibleWidth(wide.lines[0]!), 20);
});

test('pane: colours and attributes as SGR; without colour (NO_COLOR) the attributes stay and the colours go', async () => {
  const text = '\x1b[31mred\x1b[0m \x1b[1;38;5;208mbold256\x1b[0m \x1b[48;2;1;2;3mrgb\x1b[0m';
  const colored = (await paneOf(text, 40, 2)).lines[0]!;
  assert.match(colored, /\x1b\[0;31mred/);
  assert.match(colored, /\x1b\[0;1;38;5;208mbold256/);
  assert.match(colored, /\x1b\[0;48;2;1;2;3mrgb/);
  const bare = (await paneOf(text, 40, 2, { color: false })).lines[0]!;
  assert.not.match(bare, /\x1b\[[0-9;]*(3[0-9]|4[0-9]|9[0-7])[;m]/);
  assert.match(bare, /\x1b\[0;1mbold256/);
  assert.is(plain(bare).trimEnd(), 'red bold256 rgb');
});

test('pane: scrollback is what an offset shows; the cursor is marked only on the live screen', async () => {
  const text = Array.from({ length: 30 }, (_, i) => `line ${i}`).join('\r\n');
  const { pane } = await paneOf(text, 20, 4);
  assert.is(pane.above, 26);
  assert.is(plain(pane.view(26, true).lines[0]!).trimEnd(), 'line 0');
  assert.is(plain(pane.view(0, true).lines[3]!).trimEnd(), 'line 29');
  const live = pane.view(0, true, true);
  assert.equal(live.cursor, { row: 3, col: 7 });
  assert.is(pane.view(5, true, true).cursor, null);
});

test('pane: a flood is skipped to its newest output instead of parsed in full', async () => {
  const pane = new PaneTerminal(40, 5, { scrollback: 100 });
  const line = (i: number) => `flood line ${String(i).padStart(7, '0')} ${'x'.repeat(60)}\r\n`;
  let total = 0;
  for (let i = 0; i < 40_000; i++) {
    const l = line(i);
    total += l.length;
    pane.write(l);
  }
  pane.write('THE END');
  await pane.whenIdle();
  assert.ok(pane.skipped > total / 2, `skipped ${pane.skipped} of ${total}`);
  assert.match(plain(pane.view(0, false).lines.join('\n')), /THE END/);
  pane.dispose();
});

// ---- keys and frames ----

function entry(i: number, status = 'running', extra: Partial<StatusEntry> = {}): StatusEntry {
  return {
    id: `loop-${String(i).padStart(4, '0')}`,
    name: `loop-${String(i).padStart(4, '0')}`,
    location: i % 3 === 0 ? 'remote' : 'local',
    remote: i % 3 === 0 ? 'box' : null,
    zitiService: null,
    status,
    iteration: 1,
    maxIterations: 10,
    agent: 'claude',
    branch: null,
    dir: '/src/app',
    pid: null,
    startedAt: new Date(Date.UTC(2026, 0, 1, 0, 0, 0) - i * 60_000).toISOString(),
    endedAt: null,
    reason: null,
    pausedUntil: null,
    resumedFrom: null,
    usage: { inputTokens: null, outputTokens: null, cacheReadTokens: null, cacheWriteTokens: null, costUsd: null },
    ...extra,
  };
}

function stateWith(loops: StatusEntry[], cols = 80, rows = 24, color = true): TuiState {
  return withLoops(initialState({ cols, rows, color, now: Date.UTC(2026, 0, 1, 1, 0, 0) }), loops);
}

const key = (text: string, id: string | undefined = text): KeyPress => ({ id, text });

test('keys: open loops first; j/k/G/g move; Tab shows only open loops; / filters as you type; q quits', () => {
  const loops = [entry(1, 'completed'), entry(2), entry(3, 'failed'), entry(4, 'paused')];
  let s = stateWith(loops);
  assert.equal(visibleLoops(s).map((e) => e.id), ['loop-0002', 'loop-0004', 'loop-0001', 'loop-0003']);
  assert.is(s.selectedId, 'loop-0002');
  s = handleKey(s, key('j')).state;
  assert.is(s.selectedId, 'loop-0004');
  s = handleKey(s, key('G')).state;
  assert.is(s.selectedId, 'loop-0003');
  s = handleKey(s, key('\t', 'tab')).state;
  assert.equal(visibleLoops(s).map((e) => e.id), ['loop-0002', 'loop-0004']);
  assert.is(s.selectedId, 'loop-0002', 'the selection moves to a shown loop');
  s = handleKey(s, key('\t', 'tab')).state;
  s = handleKey(s, key('/')).state;
  for (const ch of '0003') s = handleKey(s, key(ch)).state;
  assert.equal(visibleLoops(s).map((e) => e.id), ['loop-0003']);
  assert.is(s.selectedId, 'loop-0003');
  s = handleKey(s, key('\r', 'enter')).state;
  assert.is(s.mode, 'list');
  assert.is(s.filter, '0003');
  s = handleKey(s, key('\x1b', 'escape')).state;
  assert.is(visibleLoops(s).length, 4);
  assert.equal(handleKey(s, key('q')).effects, [{ kind: 'quit' }]);
});

test('keys: s asks and only y stops; + takes a number (Enter alone: 5); ended loops refuse i, s and +; r asks, then resumes', () => {
  let s = stateWith([entry(1), entry(2, 'failed')]);
  s = handleKey(s, key('s')).state;
  assert.is(s.mode, 'confirm-stop');
  assert.match(s.message!.text, /stop loop loop-0001 now\? \[y\/N\]/);
  const no = handleKey(s, key('n'));
  assert.equal(no.effects, []);
  assert.is(no.state.message!.text, 'not stopped');
  assert.equal(handleKey(s, key('y')).effects, [{ kind: 'stop', id: 'loop-0001' }]);

  s = handleKey(stateWith([entry(1)]), key('+')).state;
  assert.is(s.mode, 'extend');
  s = handleKey(s, key('x')).state;
  s = handleKey(s, key('1')).state;
  s = handleKey(s, key('2')).state;
  assert.equal(handleKey(s, key('\r', 'enter')).effects, [{ kind: 'extend', id: 'loop-0001', n: 12 }]);
  const plus = handleKey(stateWith([entry(1)]), key('+')).state;
  assert.equal(handleKey(plus, key('\r', 'enter')).effects, [{ kind: 'extend', id: 'loop-0001', n: 5 }]);

  let ended = handleKey(stateWith([entry(2, 'failed')]), key('s')).state;
  assert.is(ended.mode, 'list');
  assert.match(ended.message!.text, /has ended already/);
  ended = handleKey(ended, key('i')).state;
  assert.match(ended.message!.text, /no agent to type to/);
  const r = handleKey(ended, key('r'));
  assert.is(r.state.mode, 'confirm-resume');
  assert.equal(handleKey(r.state, key('y')).effects, [{ kind: 'resume', id: 'loop-0002' }]);
  assert.match(handleKey(stateWith([entry(1, 'completed')]), key('r')).state.message!.text, /resumes a loop that failed or was stopped/);
  // i on a running loop whose pane is not connected yet: said, nothing sent.
  assert.match(handleKey(stateWith([entry(1)]), key('i')).state.message!.text, /not connected/);
});

test('keys: the answer to "stop?", "resume?" or "how many more?" goes to the loop asked about, even when a loop ending moved the selection meanwhile', () => {
  // Only open loops shown (Tab): loop-0001 ending leaves the list, and the selection moves to loop-0002.
  const open = handleKey(stateWith([entry(1), entry(2)]), key('\t', 'tab')).state;
  assert.is(open.selectedId, 'loop-0001');
  for (const [ask, answer, effect] of [
    ['s', 'y', { kind: 'stop', id: 'loop-0001' }],
    ['+', '\r', { kind: 'extend', id: 'loop-0001', n: 5 }],
  ] as const) {
    let s = handleKey(open, key(ask)).state;
    s = withLoops(s, [entry(1, 'completed'), entry(2)]);
    assert.is(s.selectedId, 'loop-0002', 'the selection moved');
    assert.equal(handleKey(s, key(answer, answer === '\r' ? 'enter' : answer)).effects, [effect]);
  }
  let r = handleKey(stateWith([entry(1, 'failed'), entry(2, 'failed')]), key('/')).state;
  for (const ch of 'failed') r = handleKey(r, key(ch)).state;
  r = handleKey(handleKey(r, key('\r', 'enter')).state, key('r')).state;
  r = withLoops(r, [entry(1, 'completed'), entry(2, 'failed')]);
  assert.is(r.selectedId, 'loop-0002');
  assert.equal(handleKey(r, key('y')).effects, [{ kind: 'resume', id: 'loop-0001' }]);
});

test('frame: exactly the terminal height, no line wider than it, at 80x24 and 120x40, with 1,000 loops; too small says so', () => {
  const loops = Array.from({ length: 1000 }, (_, i) => entry(i, i % 7 === 0 ? 'completed' : 'running', i % 5 === 0 ? { usage: { inputTokens: 12345, outputTokens: 678, cacheReadTokens: null, cacheWriteTokens: null, costUsd: 1.5 } } : {}));
  for (const [cols, rows] of [[80, 24], [120, 40], [40, 10]] as const) {
    const s = stateWith(loops, cols, rows);
    const frame = renderFrame(s);
    assert.is(frame.length, rows, `${cols}x${rows}`);
    for (const line of frame) assert.ok(visibleWidth(line) <= cols, `${cols}x${rows}: ${JSON.stringify(line)}`);
    assert.match(plain(frame[1]!), cols >= 80 ? /LOOP\s+WHERE\s+STATUS\s+ITER\s+AGENT\s+AGE\s+COST/ : /LOOP\s+WHERE\s+STATUS/);
    assert.match(plain(frame[2]!), /^▶ loop-0001 /, 'the first open loop is selected, its id in full');
    assert.is(layout(cols, rows).listRows + layout(cols, rows).paneRows + 5, rows);
  }
  const small = renderFrame(stateWith(loops, 30, 8));
  assert.is(small.length, 8);
  assert.match(small.join(' '), /needs a terminal of at least 40×10; this one is 30×8/);
});

test('frame: NO_COLOR draws no colour but keeps inverse and bold; with colour, statuses are coloured', () => {
  const loops = [entry(1), entry(2, 'failed')];
  const mono = renderFrame(stateWith(loops, 80, 24, false)).join('\n');
  assert.not.match(mono, /\x1b\[[0-9;]*(3[0-7]|9[0-7])m/);
  assert.match(mono, /\x1b\[7m/);
  const colored = renderFrame(stateWith(loops, 80, 24, true)).join('\n');
  assert.match(colored, /\x1b\[1;31mfailed/);
});

// ---- the watcher ----

test('LoopsWatcher: a loop ending or pausing in another process is told once; pausing and going on is no end; a new loop that already ended is told', async () => {
  const t = makeTempHome('ralph-watcher');
  const db = join(t.home, 'ralph.db');
  const writer = new LoopStore(openDb(db));
  const reader = new LoopStore(openDb(db));
  const told: string[] = [];
  const watcher = new LoopsWatcher(reader, { pollMs: 10, onEnded: (e) => told.push(`${e.id}:${e.status}`) });
  try {
    writer.insert({ id: 'a-0001', name: 'a-0001', location: 'local', workDir: '/x', agent: 'custom', maxIterations: 3, status: 'running' });
    writer.insert({ id: 'b-0001', name: 'b-0001', location: 'local', workDir: '/x', agent: 'custom', maxIterations: 3, status: 'running' });
    // Rows with no runner pid and a fresh updatedAt are left alone by the dead-runner check.
    assert.is(watcher.start().length, 2);
    writer.update('b-0001', { status: 'paused' });
    await waitUntil(() => told.includes('b-0001:paused'), { what: 'the pause told' });
    writer.update('b-0001', { status: 'running' });
    writer.finish('a-0001', 'completed', 'all stories pass');
    await waitUntil(() => told.includes('a-0001:completed'), { what: 'the end told' });
    writer.insert({ id: 'c-0001', name: 'c-0001', location: 'local', workDir: '/x', agent: 'custom', maxIterations: 3, status: 'failed' });
    await waitUntil(() => told.includes('c-0001:failed'), { what: 'a new loop, already failed, told' });
    writer.finish('b-0001', 'stopped', 'stopped by request');
    await waitUntil(() => told.includes('b-0001:stopped'), { what: 'the stop told' });
    assert.equal(told, ['b-0001:paused', 'a-0001:completed', 'c-0001:failed', 'b-0001:stopped']);
  } finally {
    watcher.close();
    writer.db.close();
    reader.db.close();
    t.cleanup();
  }
});

test('ralph status table: a reason with escape sequences and line breaks is printed as one plain line', () => {
  const t = makeTempHome('ralph-status-reason');
  const store = new LoopStore(openDb(join(t.home, 'ralph.db')));
  try {
    store.insert({ id: 'a-0001', name: 'a-0001', location: 'local', workDir: '/x', agent: 'custom', maxIterations: 3, status: 'running' });
    store.finish('a-0001', 'failed', 'API said \x1b]0;owned\x07\x1b[2Jno\r\nmore\x9b1m\x00');
    const lines = statusTable(store).trimEnd().split('\n');
    assert.is(lines.length, 2, 'a header and one line');
    assert.ok(lines[1]!.endsWith('API said no more'), lines[1]);
    assert.not.match(lines.join('\n'), /[\x00-\x09\x0b-\x1f\x7f-\x9f]/);
  } finally {
    store.db.close();
    t.cleanup();
  }
});

test('frame: text from agents and remote daemons (reason, story, why, messages) is drawn as one line with no escape sequences of its own', () => {
  const hostile = 'evil\x1b]0;pwned title\x07 \x1b]8;;http://x.invalid\x1b\\link\x1b]8;;\x1b\\ \x1b[2J\x1b[31mred\r\nnext line\x9b1mc1\x00nul\ttab';
  const loops = [entry(1, 'running', { reason: hostile, name: `named\n\x1b[1mbold` }), entry(3, 'failed')];
  let s = stateWith(loops, 100, 30, false);
  s = { ...s, remotes: new Map([['box', { reachable: false, why: `remote box: ${hostile}` }]]), message: { text: `loop loop-0001 failed: ${hostile}`, tone: 'error' } };
  s = { ...s, live: { loopId: 'loop-0001', status: 'running', iteration: 1, maxIterations: 10, story: `US-1 ${hostile}`, reason: hostile, pausedUntil: null, interactive: false, connection: 'live', note: `lost: ${hostile}` } };
  const check = (frame: string[]) => {
    assert.is(frame.length, 30);
    for (const line of frame) {
      assert.ok(visibleWidth(line) <= 100, line);
      assert.not.match(line, /[\r\n\t\x00\x07\x9b]|\x1b\]|\x1b\[2J|\x1b\[31m/, JSON.stringify(line));
    }
  };
  const frame = renderFrame(s);
  check(frame);
  assert.ok(frame.some((l) => l.startsWith('─ loop-0001 · running · iteration 1/10 · US-1 evil link red next line')), frame.join('\n'));
  assert.ok(frame.some((l) => l.includes('loop-0001 (named bold)')), frame.join('\n'));
  // The remote's reason, in the pane of one of its loops.
  s = handleKey(s, key('j')).state;
  const remoteFrame = renderFrame({ ...s, live: null });
  check(remoteFrame);
  assert.ok(remoteFrame.some((l) => l.includes('remote box: evil')), remoteFrame.join('\n'));
});

test('frame: the pane header says when the selected loop is in interactive mode', () => {
  const s = stateWith([entry(1)], 100, 30, false);
  const live = { loopId: 'loop-0001', status: 'running', iteration: 1, maxIterations: 10, story: 'US-2', reason: null, pausedUntil: null, interactive: false, connection: 'live' as const, note: null };
  const header = (on: boolean) => renderFrame({ ...s, live: { ...live, interactive: on } }).find((l) => l.startsWith('─ loop-0001')) ?? '';
  assert.match(header(true), /^─ loop-0001 · running · iteration 1\/10 · interactive · US-2 /);
  assert.not.match(header(false), /interactive/);
});

test.run();
