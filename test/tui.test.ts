// `ralph tui` for real, in a tmux pane (a real terminal: raw mode, keys, resize, the alternate
// screen), over real loop runners and the fixture agent: the list, the live pane, typing into the
// agent, stop, extend, scrolling back, a loop ending (flag, bell, notify.command), resize (the
// agent's PTY follows the pane), NO_COLOR, 80x24, and the terminal given back on q and on SIGTERM.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import pty from 'node-pty';
import { join } from 'node:path';
import { CliWorld } from './helpers/cli.js';
import { RALPH_BIN, waitUntil } from './helpers/env.js';
import { LoopClient } from './helpers/loop.js';
import { TestPager } from './helpers/pager.js';
import { Tmux } from './helpers/tmux.js';
import { layout } from '../tui/state.js';

/** Types `ralph tui` into a shell as a user would, saving the terminal's stty state before and after. */
async function startTuiInShell(tmux: Tmux, session: string, dir: string, extraEnv = ''): Promise<void> {
  await tmux.text(session, `stty -g > ${dir}/stty.before; ${extraEnv}'${process.execPath}' '${RALPH_BIN}' tui; echo "TUI-EXIT=$?"; stty -g > ${dir}/stty.after`);
  await tmux.keys(session, 'Enter');
}

/** Selects a loop the way a user can: filter by its id (/), keep the filter (Enter). */
async function select(tmux: Tmux, session: string, id: string): Promise<void> {
  await tmux.keys(session, '/');
  await tmux.text(session, id);
  await tmux.keys(session, 'Enter');
  await tmux.waitForScreen(session, `loop ${id} selected`, (s) => new RegExp(`^─ ${id} · `, 'm').test(s));
}

async function clearFilter(tmux: Tmux, session: string): Promise<void> {
  await tmux.keys(session, 'Escape');
}

/** The shell's `stty -g` after the TUI equals the one before it (written by startTuiInShell). */
async function sameTerminalModes(dir: string): Promise<void> {
  const read = (name: string) => {
    try {
      return readFileSync(join(dir, name), 'utf8');
    } catch {
      return '';
    }
  };
  await waitUntil(() => read('stty.after').length > 0, { what: 'stty -g after the tui' });
  assert.is(read('stty.after'), read('stty.before'));
}

const rowOf = (screen: string, id: string) => screen.split('\n').find((l) => l.slice(2).startsWith(id + ' ')) ?? '';

