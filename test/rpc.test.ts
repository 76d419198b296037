// The JSON-RPC layer over a real unix socket: framing, errors per the spec, limits.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { ConnectionClosedError, ErrorCodes, LineReader, RequestTimeoutError, RpcError, RpcPeer, payloadFrame, type LineEvent } from '../rpc/index.js';
import { dial, listen } from '../transport/index.js';
import { makeTempHome, waitUntil } from './helpers/env.js';

async function pair(opts: ConstructorParameters<typeof RpcPeer>[1] = {}) {
  const t = makeTempHome('ralph-rpc');
  const listener = await listen(`unix:${join(t.home, 's', 'x.sock')}`);
  const serverPeer = new Promise<RpcPeer>((resolve) => listener.onConnection((c: Duplex) => resolve(new RpcPeer(c, opts))));
  const raw = await dial(listener.address);
  return { t, listener, serverPeer: await serverPeer, raw };
}

function lines(raw: Duplex, n: number): Promise<any[]> {
  return new Promise((resolve) => {
    let buf = '';
    const out: any[] = [];
    const onData = (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) !== -1) {
        out.push(JSON.parse(buf.slice(0, i)));
        buf = buf.slice(i + 1);
        if (out.length === n) {
          raw.off('data', onData);
          resolve(out);
          return;
        }
      }
    };
    raw.on('data', onData);
  });
}

test('requests, errors and bad input get the spec error codes, and the peer keeps serving', async () => {
  const { t, listener, serverPeer, raw } = await pair({ maxLineBytes: 1024 });
  serverPeer.onRequest('echo', (p) => p);
  serverPeer.onRequest('boom', () => {
    throw new RpcError(ErrorCodes.InvalidParams, 'x must be a string');
  });
  const replies = lines(raw, 8);
  raw.write('{"jsonrpc":"2.0","id":1,"method":"echo","params":{"a":1}}\n');
  raw.write('not json\n');
  raw.write('[1,2]\n');
  raw.write('"a string"\n');
  raw.write('{"jsonrpc":"1.0","id":2,"method":"echo"}\n');
  raw.write('{"jsonrpc":"2.0","id":3,"method":"nope"}\n');
  raw.write('{"jsonrpc":"2.0","id":4,"method":"boom","params":{}}\n');
  raw.write('{"jsonrpc":"2.0","id":5,"method":"echo","params":{"big":"' + 'x'.repeat(5000) + '"}}\n');
  const got = await replies;
  assert.equal(got[0], { jsonrpc: '2.0', id: 1, result: { a: 1 } });
  assert.is(got[1].error.code, ErrorCodes.ParseError);
  assert.is(got[2].error.code, ErrorCodes.InvalidRequest);
  assert.is(got[3].error.code, ErrorCodes.InvalidRequest);
  assert.is(got[4].error.code, ErrorCodes.InvalidRequest);
  assert.is(got[4].id, 2);
  assert.is(got[5].error.code, ErrorCodes.MethodNotFound);
  assert.equal(got[6].error, { code: ErrorCodes.InvalidParams, message: 'x must be a string' });
  assert.is(got[7].error.code, ErrorCodes.InvalidRequest);
  assert.match(got[7].error.message, /over the limit/);
  // still serving after all that
  const after = lines(raw, 1);
  raw.write('{"jsonrpc":"2.0","id":6,"method":"echo","params":{"ok":true}}\n');
  assert.equal((await after)[0].result, { ok: true });
  raw.destroy();
  await listener.close();
  t.cleanup();
});

test('a client that says nothing is dropped after the first-message timeout', async () => {
  const { t, listener, serverPeer, raw } = await pair({ firstMessageTimeoutMs: 200 });
  const reason = await serverPeer.whenClosed();
  assert.match(reason, /no message within 200 ms/);
  raw.destroy();
  await listener.close();
  t.cleanup();
});

