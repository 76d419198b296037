// The daemon process itself: listening, hello, control methods that need no loop, bad input.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { ErrorCodes, RpcError } from '../rpc/index.js';
import { dial } from '../transport/index.js';
import { MAX_HELLO_BYTES, PROTOCOL_VERSION } from '../daemon/protocol.js';
import { makeTempHome, ralph } from './helpers/env.js';
import { killRunners, startDaemon, type DaemonHandle } from './helpers/daemon.js';

const t = makeTempHome('ralph-dm');
let d: DaemonHandle;

test.before(async () => {
  d = await startDaemon(t, { listen: ['tcp://127.0.0.1:0'], maxLoops: 3, env: { RALPH_HELLO_TIMEOUT_MS: '300' } });
});

test.after(async () => {
  await d?.stop();
  killRunners(t.home);
  t.cleanup();
});

/** Reads one NDJSON line and waits for the close that follows a refused hello. */
function answerThenClose(conn: Duplex): Promise<{ reply: any; closed: boolean }> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let reply: any;
    const timer = setTimeout(() => reject(new Error(`no answer and close; got ${JSON.stringify(buf)}`)), 10_000);
    conn.on('data', (c: Buffer) => {
      buf += c.toString();
      const nl = buf.indexOf('\n');
      if (nl !== -1 && reply === undefined) reply = JSON.parse(buf.slice(0, nl));
    });
    conn.on('error', () => {});
    conn.on('close', () => {
      clearTimeout(timer);
      resolve({ reply, closed: true });
    });
  });
}

test('ready line names the unix socket (0600 in a 0700 dir) and the real tcp port', () => {
  assert.is(d.unix, `unix:${join(t.home, 'daemon.sock')}`);
  assert.ok(d.tcp);
  assert.match(d.tcp!, /^tcp:\/\/127\.0\.0\.1:\d+$/);
  assert.is.not(d.tcp, 'tcp://127.0.0.1:0');
  assert.is(statSync(join(t.home, 'daemon.sock')).mode & 0o777, 0o600);
  assert.is(statSync(t.home).mode & 0o777, 0o700);
});

test('daemon.info answers over tcp loopback and over the unix socket', async () => {
  for (const address of [d.tcp!, d.unix]) {
    const { result } = await d.open({ channel: 'control' }, address);
    assert.is(result.version, PROTOCOL_VERSION);
    assert.is(result.channel, 'control');
    const peer = await d.control(address);
    const info: any = await peer.request('daemon.info', {}, { timeoutMs: 5000 });
    assert.is(info.protocol, PROTOCOL_VERSION);
    assert.type(info.version, 'string');
    assert.is(info.host, result.host);
    assert.is(info.loopsRunning, 0);
    assert.is(info.maxLoops, 3);
    assert.ok('claude' in info.agents);
    assert.type(info.agents.claude.available, 'boolean');
    peer.close();
  }
});

test('bad hellos each get an error and a close; the daemon keeps serving', async () => {
  const hello = (params: object) => JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'hello', params }) + '\n';
  const cases: Array<{ name: string; send: string | null; code: number; message: RegExp }> = [
    { name: 'silence', send: null, code: ErrorCodes.InvalidRequest, message: /no hello within 300 ms/ },
    { name: 'invalid JSON', send: '{"jsonrpc": nope\n', code: ErrorCodes.ParseError, message: /not valid JSON/ },
    { name: 'wrong method', send: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'daemon.info' }) + '\n', code: ErrorCodes.InvalidRequest, message: /must be hello/ },
    { name: 'wrong version', send: hello({ version: 99, channel: 'control' }), code: ErrorCodes.Refused, message: /version 99 is not supported/ },
    { name: 'unknown channel', send: hello({ version: PROTOCOL_VERSION, channel: 'shell' }), code: ErrorCodes.InvalidParams, message: /unknown channel "shell"/ },
    { name: 'loop channel without a loop', send: hello({ version: PROTOCOL_VERSION, channel: 'loop' }), code: ErrorCodes.InvalidParams, message: /loop must be/ },
    { name: 'oversized', send: 'x'.repeat(MAX_HELLO_BYTES + 10), code: ErrorCodes.InvalidRequest, message: /over the limit/ },
  ];
  for (const c of cases) {
    const conn = await dial(d.tcp!);
    const got = answerThenClose(conn);
    if (c.send !== null) conn.write(c.send);
    const { reply, closed } = await got;
    assert.ok(reply, `${c.name}: an answer`);
    assert.is(reply.jsonrpc, '2.0', c.name);
    assert.is(reply.error?.code, c.code, `${c.name}: ${JSON.stringify(reply)}`);
    assert.match(reply.error.message, c.message, c.name);
    assert.ok(closed, c.name);
    conn.destroy();
  }
  // After all of it, a good client is served.
  const peer = await d.control();
  const info: any = await peer.request('daemon.info', {}, { timeoutMs: 5000 });
  assert.is(info.protocol, PROTOCOL_VERSION);
  peer.close();
});

