// `ralph attach` for real: in a tmux pane (a real terminal: raw mode, keys, screen), and from a
// pipe (how scripts drive it).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { CliWorld } from './helpers/cli.js';
import { exited, RALPH_BIN, waitUntil } from './helpers/env.js';
import { Tmux } from './helpers/tmux.js';
import { LoopClient } from './helpers/loop.js';

const count = (text: string, part: string) => text.split(part).length - 1;

test('attach in tmux: i, keys reach the agent (Esc and Ctrl-C too), Ctrl-] back, q detaches and gives the terminal back; reattach replays the screen and follows resizes; s y stops', async () => {
  const w = new CliWorld('ralph-attach');
  const tmux = new Tmux({ ...w.env, PS1: '$ ' });
  let runner: LoopClient | undefined;
  try {
    const id = await w.startLoop({ steps: 'echo' });
    // The first attach is typed into a shell, as a user would, so the terminal can be checked after.
    await tmux.run(['new-session', '-d', '-s', 'first', '-x', '120', '-y', '40', 'sh']);
    await tmux.text('first', `'${process.execPath}' '${RALPH_BIN}' attach ${id}`);
    await tmux.keys('first', 'Enter');
    await tmux.waitForScreen('first', 'the echo agent to be ready', (s) => s.includes('ECHO READY'));
    const watchNotes = count(await tmux.screen('first'), 'watching —');

    await tmux.keys('first', 'i');
    await tmux.waitForScreen('first', 'interactive mode', (s) => s.includes('interactive — keys go to the agent'));
    await tmux.text('first', 'hello from tmux');
    // Raw mode: the terminal does not echo; the text on screen is the agent's echo.
    await tmux.waitForScreen('first', 'the agent to echo the text', (s) => s.includes('hello from tmux'));
    await tmux.keys('first', 'Escape');
    await tmux.keys('first', 'C-c');
    await waitUntil(() => /hello from tmux[^]*\x1b[^]*\x03/.test(w.log(id)), { what: "Esc and Ctrl-C in the agent's output" });

    await tmux.keys('first', 'C-]');
    await tmux.waitForScreen('first', 'watch mode again', (s) => count(s, 'watching —') > watchNotes);
    await tmux.keys('first', 'q');
    await tmux.waitForScreen('first', 'attach to exit after q', (s) => s.includes(`detached from loop ${id}; it runs on`));
    assert.is((await w.entry(id)).status, 'running', 'the loop runs on after a detach');
    // The terminal is the shell's again: cooked mode, echo on, cursor visible.
    await tmux.text('first', 'stty -a');
    await tmux.keys('first', 'Enter');
    const stty = await tmux.waitForScreen('first', 'stty output', (s) => /\bicanon\b/.test(s));
    assert.not.match(stty, /-icanon|-echo\b|-isig/);
    assert.is(await tmux.format('first', '#{cursor_flag}'), '1');

    // Attach again: the screen comes back (replayed by the runner), typed text included.
    await tmux.start('second', ['attach', id]);
    await tmux.waitForScreen('second', 'the replayed screen', (s) => s.includes('ECHO READY') && s.includes('hello from tmux'));
    // A resize of the terminal reaches the agent's PTY.
    runner = await LoopClient.connect(join(w.home.home, 'sockets', `${id}.sock`));
    const client = runner;
    await tmux.run(['resize-window', '-t', 'second', '-x', '100', '-y', '30']);
    await waitUntil(
      async () => {
        const s = await client.status();
        return s.cols === 100 && s.rows === 30;
      },
      { what: 'the PTY to take the new size' },
    );
    await tmux.keys('second', 's');
    await tmux.waitForScreen('second', 'the stop prompt', (s) => s.includes(`stop loop ${id} now? [y/N]`));
    await tmux.keys('second', 'y');
    await waitUntil(() => tmux.paneDead('second'), { what: 'attach to exit when the loop stopped' });
    assert.match(await tmux.screen('second'), new RegExp(`ralph: loop ${id} stopped`));
    assert.is((await w.entry(id)).status, 'stopped');
  } finally {
    runner?.close();
    await tmux.kill();
    await w.cleanup();
  }
});

