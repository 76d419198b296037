// A loop's socket as clients see it: resume from seq with nothing lost or doubled, screen replay,
// interactive keystrokes, bad input, silent and stalled clients, memory under a flood.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, statSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { LOOP_PROTOCOL } from '../loop/protocol.js';
import { runnerLogPath } from '../loop/launch.js';
import { ErrorCodes, RpcError } from '../rpc/index.js';
import { dial } from '../transport/index.js';
import { waitUntil } from './helpers/env.js';
import { LoopHarness, type LoopClient } from './helpers/loop.js';

/** A socket speaking raw NDJSON, for input no well-behaved client would send. */
function rawReplies(sock: Duplex): { next(): Promise<any> } {
  let buf = '';
  const queue: any[] = [];
  const waiting: Array<(v: any) => void> = [];
  sock.on('data', (d: Buffer) => {
    buf += d.toString('utf8');
    let i;
    while ((i = buf.indexOf('\n')) !== -1) {
      const msg = JSON.parse(buf.slice(0, i));
      buf = buf.slice(i + 1);
      if (msg.method) continue; // notifications
      const w = waiting.shift();
      if (w) w(msg);
      else queue.push(msg);
    }
  });
  return { next: () => (queue.length > 0 ? Promise.resolve(queue.shift()) : new Promise((r) => waiting.push(r))) };
}

async function rejectsWith(p: Promise<unknown>, code: number, message: RegExp): Promise<void> {
  try {
    await p;
  } catch (err) {
    assert.instance(err, RpcError);
    assert.is((err as RpcError).code, code);
    assert.match((err as RpcError).message, message);
    return;
  }
  assert.unreachable(`expected error ${code}`);
}

function vmRssKiB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

test('resubscribing from the last seq after a disconnect: no gap, no duplicate, equals the log', async () => {
  const h = new LoopHarness();
  try {
    const loop = await h.start({ steps: 'slow,work', stories: 1, env: { FIXTURE_SLOW_MS: '5', FIXTURE_SLOW_COUNT: '150' } });
    const first = await h.connect(loop);
    await first.subscribe({ fromSeq: 0 });
    await first.waitForOutput('slow line 40\r\n');
    first.close();
    const resumeAt = first.nextSeq!;
    const second = await h.connect(loop);
    const sub = await second.subscribe({ fromSeq: resumeAt });
    assert.is(sub.seq, resumeAt);
    const end = await second.watchToEnd();
    assert.is(end.status, 'completed');
    assert.equal(first.gaps, []);
    assert.equal(second.gaps, []);
    const log = readFileSync(h.row(loop.row.id).logPath!);
    assert.ok(Buffer.from(first.output + second.output).equals(log), 'the two halves make exactly the log');
    assert.match(second.output, /slow line 150/);
  } finally {
    await h.cleanup();
  }
});

test('subscribe without fromSeq replays the current screen, then live output from its seq', async () => {
  const h = new LoopHarness();
  try {
    const loop = await h.start({ steps: 'echo,work', stories: 1 });
    const watcher = await h.connect(loop);
    await watcher.subscribe({ fromSeq: 0 });
    await watcher.waitForOutput('ECHO READY');
    const viewer = await h.connect(loop);
    const replay = await viewer.subscribe();
    assert.ok(replay.screen?.includes('ECHO READY'), replay.screen);
    assert.ok(replay.screen?.includes('[ralph] iteration 1/10 — US-001: Story number 1'));
    assert.is(replay.seq, watcher.nextSeq, 'the screen shows the output up to its seq');
    assert.equal([replay.cols, replay.rows, replay.status, replay.interactive], [120, 40, 'running', false]);
    const quitter = await h.connect(loop);
    const none = await quitter.subscribe({ replay: 'none' });
    assert.is(none.screen, undefined);
    assert.is(none.seq, replay.seq);
    assert.is(await quitter.request('unsubscribe'), null);

    assert.equal(await viewer.request('resize', { cols: 100, rows: 30 }), { cols: 100, rows: 30 });
    assert.equal([(await viewer.status()).cols, (await viewer.status()).rows], [100, 30]);

    await viewer.request('interactive', { on: true });
    await viewer.request('write', { data: 'typed\r' });
    await viewer.waitForOutput('typed');
    assert.ok(viewer.outputs[0]!.seq === replay.seq, 'live output continues at the replay seq');
    await viewer.request('write', { data: 'q\r' });
    await viewer.waitForOutput('echo done');
    await viewer.request('interactive', { on: false });
    const end = await viewer.waitForEnd();
    assert.is(end.status, 'completed');
    assert.is(quitter.outputs.length, 0, 'no output after unsubscribe');
    await quitter.waitForEvent('completed'); // events still come
    assert.equal(viewer.gaps, []);
    // Output after the replay point, appended to the log up to it, is the whole log.
    const log = readFileSync(h.row(loop.row.id).logPath!);
    assert.is(log.subarray(replay.seq).toString('utf8'), viewer.output);
  } finally {
    await h.cleanup();
  }
});