test('two peers talk both ways; a closed connection rejects pending requests', async () => {
  const { t, listener, serverPeer, raw } = await pair();
  const client = new RpcPeer(raw);
  serverPeer.onRequest('add', (p: any) => p.a + p.b);
  client.onRequest('ping', () => 'pong');
  assert.is(await client.request('add', { a: 2, b: 3 }), 5);
  assert.is(await serverPeer.request('ping'), 'pong');
  serverPeer.onRequest('never', () => new Promise(() => {}));
  // Our own wait running out is told apart from an error the peer sent that reads the same.
  serverPeer.onRequest('relay', () => {
    throw new RpcError(ErrorCodes.InternalError, 'no answer to runner.stop within 50 ms');
  });
  const late = await client.request('never', {}, { timeoutMs: 50 }).catch((err: unknown) => err);
  assert.instance(late, RequestTimeoutError);
  assert.ok(late instanceof RpcError && late.code === ErrorCodes.InternalError);
  assert.equal([(late as RequestTimeoutError).method, (late as RequestTimeoutError).timeoutMs], ['never', 50]);
  const relayed = await client.request('relay').catch((err: unknown) => err);
  assert.ok(relayed instanceof RpcError && !(relayed instanceof RequestTimeoutError), String(relayed));
  const pending = client.request('never');
  serverPeer.close();
  try {
    await pending;
    assert.unreachable('should have been rejected');
  } catch (err) {
    assert.instance(err, ConnectionClosedError, String(err));
  }
  await listener.close();
  t.cleanup();
});

test('a peer that half-closes after its requests still gets every answer, then the connection closes', async () => {
  const { t, listener, serverPeer, raw } = await pair();
  let release!: () => void;
  const later = new Promise<void>((resolve) => (release = resolve));
  serverPeer.onRequest('slow', async () => {
    await later;
    return 'late';
  });
  serverPeer.onRequest('fast', () => 'now');
  const replies = lines(raw, 2);
  const ended = new Promise((resolve) => serverPeer.stream.once('end', resolve));
  raw.end('{"jsonrpc":"2.0","id":1,"method":"slow"}\n{"jsonrpc":"2.0","id":2,"method":"fast"}\n');
  await ended; // the peer's own 'end' listener has run by now
  assert.not.ok(serverPeer.closed, 'closed while an answer was still owed');
  release();
  assert.equal((await replies).map((m) => [m.id, m.result]), [
    [2, 'now'],
    [1, 'late'],
  ]);
  assert.is(await serverPeer.whenClosed(), 'peer closed the connection');
  raw.destroy();
  await listener.close();
  t.cleanup();
});

test("a unix socket in a directory that exists leaves that directory's mode alone; one it makes is private", async () => {
  const t = makeTempHome('ralph-rpc');
  const shared = join(t.home, 'shared');
  mkdirSync(shared, { mode: 0o755 });
  const inShared = await listen(`unix:${join(shared, 'x.sock')}`);
  assert.is(statSync(shared).mode & 0o777, 0o755);
  assert.is(statSync(join(shared, 'x.sock')).mode & 0o777, 0o600);
  const made = join(t.home, 'made', 'here');
  const inMade = await listen(`unix:${join(made, 'x.sock')}`);
  assert.is(statSync(made).mode & 0o777, 0o700);
  await inShared.close();
  await inMade.close();
  t.cleanup();
});

