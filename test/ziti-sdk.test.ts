// The OpenZiti SDK backend (transport/ziti/sdk.ts) through transport dial/listen, against the stand-in
// for @openziti/ziti-sdk-nodejs 0.13.3 (test/fixtures/ziti-sdk-standin — the real SDK cannot be
// installed here). A host process binds the service; this process dials it as the client identity.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { ConnectionClosedError, RpcPeer } from '../rpc/index.js';
import { readFirstLine } from '../rpc/reader.js';
import { dial, DialError, listen } from '../transport/index.js';
import { markRemoteEnded, ZitiError } from '../transport/ziti/index.js';
import { exited, makeTempHome, ROOT } from './helpers/env.js';
import { makeStandinNetwork, pattern } from './helpers/ziti-standin.js';

const SERVICE = 'ralph-svc';
const EMPTY = 'ralph-empty'; // the client may dial it, nobody hosts it
const OTHER = 'ralph-other'; // 'hostonly' may bind it but not dial it
const SELF = 'ralph-self'; // the client may both host and dial it (in this process)
const PEER = join(ROOT, 'dist', 'test', 'helpers', 'ziti-sdk-peer.js');

const t = makeTempHome('ralph-zsdk');
const net = makeStandinNetwork(t.home, {
  daemon: { bind: [SERVICE] },
  client: { dial: [SERVICE, EMPTY, SELF], bind: [SELF] },
  hostonly: { bind: [OTHER] },
  intruder: {},
});
Object.assign(process.env, net.env, { RALPH_ZITI_WRITE_STALL_MS: '1500' });
delete process.env.RALPH_ZITI_IDENTITY;
const client = { backend: 'sdk' as const, identityFile: net.identity('client') };
/** Every wait is bounded. */
const T = { timeoutMs: 10_000 };
function within<V>(p: Promise<V>, ms = 10_000): Promise<V> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`not within ${ms} ms`)), ms);
    p.then(
      (v) => (clearTimeout(timer), resolve(v)),
      (e) => (clearTimeout(timer), reject(e)),
    );
  });
}

/** A child process whose stdout lines can be awaited. */
class Proc {
  readonly lines: string[] = [];
  private waiters: Array<() => void> = [];
  constructor(readonly child: ChildProcess) {
    let buf = '';
    child.stdout!.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) !== -1) {
        this.lines.push(buf.slice(0, i));
        buf = buf.slice(i + 1);
        for (const w of this.waiters.splice(0)) w();
      }
    });
    child.stderr!.on('data', (d) => process.stderr.write(d));
  }
  async line(re: RegExp, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hit = this.lines.find((l) => re.test(l));
      if (hit) return hit;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no line matching ${re} within ${timeoutMs} ms; got ${JSON.stringify(this.lines)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }
}