test('interactive mode: keys reach the agent, completion waits, and it ends when its holder leaves', async () => {
  const h = new LoopHarness();
  try {
    const loop = await h.start({ steps: 'echo@1,work', stories: 1 });
    const typist = await h.connect(loop);
    const observer = await h.connect(loop);
    await observer.subscribe({ fromSeq: 0 });
    await observer.waitForOutput('ECHO READY');

    await rejectsWith(typist.request('write', { data: 'x' }), ErrorCodes.Refused, /not in interactive mode/);
    assert.equal(await typist.request('interactive', { on: true }), { interactive: true });
    await observer.waitForEvent('state', (s) => s.interactive === true);
    await typist.request('write', { data: 'hello ✓ \x1b[A' });
    await observer.waitForOutput('hello ✓ \x1b[A');
    // The agent finishes its story (and prints the promise) while a human is typing: not completion.
    await typist.request('write', { data: '\rq\r' });
    await observer.waitForOutput('[ralph] waiting for interactive mode to end before iteration 2');
    const during = await observer.status();
    assert.equal([during.status, during.iteration, during.interactive], ['running', 1, true]);
    assert.ok(loop.repo.readPrd().userStories[0]!.passes);

    typist.close(); // the only holder leaves: interactive mode ends, the loop goes on
    await observer.waitForEvent('state', (s) => s.interactive === false);
    const end = await observer.waitForEnd();
    assert.equal([end.status, end.iteration], ['completed', 2]);
  } finally {
    await h.cleanup();
  }
});

test('bad input gets the right errors; a silent client is dropped; the loop keeps running and serving', async () => {
  const h = new LoopHarness();
  try {
    const loop = await h.start({ steps: 'slow', env: { RALPH_FIRST_MESSAGE_TIMEOUT_MS: '300' } });
    const silent = await dial(`unix:${loop.row.socketPath}`);
    const silentSince = Date.now();
    const silentClosed = new Promise<void>((resolve) => silent.once('close', () => resolve()));
    silent.resume();

    const raw = await dial(`unix:${loop.row.socketPath}`);
    const replies = rawReplies(raw);
    const send = (line: string) => raw.write(line + '\n');
    // A first message at once, so this client is not taken for a silent one while its 1 MiB line travels.
    send('{"jsonrpc":"2.0","id":0,"method":"status"}');
    assert.is((await replies.next()).id, 0);
    const expectError = async (line: string, code: number, message?: RegExp) => {
      send(line);
      const r = await replies.next();
      assert.is(r.error?.code, code, `${line.slice(0, 80)} → ${JSON.stringify(r)}`);
      if (message) assert.match(r.error.message, message);
    };
    await expectError(`{"jsonrpc":"2.0","id":1,"method":"status","params":{"pad":"${'x'.repeat(1024 * 1024 + 10)}"}}`, ErrorCodes.InvalidRequest, /over the limit/);
    await expectError('{this is not json', ErrorCodes.ParseError);
    await expectError('"just a string"', ErrorCodes.InvalidRequest);
    await expectError('[{"jsonrpc":"2.0","id":2,"method":"status"}]', ErrorCodes.InvalidRequest);
    await expectError('{"jsonrpc":"1.0","id":3,"method":"status"}', ErrorCodes.InvalidRequest, /jsonrpc/);
    await expectError('{"jsonrpc":"2.0","id":4,"method":"launchMissiles"}', ErrorCodes.MethodNotFound);
    // A client of loop protocol 1 (an older ralph): told so, in its terms.
    await expectError('{"jsonrpc":"2.0","id":5,"method":"subscribe","params":{"fromSeq":0}}', ErrorCodes.Refused, /speaks loop protocol 2 and this client 1: it is an older ralph; use the same ralph version/);
    await expectError('{"jsonrpc":"2.0","id":5,"method":"subscribe","params":{"protocol":2,"fromSeq":"0"}}', ErrorCodes.InvalidParams, /fromSeq/);
    await expectError('{"jsonrpc":"2.0","id":6,"method":"subscribe","params":{"protocol":2,"fromSeq":1e12}}', ErrorCodes.InvalidParams, /past the end/);
    await expectError('{"jsonrpc":"2.0","id":7,"method":"subscribe","params":{"protocol":2,"replay":"all"}}', ErrorCodes.InvalidParams, /replay/);
    await expectError('{"jsonrpc":"2.0","id":8,"method":"resize","params":{"cols":"80","rows":24}}', ErrorCodes.InvalidParams, /cols/);
    await expectError('{"jsonrpc":"2.0","id":9,"method":"write","params":{"data":5}}', ErrorCodes.InvalidParams, /data/);
    await expectError(`{"jsonrpc":"2.0","id":10,"method":"write","params":{"data":"${'x'.repeat(70_000)}"}}`, ErrorCodes.InvalidParams, /at most 65536 bytes/);
    await expectError('{"jsonrpc":"2.0","id":11,"method":"interactive","params":{"on":"yes"}}', ErrorCodes.InvalidParams, /on/);
    await expectError('{"jsonrpc":"2.0","id":12,"method":"stop","params":{"when":"later"}}', ErrorCodes.InvalidParams, /when/);
    await expectError('{"jsonrpc":"2.0","id":13,"method":"addIterations","params":{"n":0}}', ErrorCodes.InvalidParams, /n must be >= 1/);
    await expectError('{"jsonrpc":"2.0","id":14,"method":"addIterations","params":[]}', ErrorCodes.InvalidParams, /params must be an object/);

    send('{"jsonrpc":"2.0","id":15,"method":"status"}');
    const status = await replies.next();
    assert.is(status.id, 15);
    assert.is(status.result.status, 'running', 'still running after all that');

    await silentClosed;
    assert.ok(Date.now() - silentSince >= 250, 'dropped after the first-message timeout, not before');

    const other = await h.connect(loop);
    assert.is((await other.status()).status, 'running');
    assert.equal(await other.request('addIterations', { n: 5 }), { maxIterations: 15 });
    // The bound is on the loop's limit, not on one request: resume must be able to take the limit on.
    const over = await other.request('addIterations', { n: 99_990 }).then(() => null, (err: RpcError) => err);
    assert.is(over?.code, ErrorCodes.Refused);
    assert.is(over?.message, 'a loop runs at most 100000 iterations and this one may already run 15, so at most 99985 more');
    assert.equal(await other.request('addIterations', { n: 99_985 }), { maxIterations: 100_000 });
    const full = await other.request('addIterations', { n: 1 }).then(() => null, (err: RpcError) => err);
    assert.match(full?.message ?? '', /may already run 100000, so it cannot be extended$/);
    // Keys sent as a notification outside interactive mode: not delivered, and the sender is told.
    other.peer.notify('write', { data: 'x' });
    assert.match((await other.waitForEvent('writeRefused')).message, /not in interactive mode/);
    await other.subscribe({ fromSeq: 0 });
    await other.request('stop', {});
    assert.is((await other.waitForEnd()).status, 'stopped');
    raw.destroy();
  } finally {
    await h.cleanup();
  }
});