test('payload frames: bytes travel as they are beside a notification, between JSON lines, however the stream splits them', async () => {
  // Every byte value, 0x00 and \n included, and invalid UTF-8: the payload is never JSON.
  const odd = Buffer.from(Array.from({ length: 512 }, (_, i) => i % 256));
  const big = Buffer.alloc(300 * 1024, 'x'); // spans many socket reads
  const { t, listener, serverPeer, raw } = await pair();
  const client = new RpcPeer(raw);
  const got: Array<{ params: unknown; payload: Buffer | undefined }> = [];
  const all = new Promise<void>((resolve) =>
    client.onNotification('bytes', (params, _peer, payload) => {
      got.push({ params, payload });
      if (got.length === 4) resolve();
    }),
  );
  serverPeer.notifyWithPayload('bytes', { n: 1 }, odd);
  serverPeer.notify('bytes', { n: 2 });
  serverPeer.notifyWithPayload('bytes', { n: 3 }, big);
  serverPeer.notifyWithPayload('bytes', undefined, Buffer.alloc(0));
  await all;
  assert.equal(got[0]!.params, { n: 1 });
  assert.ok(got[0]!.payload!.equals(odd), 'every byte value arrives as sent');
  assert.equal(got[1], { params: { n: 2 }, payload: undefined });
  assert.ok(got[2]!.payload!.equals(big));
  assert.is(got[3]!.payload!.length, 0);
  // and the connection still carries requests both ways
  serverPeer.onRequest('add', (p: any) => p.a + p.b);
  assert.is(await client.request('add', { a: 2, b: 3 }), 5);

  // The same bytes fed one at a time decode to the same messages.
  const events: LineEvent[] = [];
  const reader = new LineReader((e) => events.push(e));
  const stream = Buffer.concat([payloadFrame('bytes', { n: 1 }, odd), Buffer.from('{"a":1}\n'), payloadFrame('bytes', { n: 3 }, Buffer.from('é\n'))]);
  for (const b of stream) reader.push(Buffer.from([b]));
  assert.is(events.length, 3);
  assert.ok(events[0]!.kind === 'value' && events[0]!.payload!.equals(odd));
  assert.equal(events[1], { kind: 'value', value: { a: 1 } });
  assert.ok(events[2]!.kind === 'value' && events[2]!.payload!.toString() === 'é\n');
  client.close();
  await listener.close();
  t.cleanup();
});

test('payload frames: one over the limit, one with bad JSON, one carrying a request: an error each, and the stream goes on', async () => {
  const { t, listener, serverPeer, raw } = await pair({ maxLineBytes: 1024 });
  const seen: number[] = [];
  serverPeer.onNotification('n', (p: any, _peer, payload) => seen.push(p.i, payload?.length ?? -1));
  serverPeer.onRequest('echo', (p) => p);
  const replies = lines(raw, 3);
  raw.write(payloadFrame('n', { i: 1 }, Buffer.alloc(5000, 0x0a))); // payload over the limit: skipped whole
  const badJson = payloadFrame('n', { i: 2 }, Buffer.from('x\ny'));
  badJson.write('x', 5); // break the JSON, keep the length
  raw.write(badJson);
  raw.write(Buffer.concat([Buffer.from([0, 0, 0, 0, 2]), Buffer.from('{"jsonrpc":"2.0","id":7,"method":"echo"}\nhi')]));
  raw.write(payloadFrame('n', { i: 3 }, Buffer.from('ok')));
  const got = await replies;
  assert.is(got[0].error.code, ErrorCodes.InvalidRequest);
  assert.match(got[0].error.message, /5000 bytes is over the limit/);
  assert.is(got[1].error.code, ErrorCodes.ParseError);
  assert.is(got[2].error.code, ErrorCodes.InvalidRequest);
  assert.match(got[2].error.message, /must carry a notification/);
  await waitUntil(() => seen.length === 2, { what: 'the good frame after the bad ones' });
  assert.equal(seen, [3, 2]);
  // A frame that says it carries 4 GiB: refused as soon as its header is read, nothing kept.
  const refused = lines(raw, 1);
  raw.write(Buffer.concat([Buffer.from([0, 0xff, 0xff, 0xff, 0xf0]), Buffer.from('{"jsonrpc":"2.0","method":"n","params":{"i":4}}\n')]));
  assert.match((await refused)[0].error.message, /4294967280 bytes is over the limit/);
  raw.destroy();
  await listener.close();
  t.cleanup();
});

test.run();
