// `ralph watch [--json]` and `notify.command`: each loop printed as it ends, exit 0 when none is left
// running; the notify command runs (from watch and from attach) with the loop in its environment
// and never through a shell; a bad notify.command is one clear line, and watch still finishes.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CliWorld } from './helpers/cli.js';
import { exited, makeTempHome, RALPH_BIN, waitUntil, within } from './helpers/env.js';
import { LoopClient } from './helpers/loop.js';

/** A notify.command that appends `id|status|reason|location` to `file`, one line per call. */
function recordingNotify(file: string): string[] {
  return [process.execPath, '-e', "require('fs').appendFileSync(process.argv[1], ['ID','STATUS','REASON','LOCATION'].map((k) => process.env['RALPH_LOOP_' + k]).join('|') + '\\n')", file];
}

/** Ends the fixture's echo step the way a user would: interactive mode, a line "q", interactive mode off. */
async function finishEcho(w: CliWorld, id: string): Promise<void> {
  const client = await LoopClient.connect(join(w.home.home, 'sockets', `${id}.sock`));
  try {
    await client.subscribe({ fromSeq: 0 });
    await client.waitForOutput('ECHO READY');
    await client.request('interactive', { on: true });
    await client.request('write', { data: 'q\r' });
    await client.waitForOutput('echo done');
    await client.request('interactive', { on: false });
  } finally {
    client.close();
  }
}

const lines = (file: string): string[] => {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').filter(Boolean);
  } catch {
    return [];
  }
};