test('tui in tmux: every loop listed, live output, i types into the agent, PgUp scrolls its log, + extends, s stops, r resumes, an ending loop is flagged with a bell and notify.command, resize follows, q gives the terminal back', async () => {
  const w = new CliWorld('ralph-tui');
  const tmux = new Tmux({ ...w.env, PS1: '$ ' });
  const notified = join(w.home.home, 'notified.txt');
  writeFileSync(
    w.env.RALPH_CONFIG!,
    JSON.stringify({
      remotes: {},
      notify: {
        // A program and its arguments; the loop comes in the environment only.
        command: [process.execPath, '-e', "require('fs').appendFileSync(process.argv[1], [process.env.RALPH_LOOP_ID, process.env.RALPH_LOOP_STATUS, process.env.RALPH_LOOP_REASON].join('|') + '\\n')", notified],
      },
    }),
  );
  let runner: LoopClient | undefined;
  try {
    const echoId = await w.startLoop({ steps: 'echo' });
    const slowId = await w.startLoop({ steps: 'slow', env: { FIXTURE_SLOW_MS: '20', FIXTURE_SLOW_COUNT: '100000' } });
    await tmux.shell('t');
    await startTuiInShell(tmux, 't', w.home.home, "PAGER= ");
    const first = await tmux.waitForScreen('t', 'both loops listed', (s) => rowOf(s, echoId).includes('local') && rowOf(s, slowId).includes('local'));
    assert.match(rowOf(first, echoId), /local\s+running\s+1\/10\s+custom/);
    assert.equal(await tmux.format('t', '#{alternate_on}'), '1', 'the TUI draws on the alternate screen');

    // The selected loop's screen and live output.
    await select(tmux, 't', echoId);
    await tmux.waitForScreen('t', "the echo agent's screen in the pane", (s) => s.includes('ECHO READY'));

    // i: keys go to the agent (its echo shows in the pane, its log has them); Ctrl-] comes back.
    await tmux.keys('t', 'i');
    await tmux.waitForScreen('t', 'interactive mode', (s) => s.includes('INTERACTIVE: keys go to ' + echoId));
    await tmux.text('t', 'typed in the tui');
    await tmux.waitForScreen('t', 'the echo in the pane', (s) => s.includes('typed in the tui'));
    await waitUntil(() => w.log(echoId).includes('typed in the tui'), { what: "the typed text in the agent's log" });
    await tmux.keys('t', 'C-]');
    await tmux.waitForScreen('t', 'back from interactive mode', (s) => !s.includes('INTERACTIVE') && s.includes('↑↓/jk select'));

    // l: the whole log in the pager (less, as with no PAGER set); q there comes back.
    await tmux.keys('t', 'l');
    await tmux.waitForScreen('t', 'the log in less', (s) => s.includes('typed in the tui') && /\(END\)/.test(s) && !s.includes('↑↓/jk select'));
    await tmux.keys('t', 'q');
    await tmux.waitForScreen('t', 'back from the pager', (s) => s.includes('↑↓/jk select') && s.includes('ECHO READY'));

    // + 2 Enter: two more iterations.
    await tmux.keys('t', '+', '2', 'Enter');
    await tmux.waitForScreen('t', 'the extend answer', (s) => s.includes(`loop ${echoId}: 2 more iterations, 12 in all`));
    assert.is((await w.entry(echoId)).maxIterations, 12);

    // The flooding-ish loop: live lines, then PgUp goes back through its log and End returns.
    await clearFilter(tmux, 't');
    await select(tmux, 't', slowId);
    await tmux.waitForScreen('t', 'slow lines in the pane', (s) => /slow line \d+/.test(s));
    await waitUntil(() => (w.log(slowId).match(/slow line/g) ?? []).length > 200, { what: 'a few screens of output' });
    await tmux.keys('t', 'PPage');
    const back = await tmux.waitForScreen('t', 'the log scrolled back', (s) => /log: \d+ of \d+ lines up/.test(s));
    const shown = [...back.matchAll(/slow line (\d+)/g)].map((m) => Number(m[1]));
    const newest = Math.max(...[...w.log(slowId).matchAll(/slow line (\d+)/g)].map((m) => Number(m[1])));
    assert.ok(shown.length > 5 && Math.max(...shown) < newest - 5, `scrolled back: ${shown.join(',')} against ${newest}`);
    await tmux.keys('t', 'End');
    await tmux.waitForScreen('t', 'live again', (s) => !/lines up/.test(s));

    // s y: stopped, and the list says so.
    await tmux.keys('t', 's');
    await tmux.waitForScreen('t', 'the stop question', (s) => s.includes(`stop loop ${slowId} now? [y/N]`));
    await tmux.keys('t', 'y');
    await tmux.waitForScreen('t', 'the loop stopped', (s) => s.includes(`loop ${slowId} stopped`) && /stopped/.test(rowOf(s, slowId)));
    assert.is((await w.entry(slowId)).status, 'stopped');

    // r y: the stopped loop goes on as a new loop (ralph resume's own code), and that one is selected.
    await tmux.keys('t', 'r');
    await tmux.waitForScreen('t', 'the resume question', (s) => s.includes(`resume loop ${slowId} as a new loop? [y/N]`));
    await tmux.keys('t', 'y');
    const goesOn = new RegExp(`loop ${slowId} goes on as loop (\\S+)`);
    const resumed = await tmux.waitForScreen('t', 'the resumed loop', (s) => goesOn.test(s));
    const newId = goesOn.exec(resumed)![1]!;
    await tmux.waitForScreen('t', 'the new loop selected and live', (s) => new RegExp(`^─ ${newId} · `, 'm').test(s) && /slow line \d+/.test(s));
    const next = await w.entry(newId);
    assert.ok(['starting', 'running'].includes(next.status), next.status);
    assert.is((next as unknown as { resumedFrom: string }).resumedFrom, slowId);
    await clearFilter(tmux, 't');

    // A loop that ends while the TUI runs: flagged (●), the bell, and notify.command with its id/status/reason.
    assert.is(await tmux.format('t', '#{window_bell_flag}'), '0');
    const doneId = await w.startLoop({ steps: 'slow,work', stories: 1, env: { FIXTURE_SLOW_MS: '50', FIXTURE_SLOW_COUNT: '20' } });
    const flagged = await tmux.waitForScreen('t', 'the ended loop flagged', (s) => rowOf(s, doneId).startsWith(' ●') && /completed/.test(rowOf(s, doneId)), 30_000);
    assert.match(flagged, new RegExp(`loop ${doneId} completed`));
    await waitUntil(async () => (await tmux.format('t', '#{window_bell_flag}')) === '1', { what: 'the terminal bell' });
    await waitUntil(() => {
      try {
        return readFileSync(notified, 'utf8').includes(`${doneId}|completed|`);
      } catch {
        return false;
      }
    }, { what: 'notify.command to run' });

    // Resize: the frame follows, and so does the selected agent's PTY (it takes the pane's size).
    await select(tmux, 't', echoId);
    runner = await LoopClient.connect(join(w.home.home, 'sockets', `${echoId}.sock`));
    const client = runner;
    await tmux.run(['resize-window', '-t', 't', '-x', '100', '-y', '30']);
    const { paneRows } = layout(100, 30);
    await waitUntil(async () => {
      const st = await client.status();
      return st.cols === 100 && st.rows === paneRows;
    }, { what: `the PTY to take the pane's size 100x${paneRows}` });
    const resized = await tmux.waitForScreen('t', 'the frame at 100 columns', (s) => s.includes('ECHO READY') && s.split('\n').every((l) => l.length <= 100));
    assert.ok(resized.split('\n').some((l) => l.startsWith(' ralph · ')));

    // q: exit 0, the alternate screen left, the terminal's modes exactly as before.
    await tmux.keys('t', 'q');
    await tmux.waitForScreen('t', 'the shell again', (s) => s.includes('TUI-EXIT=0'));
    await sameTerminalModes(w.home.home);
    assert.is(await tmux.format('t', '#{alternate_on}'), '0');
    assert.is(await tmux.format('t', '#{cursor_flag}'), '1');
    assert.is((await w.entry(echoId)).status, 'running', 'loops run on after the TUI quits');
  } finally {
    runner?.close();
    await tmux.kill();
    await w.cleanup();
  }
});


