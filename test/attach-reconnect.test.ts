// What attach stands on: the loop's output across dropped connections (resubscribe from the last
// seq: nothing lost, nothing twice), across a runner that dies, and the key rules of each mode.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { join } from 'node:path';
import { requireLoop } from '../client/lookup.js';
import { loopAccess } from '../client/loop-access.js';
import { LoopFeed } from '../client/loop-feed.js';
import { KeyRouter } from '../client/attach/keys.js';
import { attachToLoop } from '../client/attach/session.js';
import { AttachTerminal, type AttachIo } from '../client/attach/terminal.js';
import { RpcPeer } from '../rpc/peer.js';
import { openDb } from '../store/db.js';
import { LoopStore, type LoopRow } from '../store/loops.js';
import { dial } from '../transport/index.js';
import { LiveView } from '../tui/live.js';
import type { LiveHeader } from '../tui/state.js';
import { CliWorld } from './helpers/cli.js';
import { LoopClient } from './helpers/loop.js';
import { waitUntil } from './helpers/env.js';

/** A unix-socket relay in front of a runner's socket whose connections the test can cut. */
class CuttableRelay {
  private readonly pairs = new Set<[net.Socket, net.Socket]>();
  private readonly server: net.Server;
  cuts = 0;
  connections = 0;

  /** `delayToClientMs`: what the runner sends reaches the client this much later (a slow link). */
  constructor(
    readonly path: string,
    target: string,
    delayToClientMs = 0,
  ) {
    this.server = net.createServer((client) => {
      const upstream = net.connect(target);
      const pair: [net.Socket, net.Socket] = [client, upstream];
      this.pairs.add(pair);
      this.connections += 1;
      client.pipe(upstream);
      if (delayToClientMs > 0) upstream.on('data', (d: Buffer) => void setTimeout(() => client.writable && client.write(d), delayToClientMs));
      else upstream.pipe(client);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        this.pairs.delete(pair);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.path, resolve));
  }

  cut(): void {
    this.cuts += 1;
    for (const [a, b] of this.pairs) {
      a.destroy();
      b.destroy();
    }
    this.pairs.clear();
  }

  /** Every connection through it goes silent both ways without closing (a link that died without a word). */
  blackhole(): void {
    for (const [a, b] of this.pairs) {
      a.unpipe(b);
      b.unpipe(a);
      a.pause();
      b.pause();
    }
  }