test('watch prints each loop as it ends and exits 0 when none runs; notify.command ran for each, with the loop in its environment', async () => {
  const w = new CliWorld('ralph-watch');
  const file = join(w.home.home, 'notified.txt');
  writeFileSync(w.env.RALPH_CONFIG!, JSON.stringify({ remotes: {}, notify: { command: recordingNotify(file) } }));
  try {
    const quick = await w.startLoop({ steps: 'echo,work', stories: 1 });
    const crash = await w.startLoop({ steps: 'echo,crash', stories: 1, args: ['--max-iterations', '1'] });
    const watch = spawn(process.execPath, [RALPH_BIN, 'watch'], { env: w.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const r = { stdout: '', stderr: '' };
    watch.stdout.on('data', (d) => (r.stdout += d));
    watch.stderr.on('data', (d) => (r.stderr += d));
    await waitUntil(() => r.stderr.includes('ralph: watching 2 loops; each is printed as it ends'), { what: 'watch to start' });
    await finishEcho(w, quick);
    await waitUntil(() => r.stdout.includes(`loop ${quick} completed`), { what: 'the first end printed', timeoutMs: 30_000 });
    assert.is((await w.entry(crash)).status, 'running', 'watch goes on while a loop runs');
    await finishEcho(w, crash);
    const end = await within(exited(watch), 30_000, 'watch to exit after the last loop ended');
    assert.is(end.code, 0, r.stderr);
    const out = r.stdout.trim().split('\n');
    assert.is(out.length, 2, r.stdout);
    assert.ok(out.some((l) => new RegExp(`^loop ${quick} completed \\(iteration 1/10\\): `).test(l)), r.stdout);
    assert.ok(out.some((l) => new RegExp(`^loop ${crash} failed \\(iteration 1/1\\)`).test(l)), r.stdout);
    const notified = lines(file);
    assert.ok(notified.some((l) => l.startsWith(`${quick}|completed|`) && l.endsWith('|local')), notified.join('\n'));
    assert.ok(notified.some((l) => l.startsWith(`${crash}|failed|`)), notified.join('\n'));

    // Nothing left running: says so and exits 0 at once.
    const none = await w.ralph(['watch']);
    assert.is(none.code, 0);
    assert.match(none.stderr, /no loop is running/);
  } finally {
    await w.cleanup();
  }
});

test('watch --json: one status object per line; a stop counts as an end', async () => {
  const w = new CliWorld('ralph-watch');
  try {
    const id = await w.startLoop({ steps: 'echo' });
    const child = spawn(process.execPath, [RALPH_BIN, 'watch', '--json'], { env: w.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    await waitUntil(() => stderr.includes('watching 1 loop'), { what: 'watch to start' });
    const stop = await w.ralph(['stop', id]);
    assert.is(stop.code, 0, stop.stderr);
    const end = await within(exited(child), 30_000, 'watch --json to exit after the stop');
    assert.is(end.code, 0, stderr);
    const entry = JSON.parse(stdout.trim()) as Record<string, unknown>;
    assert.is(entry.id, id);
    assert.is(entry.status, 'stopped');
    assert.is(entry.location, 'local');
    assert.ok('usage' in entry && 'maxIterations' in entry, 'the keys of ralph status --json');
  } finally {
    await w.cleanup();
  }
});

test('notify.command: from attach when the loop ends there; loop text never reaches a shell; a failing command is one line and changes no exit code', async () => {
  const w = new CliWorld('ralph-notify');
  const file = join(w.home.home, 'notified.txt');
  try {
    writeFileSync(w.env.RALPH_CONFIG!, JSON.stringify({ remotes: {}, notify: { command: recordingNotify(file) } }));
    const id = await w.startLoop({ steps: 'echo,work', stories: 1 });
    // Attached (its stdin open, as a terminal's would be) before the loop ends.
    const child = spawn(process.execPath, [RALPH_BIN, 'attach', id], { env: w.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const attach = { stdout: '', stderr: '' };
    child.stdout.on('data', (d) => (attach.stdout += d));
    child.stderr.on('data', (d) => (attach.stderr += d));
    await waitUntil(() => attach.stdout.includes('ECHO READY'), { what: 'attach to show the loop' });
    await finishEcho(w, id);
    assert.is((await within(exited(child), 30_000, 'attach to exit at the loop\'s end')).code, 0, attach.stderr);
    assert.match(attach.stderr, new RegExp(`loop ${id} completed`));
    assert.ok(lines(file).some((l) => l.startsWith(`${id}|completed|`)), lines(file).join('\n'));
    // Attaching to a loop that ended before: no second notification.
    const again = await w.ralph(['attach', id]);
    assert.is(again.code, 0);
    assert.is(lines(file).filter((l) => l.startsWith(`${id}|`)).length, 1);

    // Loop text travels in the environment as it is, never spliced into a command line.
    const { notifyEnv } = await import('../client/notify.js');
    const env = notifyEnv({ id, name: 'x', status: 'failed', reason: '$(rm -rf ~); `id`', iteration: 1, maxIterations: 1, location: 'local', remote: null }, {});
    assert.is(env.RALPH_LOOP_REASON, '$(rm -rf ~); `id`');

    // A notify.command that fails: one line naming it, watch still ends with 0.
    writeFileSync(w.env.RALPH_CONFIG!, JSON.stringify({ remotes: {}, notify: { command: [process.execPath, '-e', "console.error('no display'); process.exit(3)"] } }));
    const last = await w.startLoop({ steps: 'echo,work', stories: 1 });
    const child2 = spawn(process.execPath, [RALPH_BIN, 'watch'], { env: w.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const watch = { stderr: '' };
    child2.stderr.on('data', (d) => (watch.stderr += d));
    await waitUntil(() => watch.stderr.includes('watching 1 loop'), { what: 'watch to start' });
    await finishEcho(w, last);
    assert.is((await within(exited(child2), 30_000, 'watch to exit after the last loop ended')).code, 0, watch.stderr);
    assert.match(watch.stderr, /^ralph: notify\.command ".*node.*" exited 3: no display$/m);

    // A notify.command given as a shell string is refused when the config is read, in one line.
    writeFileSync(w.env.RALPH_CONFIG!, JSON.stringify({ remotes: {}, notify: { command: 'notify-send ralph' } }));
    const bad = await w.ralph(['watch']);
    assert.is(bad.code, 1);
    assert.match(bad.stderr, /^ralph: .*config\.json: "notify\.command" must be a program and its arguments, e\.g\. \["notify-send", "ralph"\]; fix or remove the file$/m);
  } finally {
    await w.cleanup();
  }
});

test('attach: a config file broken while attached costs only the notification; the attach still ends 0', async () => {
  const w = new CliWorld('ralph-notify');
  try {
    const id = await w.startLoop({ steps: 'echo,work', stories: 1 });
    const child = spawn(process.execPath, [RALPH_BIN, 'attach', id], { env: w.env, stdio: ['pipe', 'pipe', 'pipe'] });
    const attach = { stdout: '', stderr: '' };
    child.stdout.on('data', (d) => (attach.stdout += d));
    child.stderr.on('data', (d) => (attach.stderr += d));
    await waitUntil(() => attach.stdout.includes('ECHO READY'), { what: 'attach to show the loop' });
    writeFileSync(w.env.RALPH_CONFIG!, '{ not json');
    await finishEcho(w, id);
    assert.is((await exited(child)).code, 0, attach.stderr);
    assert.match(attach.stderr, new RegExp(`^ralph: loop ${id} completed`, 'm'));
    assert.match(attach.stderr, /^ralph: notify\.command not run: .*config\.json is not valid JSON.*$/m);
    assert.not.match(attach.stderr, /\n\s+at /, 'no stack trace');
  } finally {
    await w.cleanup();
  }
});

test('notify.command never rejects: a NUL byte in an agent\'s reason is dropped from the environment, one in the config\'s arguments is one line', async () => {
  const { runNotifyCommand } = await import('../client/notify.js');
  const dir = makeTempHome('ralph-notify');
  try {
    const file = join(dir.home, 'notified.txt');
    const loop = { id: 'app-1', name: 'app-1', status: 'failed', reason: 'bad\0 bytes', iteration: 1, maxIterations: 3, location: 'local', remote: null };
    assert.is(await runNotifyCommand({ notify: { command: recordingNotify(file) } }, loop), null);
    assert.is(readFileSync(file, 'utf8'), 'app-1|failed|bad bytes|local\n');
    const problem = await runNotifyCommand({ notify: { command: [process.execPath, '-e', '', 'a\0b'] } }, loop);
    assert.match(problem ?? '', /^notify\.command ".*node.*" could not run: .+$/);
    assert.not.match(problem ?? '', /\n/);
  } finally {
    dir.cleanup();
  }
});

test.run();