test('tui: l lends the terminal to the pager: every key is the pager\'s, Ctrl-C and Ctrl-\\ there leave the TUI running, and SIGTERM to the TUI takes the pager with it', async () => {
  const w = new CliWorld('ralph-tui');
  const tmux = new Tmux({ ...w.env, PS1: '$ ' });
  const dir = w.home.home;
  const pager = new TestPager(dir);
  const said = () => pager.said();
  try {
    const id = await w.startLoop({ steps: 'echo' });
    await tmux.shell('p');
    await startTuiInShell(tmux, 'p', dir, `PAGER='${pager.command}' `);
    await tmux.waitForScreen('p', 'the loop live in the pane', (s) => s.includes('ECHO READY'));
    const shellPid = Number(await tmux.format('p', '#{pane_pid}'));
    const tuiPid = await waitUntil(() => childrenOf(shellPid)[0], { what: 'the tui process' });

    await tmux.keys('p', 'l');
    const ready = await tmux.waitForScreen('p', 'the pager', (s) => /PAGER READY \d+/.test(s));
    assert.is(Number(/PAGER READY (\d+)/.exec(ready)![1]), Buffer.byteLength(w.log(id)), 'the whole log went through the pipe');
    for (const line of ['one', 'two', 'three', 'four', 'five', 'six']) {
      await tmux.text('p', line);
      await tmux.keys('p', 'Enter');
    }
    await waitUntil(() => said() === 'one\ntwo\nthree\nfour\nfive\nsix\n', { what: 'every line typed to reach the pager' });
    await tmux.keys('p', 'C-c');
    await tmux.keys('p', 'C-\\');
    await waitUntil(() => said().includes('SIGINT\nSIGQUIT\n'), { what: 'Ctrl-C and Ctrl-\\ to reach the pager' });
    await tmux.text('p', 'q');
    await tmux.keys('p', 'Enter');
    await tmux.waitForScreen('p', 'the TUI again, still running', (s) => s.includes('↑↓/jk select') && s.includes('ECHO READY'));
    assert.ok(childrenOf(shellPid).includes(tuiPid));

    await tmux.keys('p', 'l');
    await tmux.waitForScreen('p', 'the pager again', (s) => /PAGER READY \d+/.test(s));
    const pagerPid = pager.pid();
    process.kill(tuiPid, 'SIGTERM');
    await tmux.waitForScreen('p', 'the shell again', (s) => s.includes('TUI-EXIT=143'));
    await waitUntil(() => !existsSync(`/proc/${pagerPid}`) || /^State:\s+Z/m.test(readFileSync(`/proc/${pagerPid}/status`, 'utf8')), { what: 'the pager to end with the TUI' });
    assert.is((await w.entry(id)).status, 'running');
  } finally {
    await tmux.kill();
    await w.cleanup();
  }
});

/** The pids of a process's children (to find the TUI under its shell). */
function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