test('a loop channel to an unknown loop is refused with NotFound', async () => {
  try {
    await d.open({ channel: 'loop', loop: 'nope-0000' });
    assert.unreachable('should refuse');
  } catch (err) {
    assert.instance(err, RpcError);
    assert.is((err as RpcError).code, ErrorCodes.NotFound);
    assert.match((err as Error).message, /no loop nope-0000/);
  }
});

test('control methods validate params; unknown loops and methods get clear errors', async () => {
  const peer = await d.control();
  const codeOf = (p: Promise<unknown>) => p.then(() => 0, (e: RpcError) => e.code);
  assert.is(await codeOf(peer.request('loop.start', { repo: 'x' })), ErrorCodes.InvalidParams);
  assert.is(await codeOf(peer.request('loop.start', { repo: 'x', branch: 'main', maxIterations: 0 })), ErrorCodes.InvalidParams);
  assert.is(await codeOf(peer.request('loop.start', { repo: 'x', branch: 'main', task: '../etc' })), ErrorCodes.InvalidParams);
  assert.is(await codeOf(peer.request('loop.start', { repo: 'x', branch: 'main', agent: 'vim' })), ErrorCodes.InvalidParams);
  assert.is(await codeOf(peer.request('loop.stop', { loopId: 'nope' })), ErrorCodes.NotFound);
  assert.is(await codeOf(peer.request('loop.logs', { loopId: 'nope' })), ErrorCodes.NotFound);
  assert.is(await codeOf(peer.request('no.such.method', {})), ErrorCodes.MethodNotFound);
  assert.equal(await peer.request('loop.list', {}), []);
  assert.equal(await peer.request('push.result', { pushId: 'p-1' }), []);
  peer.close();
});

test('a non-loopback tcp listen is refused unless --allow-public, and says why', async () => {
  const other = makeTempHome('ralph-dm2');
  try {
    const r = await ralph(['daemon', '--home', other.home, '--listen', 'tcp://0.0.0.0:0'], { env: other.env, timeoutMs: 20_000 });
    assert.is.not(r.code, 0);
    assert.match(r.stderr, /refusing to listen on tcp:\/\/0\.0\.0\.0:0/);
    assert.match(r.stderr, /no authentication of its own/);
    assert.match(r.stderr, /OpenZiti|SSH tunnel/);
    assert.is(r.stderr.trim().split('\n').length, 1);
  } finally {
    other.cleanup();
  }
});

test('a second daemon on the same home is refused; SIGTERM stops the daemon cleanly', async () => {
  const r = await ralph(['daemon', '--home', t.home], { env: t.env, timeoutMs: 20_000 });
  assert.is.not(r.code, 0);
  assert.match(r.stderr, /in use by another process/, r.stderr);

  const other = makeTempHome('ralph-dm3');
  try {
    const d2 = await startDaemon(other);
    const { code, signal } = await d2.stop('SIGTERM');
    assert.is(code, 0, `exit ${code ?? signal}; log:\n${d2.log()}`);
    assert.match(d2.log(), /SIGTERM: shutting down/);
    // its socket file is gone
    assert.throws(() => statSync(join(other.home, 'daemon.sock')));
  } finally {
    other.cleanup();
  }
});

test.run();