function peer(args: string[], identity: string, env: NodeJS.ProcessEnv = {}): Proc {
  return new Proc(
    spawn(process.execPath, [PEER, ...args], {
      env: { ...process.env, ...env, RALPH_ZITI_IDENTITY: identity },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
}

/** Runs a one-shot peer (dial/listen) and returns its JSON verdict. */
async function attempt(args: string[], identity: string, env: NodeJS.ProcessEnv = {}): Promise<{ ok: boolean; error?: string; ms: number }> {
  const p = peer(args, identity, env);
  const line = await p.line(/^\{/, 20_000);
  await within(exited(p.child));
  return JSON.parse(line);
}

function oneLine(msg: string): void {
  assert.not.match(msg, /\n/, `one line: ${msg}`);
}

let host: Proc;

test.before(async () => {
  host = peer(['host', SERVICE], net.identity('daemon'));
  await host.line(/^listening$/);
});

test.after(async () => {
  host.child.kill('SIGTERM');
  await within(exited(host.child));
  t.cleanup();
  // The SDK (and so its stand-in) keeps the event loop alive after init: leave once uvu has reported.
  setTimeout(() => process.exit(), 200).unref();
});

/** Reads exactly `bytes` bytes (bounded in time) and returns their sha256. */
function collect(conn: Duplex, bytes: number, timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    let got = 0;
    const timer = setTimeout(() => reject(new Error(`only ${got} of ${bytes} bytes within ${timeoutMs} ms`)), timeoutMs);
    conn.on('data', (d: Buffer) => {
      hash.update(d);
      got += d.length;
      if (got > bytes) reject(new Error(`${got} bytes, more than ${bytes}`));
      if (got === bytes) {
        clearTimeout(timer);
        resolve(hash.digest('hex'));
      }
    });
    conn.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

async function open(mode: object): Promise<Duplex> {
  const conn = await dial(`ziti:${SERVICE}`, { ziti: client, timeoutMs: 5000 });
  conn.write(JSON.stringify(mode) + '\n');
  return conn;
}

test('an RpcPeer echo crosses two processes over ziti:<service>; closing it ends the host side', async () => {
  const conn = await open({ mode: 'rpc' });
  const rpc = new RpcPeer(conn);
  assert.equal(await rpc.request('echo', { hello: 'ziti', n: 1 }, T), { hello: 'ziti', n: 1 });
  assert.equal(await rpc.request('echo', ['ünïcödé ✓'], T), ['ünïcödé ✓']);
  const big = { text: 'x'.repeat(300_000) };
  assert.equal(await rpc.request('echo', big, T), big);
  const before = host.lines.length;
  rpc.close('done');
  // The hosting side IS told of the client's end (unlike the dialing side): its peer closes.
  await host.line(/^closed rpc peer closed the connection$/);
  assert.ok(host.lines.length > before);
});

test('a few MB each way arrive intact, writes paced by the SDK write callbacks', async () => {
  const N = 6 * 1024 * 1024;
  const data = pattern(N);
  const want = createHash('sha256').update(data).digest('hex');

  const up = await open({ mode: 'sink', bytes: N });
  const answer = readFirstLine(up, { maxBytes: 1024, timeoutMs: 30_000 });
  let full = 0;
  for (let i = 0; i < N; i += 256 * 1024) {
    if (!up.write(data.subarray(i, i + 256 * 1024))) {
      full++;
      await new Promise((r) => up.once('drain', r));
    }
    assert.ok(up.writableLength <= 512 * 1024, `buffered ${up.writableLength}`);
  }
  assert.equal(JSON.parse((await answer).toString()), { bytes: N, sha256: want });
  assert.ok(full > 0, 'backpressure engaged');
  up.destroy();

  const down = await open({ mode: 'source', bytes: N });
  assert.is(await collect(down, N), want);
  await host.line(/^source-done \d+$/);
  down.destroy();
});

test('two clients at once on one listener: each gets its own bytes (write callbacks routed by connection)', async () => {
  // The SDK keeps one write-callback slot per listener for all its clients: results must be routed by conn.
  const N = 3 * 1024 * 1024;
  const want = createHash('sha256').update(pattern(N)).digest('hex');
  const fetchOne = async () => {
    const conn = await open({ mode: 'source', bytes: N });
    const sum = await collect(conn, N);
    conn.destroy();
    return sum;
  };
  assert.equal(await Promise.all([fetchOne(), fetchOne(), fetchOne()]), [want, want, want]);
});

test('hosting in this process: a Listener hands out Duplexes; once closed it turns new clients away', async () => {
  const l = await listen(`ziti:${SELF}`, { ziti: client });
  assert.is(l.address, `ziti:${SELF}`);
  l.onConnection((c) => c.pipe(c)); // echo
  const c = await dial(`ziti:${SELF}`, { ziti: client, timeoutMs: 5000 });
  c.write('ping\n');
  assert.is((await readFirstLine(c, { maxBytes: 100, timeoutMs: 5000 })).toString(), 'ping');
  c.destroy();
  await l.close();
  try {
    await dial(`ziti:${SELF}`, { ziti: client, timeoutMs: 5000 });
    assert.unreachable('a closed listener must not accept');
  } catch (err) {
    assert.instance(err, DialError);
    assert.match((err as Error).message, /no one is hosting it/);
  }
});

test('dial never reports end-of-stream: the protocol marks it and the peer closes cleanly', async () => {
  const conn = await open({ mode: 'rpc' });
  const rpc = new RpcPeer(conn);
  const closedBefore = host.lines.filter((l) => l.startsWith('closed rpc')).length;
  assert.is(await rpc.request('bye', undefined, T), 'bye');
  // The host has ended its side...
  await waitFor(() => host.lines.filter((l) => l.startsWith('closed rpc')).length > closedBefore);
  // ...but the dialed stream was not told (the SDK's quirk): it is still open.
  assert.is(conn.readableEnded, false);
  assert.is(rpc.closed, false);
  // The protocol knows (the goodbye was answered): it says so, and everything closes in order.
  markRemoteEnded(conn);
  assert.is(await within(rpc.whenClosed()), 'peer closed the connection');
  await within(new Promise((r) => (conn.destroyed ? r(null) : conn.once('close', r))));
});

test('without the mark, the next request still fails within the write-stall limit, never hangs', async () => {
  const conn = await open({ mode: 'rpc' });
  const rpc = new RpcPeer(conn);
  assert.is(await rpc.request('bye', undefined, T), 'bye');
  const started = Date.now();
  let last: unknown;
  while (Date.now() - started < 15_000) {
    try {
      await rpc.request('echo', 1, { timeoutMs: 1000 });
    } catch (err) {
      last = err;
      if (err instanceof ConnectionClosedError) break;
    }
  }
  assert.instance(last, ConnectionClosedError, String(last));
  // Either the write is dropped unacknowledged (the SDK's behaviour once it closed the connection
  // inside), or it fails outright when it raced the close.
  assert.match(String((last as Error).message), /not acknowledged within 1500 ms|write failed \(ziti status -\d+\)/);
  assert.ok(Date.now() - started < 8000, `took ${Date.now() - started} ms`);
});

async function waitFor(check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function dialError(opts: object): Promise<Error> {
  const started = Date.now();
  try {
    const c = await dial(`ziti:${SERVICE}`, { ziti: opts, timeoutMs: 3000 });
    c.destroy();
  } catch (err) {
    assert.ok(Date.now() - started < 1000, 'fails at once');
    oneLine((err as Error).message);
    return err as Error;
  }
  throw new Error('dial should have failed');
}

test('identity problems are one line naming the flag, the variable or the file', async () => {
  let err = await dialError({ backend: 'sdk' });
  assert.instance(err, ZitiError);
  assert.match(err.message, /no OpenZiti identity file given: pass --ziti-identity FILE or set RALPH_ZITI_IDENTITY/);

  const dir = join(t.home, 'bad');
  mkdirSync(dir);
  const missing = join(dir, 'missing.json');
  err = await dialError({ backend: 'sdk', identityFile: missing });
  assert.is(err.message, `ziti identity ${missing}: no such file`);

  err = await dialError({ backend: 'sdk', identityFile: dir });
  assert.is(err.message, `ziti identity ${dir}: is a directory, not an identity file`);

  const notJson = join(dir, 'notjson.json');
  writeFileSync(notJson, 'ztAPI = nope\n');
  err = await dialError({ backend: 'sdk', identityFile: notJson });
  assert.match(err.message, new RegExp(`^ziti identity ${notJson}: is not JSON`));

  const jwt = join(dir, 'token.jwt');
  writeFileSync(jwt, 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl\n');
  err = await dialError({ backend: 'sdk', identityFile: jwt });
  assert.match(err.message, /is an enrollment token \(JWT\), not an enrolled identity: enroll it first with `ziti edge enroll /);

  const noKey = join(dir, 'nokey.json');
  writeFileSync(noKey, JSON.stringify({ ztAPI: 'https://c:1280', id: { cert: 'pem:x', ca: 'pem:y' } }));
  err = await dialError({ backend: 'sdk', identityFile: noKey });
  assert.is(err.message, `ziti identity ${noKey}: is not an enrolled OpenZiti identity: no id.key`);

  // The identity file also comes from the environment.
  process.env.RALPH_ZITI_IDENTITY = missing;
  err = await dialError({ backend: 'sdk' });
  assert.is(err.message, `ziti identity ${missing}: no such file`);
  delete process.env.RALPH_ZITI_IDENTITY;
});

test('an unreadable identity file is one line naming it', async () => {
  // Root reads everything: check the identity code as an unprivileged user when we are root.
  const dir = mkdtempSync(join(tmpdir(), 'ralph-zid-'));
  try {
    chmodSync(dir, 0o755);
    for (const f of ['identity.js', 'errors.js']) copyFileSync(join(ROOT, 'dist', 'transport', 'ziti', f), join(dir, f));
    writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
    const file = join(dir, 'secret.json');
    writeFileSync(file, '{}');
    chmodSync(file, 0o000);
    const script = `import(${JSON.stringify(join(dir, 'identity.js'))}).then((m) => { try { m.readIdentity('s', ${JSON.stringify(file)}); console.log('read it'); } catch (e) { console.log(e.message); } })`;
    const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    const child = spawn(process.execPath, ['-e', script], { ...asUser, stdio: ['ignore', 'pipe', 'inherit'] });
    let outText = '';
    child.stdout.on('data', (d) => (outText += d));
    await within(exited(child));
    assert.is(outText.trim(), `ziti identity ${file}: cannot read it: permission denied`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a service the identity may not use is refused with one line, at once', async () => {
  const intruder = await attempt(['dial', SERVICE], net.identity('intruder'));
  assert.is(intruder.ok, false);
  assert.is(
    intruder.error,
    `ziti:${SERVICE}: identity ${net.identity('intruder')} has no access to service ${SERVICE} (no such service, or no policy grants it)`,
  );
  assert.ok(intruder.ms < 2000, `${intruder.ms} ms`);

  const bindOnly = await attempt(['dial', OTHER], net.identity('hostonly'));
  assert.is(bindOnly.error, `ziti:${OTHER}: identity ${net.identity('hostonly')} may not dial service ${OTHER} (no Dial policy grants it)`);

  const dialOnly = await attempt(['listen', SERVICE], net.identity('client'));
  assert.is(dialOnly.error, `ziti:${SERVICE}: identity ${net.identity('client')} may not host service ${SERVICE} (no Bind policy grants it)`);

  const nobody = await attempt(['dial', EMPTY], net.identity('client'));
  assert.match(nobody.error!, new RegExp(`^ziti:${EMPTY}: cannot connect to service ${EMPTY}: no one is hosting it`));
  assert.ok(nobody.ms < 2000, `${nobody.ms} ms`);
  for (const r of [intruder, bindOnly, dialOnly, nobody]) oneLine(r.error!);
});

test('an unreachable controller is a clear error within the dial timeout, not a hang', async () => {
  const file = net.unreachableIdentity('lost');
  const r = await attempt(['dial', SERVICE, '1500'], file);
  assert.is(r.ok, false);
  assert.is(
    r.error,
    `ziti:${SERVICE}: no answer from the OpenZiti controller https://127.0.0.1:9/ for identity ${file} within 1500 ms (controller unreachable, or the identity is not accepted)`,
  );
  assert.ok(r.ms >= 1400 && r.ms < 4000, `${r.ms} ms`);

  const hosting = await attempt(['listen', SERVICE], file, { RALPH_ZITI_TIMEOUT_MS: '1000' });
  assert.match(hosting.error!, /no answer from the OpenZiti controller .* within 1000 ms/);
});

test('one identity per process: a second one is refused clearly', async () => {
  // This process signed in as "client" in the tests above.
  const err = await dialError({ backend: 'sdk', identityFile: net.identity('daemon') });
  assert.instance(err, ZitiError);
  assert.is(
    err.message,
    `ziti:${SERVICE}: this process already uses OpenZiti identity ${net.identity('client')}; the Node SDK allows one identity per process (asked for ${net.identity('daemon')})`,
  );
});

test('backend auto takes the SDK when it loads', async () => {
  const r = await attempt(['dial', SERVICE], net.identity('client'), { RALPH_ZITI_BACKEND: 'auto' });
  assert.equal(r.ok, true, JSON.stringify(r));
});

test('backend sdk without the SDK installed says how to get it; dial errors are DialErrors', async () => {
  const r = await attempt(['dial', SERVICE], net.identity('client'), { RALPH_ZITI_SDK_MODULE: join(t.home, 'no-such-sdk') });
  assert.match(r.error!, /^the OpenZiti Node SDK \(.*no-such-sdk\) cannot be loaded: .* install it next to ralph \(npm install @openziti\/ziti-sdk-nodejs\) or use the tunnel backend$/);
  try {
    await dial(`ziti:${EMPTY}`, { ziti: client, timeoutMs: 3000 });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, DialError);
  }
});

test.run();