test('tui at 80x24 with NO_COLOR (no colour, inverse kept) and with colours; a malformed config is said and local loops still show; SIGTERM exits 143 with the terminal given back; no terminal: one line', async () => {
  const w = new CliWorld('ralph-tui');
  const tmux = new Tmux({ ...w.env, PS1: '$ ' });
  try {
    const id = await w.startLoop({ steps: 'echo' });
    writeFileSync(w.env.RALPH_CONFIG!, '{ not json');
    await tmux.shell('small', { cols: 80, rows: 24 }, { NO_COLOR: '1' });
    await startTuiInShell(tmux, 'small', w.home.home);
    const screen = await tmux.waitForScreen('small', 'the frame at 80x24', (s) => s.includes('ECHO READY') && /^ ↑↓\/jk select/m.test(s));
    const lines = screen.replace(/\n$/, '').split('\n');
    assert.is(lines.length, 24);
    assert.ok(lines.every((l) => [...l].length <= 80), 'no line wraps');
    assert.match(rowOf(screen, id), /local\s+running\s+1\/10\s+custom/);
    // The whole message, clipped to the 80 columns with an ellipsis (the JSON error is this Node's own words).
    let parseError = '';
    try {
      JSON.parse('{ not json');
    } catch (err) {
      parseError = (err as Error).message;
    }
    const said = `${w.env.RALPH_CONFIG} is not valid JSON (${parseError}); fix or remove the file (remotes and notify.command are off)`;
    assert.ok(said.length > 80, 'the message is longer than the screen');
    assert.is(lines.find((l) => l.startsWith(w.env.RALPH_CONFIG!))?.trimEnd(), `${said.slice(0, 79)}…`, screen);
    const mono = await tmux.screen('small', { escapes: true });
    assert.not.match(mono, /\x1b\[[0-9;]*(3[0-7]|9[0-7])m/, 'NO_COLOR: no colour');
    assert.match(mono, /\x1b\[[0-9;]*7m/, 'the selected row is drawn inverse');

    // SIGTERM to the TUI (a child of the shell): exit 143, the terminal as it was.
    const shellPid = Number(await tmux.format('small', '#{pane_pid}'));
    const tuiPid = await waitUntil(() => childrenOf(shellPid)[0], { what: 'the tui process' });
    process.kill(tuiPid, 'SIGTERM');
    await tmux.waitForScreen('small', 'the shell again', (s) => s.includes('TUI-EXIT=143'));
    await sameTerminalModes(w.home.home);
    assert.is(await tmux.format('small', '#{alternate_on}'), '0');

    // With colours allowed, statuses are coloured.
    writeFileSync(w.env.RALPH_CONFIG!, JSON.stringify({ remotes: {} }));
    await tmux.run(['new-session', '-d', '-s', 'color', '-x', '100', '-y', '30', '-e', 'NO_COLOR=', process.execPath, RALPH_BIN, 'tui']);
    await tmux.waitForScreen('color', 'the coloured frame', (s) => rowOf(s, id) !== '');
    await waitUntil(async () => /\x1b\[[0-9;]*32m/.test(await tmux.screen('color', { escapes: true })), { what: 'a green status' });
    await tmux.keys('color', 'q');

    const noTty = await w.ralph(['tui']);
    assert.is(noTty.code, 1);
    assert.is(noTty.stderr, 'ralph: tui needs a terminal (stdin and stdout a TTY); in scripts use ralph status --json or ralph watch --json\n');
  } finally {
    await tmux.kill();
    await w.cleanup();
  }
});

test('the terminal hanging up under tui and attach (an SSH session closed): exit 129, not a crash in Node restoring a terminal that is gone', async () => {
  const w = new CliWorld();
  try {
    const id = await w.startLoop({ steps: 'slow', env: { FIXTURE_SLOW_MS: '20', FIXTURE_SLOW_COUNT: '100000' } });
    for (const [args, drawn] of [[['tui'], id], [['attach', id], 'slow']] as const) {
      const term = pty.spawn(process.execPath, [RALPH_BIN, ...args], { cols: 100, rows: 30, env: w.env as Record<string, string> });
      const exited = new Promise<{ exitCode: number; signal?: number }>((resolve) => term.onExit(resolve));
      let screen = '';
      await new Promise<void>((resolve) => term.onData((d) => (screen += d).includes(drawn) && resolve()));
      // The master closes (node-pty's destroy, untyped): the kernel hangs the terminal up, SIGHUP, then EIO.
      (term as unknown as { destroy(): void }).destroy();
      assert.equal(await exited, { exitCode: 129, signal: 0 }, `ralph ${args[0]}`);
    }
    const runner = await LoopClient.connect(join(w.home.home, 'sockets', `${id}.sock`));
    assert.is((await runner.status()).status, 'running', 'the loop runs on');
    runner.close();
  } finally {
    await w.cleanup();
  }
});

test.run();