  close(): Promise<void> {
    this.cut();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** `attachToLoop` on pipes: what it prints, its notes, and keys written to its stdin. */
function attachOnPipes(store: LoopStore, row: LoopRow, opts: { interactive: boolean; replay: boolean }) {
  const stdin = new PassThrough();
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const seen = { out: '', notes: '' };
  stdout.on('data', (d) => (seen.out += d));
  stderr.on('data', (d) => (seen.notes += d));
  const io = { stdin, stdout, stderr } as unknown as Parameters<typeof attachToLoop>[3];
  return { stdin, seen, attached: attachToLoop(store, row, opts, io) };
}

/**
 * A CliWorld with its session DB open, and the relays a test puts in front of runners (each at
 * $HOME/relay.sock: a new one after a close takes the same path); end() closes them all.
 */
function feedWorld() {
  const w = new CliWorld('ralph-feed');
  const db = openDb(join(w.home.home, 'ralph.db'));
  const relays: CuttableRelay[] = [];
  const relayPath = join(w.home.home, 'relay.sock');
  return {
    w,
    store: new LoopStore(db),
    relayPath,
    async relay(target: string, delayToClientMs = 0): Promise<CuttableRelay> {
      const r = new CuttableRelay(relayPath, target, delayToClientMs);
      relays.push(r);
      await r.listen();
      return r;
    },
    async end(): Promise<void> {
      for (const r of relays) await r.close();
      db.close();
      await w.cleanup();
    },
  };
}

test('output across two dropped connections equals the log byte for byte, and the end arrives', async () => {
  const f = feedWorld();
  const { w, store } = f;
  try {
    const id = await w.startLoop({ steps: 'work,slow', stories: 2, env: { FIXTURE_SLOW_MS: '15', FIXTURE_SLOW_COUNT: '40' } });
    const row = requireLoop(store, id);
    const r = await f.relay(row.socketPath!);
    let output = '';
    let reconnects = 0;
    const feed = new LoopFeed({
      ...loopAccess(store, row),
      connect: async () => new RpcPeer(await dial(`unix:${r.path}`)),
      fromSeq: 0,
      onOutput: (data) => {
        output += data;
        // Cut while output is flowing: once early, once in the second iteration.
        if ((r.cuts === 0 && output.length > 300) || (r.cuts === 1 && /iteration 2/.test(output))) r.cut();
      },
      onSubscribed: (_result, _peer, isReconnect) => {
        if (isReconnect) reconnects += 1;
      },
    });
    await feed.start();
    const end = await feed.ended;
    assert.is(end.status, 'completed');
    assert.is(end.iteration, 2);
    assert.is(r.cuts, 2);
    assert.ok(reconnects >= 2, `reconnected ${reconnects} times`);
    assert.is(output, w.log(id), 'nothing lost, nothing twice');
  } finally {
    await f.end();
  }
});

test('a runner killed mid-loop: the feed ends as failed ("runner exited unexpectedly") with the output the log holds', async () => {
  const f = feedWorld();
  const { w, store } = f;
  try {
    const id = await w.startLoop({ steps: 'slow', env: { FIXTURE_SLOW_MS: '20', FIXTURE_SLOW_COUNT: '600' } });
    const row = requireLoop(store, id);
    let output = '';
    const feed = new LoopFeed({ ...loopAccess(store, row), fromSeq: 0, onOutput: (data) => (output += data) });
    await feed.start();
    await waitUntil(() => output.includes('slow line 5'), { what: 'some output' });
    process.kill(store.get(id)!.pid!, 'SIGKILL');
    const end = await feed.ended;
    assert.is(end.status, 'failed');
    assert.is(end.reason, 'runner exited unexpectedly');
    assert.is(output, w.log(id));
    assert.is(store.get(id)!.status, 'failed');
  } finally {
    await f.end();
  }
});

test('attach --interactive: keys typed while the connection is down are dropped with a note, not replayed when it is back', async () => {
  const f = feedWorld();
  const { w, store } = f;
  try {
    const id = await w.startLoop({ steps: 'echo' });
    const target = requireLoop(store, id).socketPath!;
    let relay = await f.relay(target);
    store.update(id, { socketPath: f.relayPath }); // attach reaches the runner through the relay
    const { stdin, seen, attached } = attachOnPipes(store, requireLoop(store, id), { interactive: true, replay: true });
    await waitUntil(() => seen.out.includes('ECHO READY') && seen.notes.includes('interactive — keys go to the agent'), { what: 'attach in interactive mode' });
    stdin.write('before\r');
    await waitUntil(() => w.log(id).includes('before'), { what: 'a key typed while connected' });

    await relay.close(); // cut, and no new connection gets through
    await waitUntil(() => seen.notes.includes('connection lost'), { what: 'the drop noticed' });
    stdin.write('offline\r');
    await waitUntil(() => seen.notes.includes('not connected right now: that key was not delivered'), { what: 'the note' });

    relay = await f.relay(target);
    await waitUntil(() => seen.notes.includes('reconnected'), { what: 'the reconnect' });
    stdin.write('after\r');
    await waitUntil(() => w.log(id).includes('after'), { what: 'a key typed after the reconnect' });
    assert.not.ok(w.log(id).includes('offline'), 'the key typed while disconnected never reached the agent');
    stdin.end();
    assert.is((await attached).kind, 'detached');
  } finally {
    await f.end();
  }
});

test('a connection that goes silent without closing is found (the loop is asked for its status) and replaced; output goes on', async () => {
  const f = feedWorld();
  const { w, store } = f;
  let feed: LoopFeed | undefined;
  try {
    const id = await w.startLoop({ steps: 'echo' });
    const row = requireLoop(store, id);
    const r = await f.relay(row.socketPath!);
    let output = '';
    const disconnects: string[] = [];
    let reconnects = 0;
    feed = new LoopFeed({
      ...loopAccess(store, row),
      connect: async () => new RpcPeer(await dial(`unix:${r.path}`)),
      fromSeq: 0,
      quietCheckMs: 300,
      quietAnswerTimeoutMs: 300,
      onOutput: (data) => (output += data),
      onDisconnected: (reason) => disconnects.push(reason),
      onSubscribed: (_result, _peer, isReconnect) => void (isReconnect && (reconnects += 1)),
    });
    await feed.start();
    await waitUntil(() => output.includes('ECHO READY'), { what: 'the agent ready' });
    r.blackhole();
    await waitUntil(() => reconnects === 1, { what: 'a new connection', timeoutMs: 10_000 });
    assert.equal(disconnects, ['no answer from the loop within 0.3 s']);
    assert.is(r.connections, 2);
    // The new connection carries keys and output.
    const client = await LoopClient.connect(row.socketPath!);
    await client.request('interactive', { on: true });
    await client.request('write', { data: 'still here\r' });
    await waitUntil(() => output.includes('still here'), { what: 'output over the new connection' });
    client.close();
  } finally {
    feed?.close();
    await f.end();
  }
});

test('attach --interactive joins a loop someone else holds interactive: it holds the mode too, and keys reach the agent after the other leaves', async () => {
  const f = feedWorld();
  const { w, store } = f;
  let other: LoopClient | undefined;
  try {
    const id = await w.startLoop({ steps: 'echo' });
    const row = requireLoop(store, id);
    other = await LoopClient.connect(row.socketPath!);
    await other.request('interactive', { on: true });
    const { stdin, seen, attached } = attachOnPipes(store, row, { interactive: true, replay: true });
    await waitUntil(() => seen.notes.includes('interactive — keys go to the agent'), { what: 'attach in interactive mode' });
    other.close(); // the first holder leaves: the mode stays, attach holds it too
    other = undefined;
    stdin.write('from the second holder\r');
    await waitUntil(() => w.log(id).includes('from the second holder'), { what: 'the key at the agent' });
    assert.not.match(seen.notes, /write failed/);
    stdin.end();
    assert.is((await attached).kind, 'detached');
  } finally {
    other?.close();
    await f.end();
  }
});

test('attach: i and keys typed while the runner has not answered the subscribe yet (a slow link) reach the agent', async () => {
  const f = feedWorld();
  const { w, store } = f;
  try {
    const id = await w.startLoop({ steps: 'echo' });
    const target = requireLoop(store, id).socketPath!;
    await waitUntil(() => w.log(id).includes('ECHO READY'), { what: 'the agent ready' });
    const r = await f.relay(target, 700);
    store.update(id, { socketPath: f.relayPath });
    const { stdin, seen, attached } = attachOnPipes(store, requireLoop(store, id), { interactive: false, replay: true });
    // Connected, and the answer to subscribe is at least 700 ms away.
    await waitUntil(() => r.connections === 1, { what: 'the connection' });
    stdin.write('i');
    stdin.write('typed early\r');
    await waitUntil(() => w.log(id).includes('typed early'), { what: 'the early keys at the agent' });
    assert.not.match(seen.notes, /not delivered/);
    stdin.write('\x1d');
    stdin.write('q');
    assert.is((await attached).kind, 'detached');
  } finally {
    await f.end();
  }
});

test("attach: leaving restores the normal screen if the agent's output entered the alternate one, and only then", () => {
  const run = (output: string) => {
    let written = '';
    const stdout = Object.assign(new PassThrough(), { isTTY: true, columns: 80, rows: 24 });
    stdout.on('data', (d) => (written += d));
    const stdin = Object.assign(new PassThrough(), { isTTY: false });
    const term = new AttachTerminal({ stdin, stdout, stderr: new PassThrough() } as unknown as AttachIo);
    term.enter(() => {});
    term.write(Buffer.from(output));
    term.restore();
    return written.slice(output.length);
  };
  assert.match(run('\x1b[?1049h\x1b[Hfull screen'), /^\x1b\[\?1049l/);
  assert.not.match(run('plain lines\r\n'), /1049/);
  assert.not.match(run('\x1b[?1049hin and \x1b[?1049lout'), /1049/);
});

test('tui live pane: interactive mode turned off while the connection is down stays off when it comes back (the loop is not left waiting)', async () => {
  const f = feedWorld();
  const { w, store } = f;
  let view: LiveView | undefined;
  let runner: LoopClient | undefined;
  try {
    const id = await w.startLoop({ steps: 'echo' });
    const target = requireLoop(store, id).socketPath!;
    let relay = await f.relay(target);
    store.update(id, { socketPath: f.relayPath });
    let header: Partial<LiveHeader> = {};
    view = new LiveView(store, requireLoop(store, id), 80, 20, { header: (patch) => (header = { ...header, ...patch }), changed: () => {} });
    view.start();
    await waitUntil(() => header.connection === 'live', { what: 'the pane live' });
    await view.setInteractive(true);
    runner = await LoopClient.connect(target);
    assert.is((await runner.status()).interactive, true);

    await relay.close();
    await waitUntil(() => header.connection === 'reconnecting', { what: 'the drop noticed' });
    await view.setInteractive(false); // what the TUI does when it goes back to the list: no throw
    assert.is(view.interactive, false);
    relay = await f.relay(target);
    await waitUntil(() => header.connection === 'live' && header.note === 'reconnected', { what: 'the reconnect' });
    assert.is((await runner.status()).interactive, false, 'interactive mode was not turned on again');
  } finally {
    runner?.close();
    await view?.close();
    await f.end();
  }
});

test('keys: watch mode i / s / q / Ctrl-C, others ignored', () => {
  const k = new KeyRouter('watch');
  assert.equal(k.route(Buffer.from('xz')), []);
  assert.equal(k.route(Buffer.from('q')), [{ kind: 'detach' }]);
  assert.equal(k.route(Buffer.from('\x03')), [{ kind: 'detach' }]);
  assert.equal(k.route(Buffer.from('s')), [{ kind: 'ask-stop' }]);
  assert.is(k.mode, 'confirm-stop');
  assert.equal(k.route(Buffer.from('n')), [{ kind: 'keep-running' }]);
  assert.equal(k.route(Buffer.from('s')), [{ kind: 'ask-stop' }]);
  assert.equal(k.route(Buffer.from('y')), [{ kind: 'stop' }]);
  assert.equal(k.route(Buffer.from('i')), [{ kind: 'interactive', on: true }]);
  assert.is(k.mode, 'interactive');
});

test('keys: a paste in watch mode never stops the loop (the answer to "stop?" is a lone key of a later read); a bracketed paste is ignored', () => {
  const k = new KeyRouter('watch');
  // "systemctl status" pasted by mistake: "s" asks, the rest of that read is no answer.
  assert.equal(k.route(Buffer.from('systemctl status ralph')), [{ kind: 'ask-stop' }]);
  assert.is(k.mode, 'confirm-stop');
  // A second pasted line (or keys typed ahead) is no answer either.
  assert.equal(k.route(Buffer.from('yes please')), [{ kind: 'keep-running' }]);
  assert.is(k.mode, 'watch');
  // Bracketed, even split across reads: nothing inside counts.
  assert.equal(k.route(Buffer.from('\x1b[200~sy q\x1b[201~')), []);
  assert.equal(k.route(Buffer.from('\x1b[200~is')), []);
  assert.equal(k.route(Buffer.from('yq\x1b[20')), []);
  assert.equal(k.route(Buffer.from('1~q')), [{ kind: 'detach' }]);
  assert.is(k.mode, 'watch');
});

test('keys: interactive mode sends every byte (Esc, Ctrl-C, q, multi-byte split across reads); Ctrl-] leaves mid-chunk', () => {
  const k = new KeyRouter('interactive');
  assert.equal(k.route(Buffer.from('q\x1b[A\x03i')), [{ kind: 'send', data: 'q\x1b[A\x03i' }]);
  const snow = Buffer.from('☃');
  assert.equal(k.route(snow.subarray(0, 1)), []);
  assert.equal(k.route(snow.subarray(1)), [{ kind: 'send', data: '☃' }]);
  assert.equal(k.route(Buffer.from('ab\x1dq')), [
    { kind: 'send', data: 'ab' },
    { kind: 'interactive', on: false },
    { kind: 'detach' },
  ]);
  assert.is(k.mode, 'watch');
});

test.run();