test('a subscriber that never reads is dropped and costs no memory, while another gets every byte', async () => {
  const h = new LoopHarness();
  const floodMb = 32;
  let sampler: NodeJS.Timeout | undefined;
  try {
    const loop = await h.start({
      steps: 'flood,work',
      stories: 1,
      env: { FIXTURE_FLOOD_MB: String(floodMb), RALPH_STALL_TIMEOUT_MS: '1000' },
    });
    const baseline = vmRssKiB(loop.pid);
    let peakRss = baseline;
    // RSS is another process's state with no event to await: sample it.
    sampler = setInterval(() => {
      try {
        peakRss = Math.max(peakRss, vmRssKiB(loop.pid));
      } catch {
        /* runner gone */
      }
    }, 50);

    const stalled = await dial(`unix:${loop.row.socketPath}`);
    stalled.pause();
    stalled.write(`{"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"protocol":${LOOP_PROTOCOL},"fromSeq":0}}\n`);

    const reader: LoopClient = await h.connect(loop);
    const started = Date.now();
    // Join late, so the start of the output is served from the log file rather than memory.
    await waitUntil(() => statSync(h.row(loop.row.id).logPath!).size > 4 * 1024 * 1024, { what: 'output to pass 4 MiB' });
    await reader.subscribe({ fromSeq: 0 });
    const end = await reader.watchToEnd();
    const secs = (Date.now() - started) / 1000;
    clearInterval(sampler);
    assert.is(end.status, 'completed');
    assert.equal(reader.gaps, []);
    const log = readFileSync(h.row(loop.row.id).logPath!);
    assert.ok(log.length > floodMb * 1024 * 1024);
    assert.ok(Buffer.from(reader.output).equals(log), 'the reader got exactly the log');
    console.log(`flood: ${(log.length / 1e6).toFixed(1)} MB in ${secs.toFixed(1)} s; runner RSS ${baseline >> 10} MiB at start, peak ${peakRss >> 10} MiB`);
    // The stalled client was dropped rather than buffered for: the runner's memory did not grow
    // with the output (which is larger than the bound).
    assert.ok(peakRss - baseline < 96 * 1024, `runner RSS grew by ${(peakRss - baseline) >> 10} MiB`);
    await h.exited(loop.pid);
    assert.match(readFileSync(runnerLogPath(h.paths, loop.row.id), 'utf8'), /dropped a subscriber that read nothing for 1000 ms/);
    // What the stalled client had been sent before it was dropped ends well short of the output.
    let received = 0;
    stalled.on('data', (d: Buffer) => (received += d.length));
    stalled.resume();
    await new Promise((resolve) => stalled.once('close', resolve));
    assert.ok(received < log.length / 2, `stalled client got ${received} bytes`);
  } finally {
    clearInterval(sampler);
    await h.cleanup();
  }
});

test.run();