test('attach from a pipe (no TTY): keys still work, and the loop\'s end ends attach with exit 0', async () => {
  const w = new CliWorld('ralph-attach');
  try {
    const id = await w.startLoop({ steps: 'echo,work', stories: 1 });
    const child = spawn(process.execPath, [RALPH_BIN, 'attach', id], { env: w.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    await waitUntil(() => stdout.includes('ECHO READY'), { what: 'the echo agent' });
    child.stdin.write('i');
    await waitUntil(() => stderr.includes('interactive —'), { what: 'interactive mode' });
    // A line "q" ends the fixture's echo step and Ctrl-] leaves interactive mode (which holds off
    // completion); the work step then completes the only story.
    child.stdin.write('piped keys\rq\r\x1d');
    const end = await exited(child);
    assert.is(end.code, 0, stderr);
    assert.match(stdout, /piped keys/);
    assert.match(stdout, /<promise>COMPLETE<\/promise>/);
    assert.match(stderr, new RegExp(`ralph: loop ${id} completed`));
    assert.is((await w.entry(id)).status, 'completed');

    // Attaching to a loop that has ended: its final status, exit 0.
    const late = await w.ralph(['attach', id]);
    assert.is(late.code, 0, late.stderr);
    assert.match(late.stderr, new RegExp(`ralph: loop ${id} completed .*ralph logs ${id}`));
  } finally {
    await w.cleanup();
  }
});

test('attach --interactive, then SIGTERM: exit 143, interactive mode handed back, the loop runs on', async () => {
  const w = new CliWorld('ralph-attach');
  let runner: LoopClient | undefined;
  try {
    const id = await w.startLoop({ steps: 'echo' });
    runner = await LoopClient.connect(join(w.home.home, 'sockets', `${id}.sock`));
    const client = runner;
    const child = spawn(process.execPath, [RALPH_BIN, 'attach', id, '--interactive', '--no-replay'], { env: w.env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    await waitUntil(() => stderr.includes('interactive —'), { what: 'interactive mode' });
    assert.ok((await client.status()).interactive);
    child.stdin.write('typed at once');
    await waitUntil(() => stdout.includes('typed at once'), { what: 'the echo' });
    child.kill('SIGTERM');
    const end = await exited(child);
    assert.is(end.code, 143, stderr);
    assert.match(stderr, new RegExp(`detached from loop ${id} on SIGTERM`));
    const after = await client.status();
    assert.is(after.interactive, false, 'interactive mode ended with the client that asked for it');
    assert.is(after.status, 'running');
  } finally {
    runner?.close();
    await w.cleanup();
  }
});

test('output that cannot be written (stdout on a full disk, as a terminal gone with EIO): attach ends as on SIGHUP, one line, no stack trace; the loop runs on', async () => {
  const w = new CliWorld('ralph-attach');
  const full = openSync('/dev/full', 'w');
  try {
    const id = await w.startLoop({ steps: 'echo' });
    const child = spawn(process.execPath, [RALPH_BIN, 'attach', id], { env: w.env, stdio: ['pipe', full, 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    const end = await exited(child);
    assert.is(end.code, 129, stderr);
    assert.match(stderr, new RegExp(`^ralph: detached from loop ${id} on SIGHUP; it runs on$`, 'm'));
    assert.not.match(stderr, /\n\s+at /, 'no stack trace');
    assert.is((await w.entry(id)).status, 'running');

    // A command that does not own the terminal: one line, exit 1.
    const status = spawn(process.execPath, [RALPH_BIN, 'status'], { env: w.env, stdio: ['ignore', full, 'pipe'] });
    let said = '';
    status.stderr!.on('data', (d) => (said += d));
    assert.is((await exited(status)).code, 1);
    assert.is(said, 'ralph: cannot write the output: ENOSPC: no space left on device, write\n');
  } finally {
    closeSync(full);
    await w.cleanup();
  }
});

test.run();
