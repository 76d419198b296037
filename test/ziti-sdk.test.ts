// The OpenZiti SDK backend (transport/ziti/sdk.ts, ralph's build of @openziti/ziti-sdk-nodejs 0.13.3
// from install/build-ziti-sdk.sh) through transport dial/listen, on a real controller and edge router
// (install/ziti-dev-network.sh). A host process binds the service as `daemon`; this process dials it
// as `client`; one-shot processes try the identities that must be refused (one identity per process).
// Without the ziti CLI or the SDK build it skips with one line (CI: RALPH_REQUIRE_ZITI=1 and
// RALPH_REQUIRE_ZITI_SDK=1 make that a failure).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { RpcPeer } from '../rpc/index.js';
import { readFirstLine } from '../rpc/reader.js';
import { dial, DialError } from '../transport/index.js';
import { ZitiError } from '../transport/ziti/index.js';
import { cachedBuildDir, MAX_UNREAD_BYTES } from '../transport/ziti/sdk.js';
import { exited, makeTempHome, ROOT, skipped, type TempHome } from './helpers/env.js';
import { pattern, zitiNetworkOrSkip, zitiSdkOrSkip, type ZitiNetwork } from './helpers/ziti-network.js';

const PEER = join(ROOT, 'dist', 'test', 'helpers', 'ziti-sdk-peer.js');
/** Every wait is bounded. */
const T = { timeoutMs: 10_000 };

let net: ZitiNetwork | null = null;
let t: TempHome;
let SERVICE = '';
const EMPTY = 'ralph-zsdk-empty'; // `client` may dial it, nobody hosts it
let client: { backend: 'sdk'; identityFile: string };
let host: Proc;

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
  stderr = '';
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
    child.stderr!.on('data', (d) => (this.stderr += d));
  }
  count(re: RegExp): number {
    return this.lines.filter((l) => re.test(l)).length;
  }
  /** Waits for the `n`-th line matching `re`. */
  async line(re: RegExp, timeoutMs = 15_000, n = 1): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const hits = this.lines.filter((l) => re.test(l));
      if (hits.length >= n) return hits[n - 1]!;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no line matching ${re} within ${timeoutMs} ms; got ${JSON.stringify(this.lines)}; stderr: ${this.stderr}`);
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
      env: { ...process.env, ...t.env, ...net!.env, ...env, RALPH_ZITI_IDENTITY: identity },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
}

/** Runs a one-shot peer (dial/listen/choice) and returns its JSON verdict and stderr. */
async function attempt(args: string[], identity: string, env: NodeJS.ProcessEnv = {}): Promise<{ ok?: boolean; use?: boolean; refused?: string; error?: string; ms: number; stderr: string }> {
  const p = peer(args, identity, env);
  const line = await p.line(/^\{/, 30_000);
  await within(exited(p.child));
  return { ...JSON.parse(line), stderr: p.stderr };
}

test.before(async () => {
  if (!(await zitiSdkOrSkip())) return;
  net = await zitiNetworkOrSkip('ralph-zsdk');
  if (!net) return;
  t = makeTempHome('ralph-zsdk');
  Object.assign(process.env, t.env);
  delete process.env.RALPH_ZITI_IDENTITY;
  SERVICE = net.service;
  client = { backend: 'sdk', identityFile: net.identities.client };
  // A service `client` may dial and nobody hosts.
  await net.admin(['edge', 'create', 'service', EMPTY]);
  await net.admin(['edge', 'create', 'service-policy', `${EMPTY}-dial`, 'Dial', '--service-roles', `@${EMPTY}`, '--identity-roles', '@client']);
  host = peer(['host', SERVICE], net.identities.daemon);
  await host.line(/^listening$/, 30_000);
});

test.after(async () => {
  if (host && host.child.exitCode === null) {
    host.child.kill('SIGTERM');
    await within(exited(host.child));
  }
  await net?.stop();
  t?.cleanup();
  // The SDK keeps the event loop alive after init: leave once uvu has reported.
  setTimeout(() => process.exit(), 200).unref();
});

/** Reads exactly `bytes` bytes (bounded in time) and returns their sha256. */
function collect(conn: Duplex, bytes: number, timeoutMs = 30_000): Promise<string> {
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

/** Writes `data` in chunks, waiting for 'drain'; returns how often the stream was full. */
async function writeAll(conn: Duplex, data: Buffer): Promise<number> {
  let full = 0;
  for (let i = 0; i < data.length; i += 256 * 1024) {
    if (!conn.write(data.subarray(i, i + 256 * 1024))) {
      full++;
      await within(new Promise((r) => conn.once('drain', r)), 30_000);
    }
    assert.ok(conn.writableLength <= 512 * 1024, `buffered ${conn.writableLength}`);
  }
  return full;
}

/** The other side's end reaches this stream (read whatever is left). */
const ended = (conn: Duplex, what: string) =>
  within(
    new Promise((r) => {
      if (conn.readableEnded) return r(null);
      conn.once('end', r);
      conn.resume();
    }),
  ).catch(() => {
    throw new Error(`${what}: no end of stream within 10 s`);
  });
const closed = (conn: Duplex, what: string) =>
  within(new Promise((r) => (conn.destroyed ? r(null) : conn.once('close', r)))).catch(() => {
    throw new Error(`${what}: not closed within 10 s`);
  });

async function open(mode: object): Promise<Duplex> {
  const conn = await dial(`ziti:${SERVICE}`, { ziti: client, timeoutMs: 10_000 });
  conn.write(JSON.stringify(mode) + '\n');
  return conn;
}

test('an RpcPeer echo crosses two processes over the real network; closing it ends the host side', async () => {
  if (!net) return skipped('no ziti network or SDK build');
  const conn = await open({ mode: 'rpc' });
  const rpc = new RpcPeer(conn);
  assert.equal(await rpc.request('echo', { hello: 'ziti', n: 1 }, T), { hello: 'ziti', n: 1 });
  assert.equal(await rpc.request('echo', ['ünïcödé ✓'], T), ['ünïcödé ✓']);
  const big = { text: 'x'.repeat(300_000) };
  assert.equal(await rpc.request('echo', big, T), big);
  const before = host.count(/^closed rpc /);
  rpc.close('done');
  await host.line(/^closed rpc peer closed the connection$/, 15_000, before + 1);
});

test('a flood each way arrives intact, writes paced by the SDK', async () => {
  if (!net) return skipped('no ziti network or SDK build');
  const N = 8 * 1024 * 1024;
  const data = pattern(N);
  const want = createHash('sha256').update(data).digest('hex');

  const up = await open({ mode: 'sink', bytes: N });
  const answer = readFirstLine(up, { maxBytes: 1024, timeoutMs: 60_000 });
  const full = await writeAll(up, data);
  assert.equal(JSON.parse((await answer).toString()), { bytes: N, sha256: want });
  assert.ok(full > 0, 'backpressure engaged');
  await ended(up, 'sink'); // the host ended after its answer, and the dialer is told
  up.destroy();

  const before = host.count(/^source-done /);
  const down = await open({ mode: 'source', bytes: N });
  assert.is(await collect(down, N), want);
  await host.line(/^source-done \d+$/, 15_000, before + 1);
  down.destroy();
});

test('end of stream both ways: the host ending is seen by the dialer; a dialer that half-closes still gets its answer', async () => {
  if (!net) return skipped('no ziti network or SDK build');
  // The host ends: the dialed stream ends by itself (stock 0.13.3 never told, then freed the connection).
  const conn = await open({ mode: 'rpc' });
  const rpc = new RpcPeer(conn);
  assert.is(await rpc.request('bye', undefined, T), 'bye');
  assert.is(await within(rpc.whenClosed()), 'peer closed the connection');
  await ended(conn, 'rpc bye');
  await closed(conn, 'rpc bye');

  // The dialer half-closes after its bytes (as git does after its pack); the host answers after that.
  const N = 3 * 1024 * 1024;
  const data = pattern(N);
  const half = await open({ mode: 'drain' });
  (half as Duplex & { allowHalfOpen: boolean }).allowHalfOpen = true;
  let answer = '';
  half.on('data', (d) => (answer += d));
  await writeAll(half, data);
  half.end();
  await ended(half, 'drain');
  assert.equal(JSON.parse(answer), { bytes: N, sha256: createHash('sha256').update(data).digest('hex') });
  await closed(half, 'drain');

  // And a source that ends: everything, then the end, with nothing after it.
  const src = await open({ mode: 'source', bytes: 100_000, end: true });
  const got: Buffer[] = [];
  src.on('data', (d: Buffer) => got.push(d));
  await ended(src, 'source end');
  assert.ok(Buffer.concat(got).equals(pattern(100_000)));
});

test('many clients on one listener at once, each echoed its own bytes', async () => {
  if (!net) return skipped('no ziti network or SDK build');
  const N = 1024 * 1024;
  const one = async (i: number) => {
    const data = pattern(N + i * 4096);
    const conn = await open({ mode: 'echo' });
    const sum = collect(conn, data.length, 60_000);
    await writeAll(conn, data);
    const got = await sum;
    conn.end();
    await closed(conn, `echo ${i}`);
    return got === createHash('sha256').update(data).digest('hex');
  };
  assert.equal(await Promise.all([0, 1, 2, 3, 4, 5].map(one)), [true, true, true, true, true, true]);
});

/**
 * Writes pattern chunks until `limit` bytes or until the stream closes (the other side cut it off);
 * returns how many bytes the SDK took before that.
 */
async function floodUntilClosed(conn: Duplex, limit: number): Promise<number> {
  const chunk = pattern(256 * 1024);
  let written = 0;
  conn.on('error', () => {}); // the cut-off shows as 'close'; its words are the other side's to say
  const closedNow = new Promise<void>((r) => conn.once('close', () => r()));
  while (written < limit && !conn.destroyed) {
    const more = conn.write(chunk, (err) => {
      if (!err) written += chunk.length;
    });
    if (!more) await Promise.race([new Promise((r) => conn.once('drain', r)), closedNow]);
  }
  return written;
}

const MiB = 1024 * 1024;
const overflowWords = (peer: string) =>
  `closed the connection: ${peer} sent more than ${MAX_UNREAD_BYTES / MiB} MiB that ralph here had not read yet ` +
  '(its reader stalled, or the peer floods; the OpenZiti SDK cannot slow a sender down, so ralph ends the connection rather than hold it all)';

test('a client flooding a host that stopped reading is cut off at MAX_UNREAD_BYTES, in one line naming it; the host serves everyone else', async () => {
  if (!net) return skipped('no ziti network or SDK build');
  // A connection already in use on the same listener, and the host's stderr so far.
  const rpc = new RpcPeer(await open({ mode: 'rpc' }));
  assert.equal(await rpc.request('echo', { before: true }, T), { before: true });
  const stderrBefore = host.stderr.length;
  const stalls = host.count(/^closed stall /);

  const flood = await open({ mode: 'stall' });
  const limit = 4 * MAX_UNREAD_BYTES;
  const written = await within(floodUntilClosed(flood, limit), 120_000);
  // The host ended the connection with the bound's words, naming the dialer's identity.
  const why = (await host.line(/^closed stall /, 15_000, stalls + 1)).slice('closed stall '.length);
  assert.is(why, `ziti:${SERVICE}: ${overflowWords('client identity "client"')}`);
  // The flooder was stopped: it got only the bound and what was in flight past it, not all it had.
  assert.ok(written > MAX_UNREAD_BYTES && written < 2 * MAX_UNREAD_BYTES, `${written / MiB} MiB written before the cut-off`);
  // One warning line in the host's log, no stack trace; the host is still up.
  assert.is(host.stderr.slice(stderrBefore).replace(/^\S+ /, ''), `warn ziti:${SERVICE}: ${overflowWords('client identity "client"')}\n`);
  assert.is(host.child.exitCode, null);

  // Everyone else is served: the connection that was open all along, and a new one.
  assert.equal(await rpc.request('echo', { after: true }, T), { after: true });
  rpc.close('done');
  const data = pattern(2 * MiB);
  const echo = await open({ mode: 'echo' });
  const sum = collect(echo, data.length, 60_000);
  await writeAll(echo, data);
  assert.is(await sum, createHash('sha256').update(data).digest('hex'));
  echo.destroy();
});

test('a host flooding a dialer that stopped reading is cut off at MAX_UNREAD_BYTES too, with the error on the dialed stream', async () => {
  if (!net) return skipped('no ziti network or SDK build');
  const sources = host.count(/^closed source /);
  const conn = await open({ mode: 'source', bytes: 2 * MAX_UNREAD_BYTES });
  // Never read: wait for the stream's error.
  const err = await within(new Promise<Error>((resolve) => conn.once('error', resolve)), 120_000);
  assert.is(err.message, `ziti:${SERVICE}: ${overflowWords(`the daemon hosting ${SERVICE}`)}`);
  // Bounded: the bound plus the one chunk that crossed it (the SDK hands over 16 KiB at a time).
  assert.ok(conn.readableLength <= MAX_UNREAD_BYTES + 64 * 1024, `${conn.readableLength} bytes unread`);
  await closed(conn, 'flooded dialer');
  // The host's source loop saw its connection end instead of waiting for a drain forever.
  await host.line(/^closed source /, 15_000, sources + 1);
  const rpc = new RpcPeer(await open({ mode: 'rpc' }));
  assert.equal(await rpc.request('echo', { still: 'here' }, T), { still: 'here' });
  rpc.close('done');
});

test('refused identities and services: one line each, at once', async () => {
  if (!net) return skipped('no ziti network or SDK build');
  const ids = net.identities;
  // Dials get a 60 s timeout of their own: "at once" is then far below anything a timer would give
  // (a refusal is the controller's answer, well under a second), and the words say which refusal it is.
  const cases: Array<[string[], string, RegExp]> = [
    // no policy at all for the service
    [['dial', SERVICE, '60000'], ids.intruder, new RegExp(`^ziti:${SERVICE}: identity ${ids.intruder} may not dial service ${SERVICE} \\(no Dial policy grants it, or there is no such service\\)$`)],
    // Bind but not Dial
    [['dial', SERVICE, '60000'], ids.daemon, new RegExp(`^ziti:${SERVICE}: identity ${ids.daemon} may not dial service ${SERVICE} `)],
    // Dial but not Bind
    [['listen', SERVICE], ids.client, new RegExp(`^ziti:${SERVICE}: identity ${ids.client} may not host service ${SERVICE} \\(no Bind policy grants it`)],
    // may dial, nobody hosts
    [['dial', EMPTY, '60000'], ids.client, new RegExp(`^cannot connect to ziti:${EMPTY}: no daemon is hosting ${EMPTY} \\(nothing has bound it`)],
  ];
  for (const [args, identity, re] of cases) {
    const r = await attempt(args, identity);
    assert.is(r.ok, false, `${args.join(' ')} as ${identity}`);
    assert.match(r.error!, re);
    assert.not.match(r.error!, /\n/);
    // Far off on purpose: this only tells an answer from a timeout (60 s) or a hang (the 30 s line wait).
    assert.ok(r.ms < 20_000, `${args.join(' ')}: ${r.ms} ms`);
    assert.is(r.stderr, '', 'the SDK itself says nothing on stderr');
  }
});

test('an unreachable controller is a clear error at once, dialing and hosting', async () => {
  if (!net) return skipped('no ziti network or SDK build');
  const identity = JSON.parse(readFileSync(net.identities.client, 'utf8'));
  identity.ztAPI = 'https://127.0.0.1:9/edge/client/v1';
  const file = join(t.home, 'lost.json');
  writeFileSync(file, JSON.stringify(identity), { mode: 0o600 });
  // The dial's own timeout is 60 s: the exact words say the controller could not be reached (the
  // cause), and the far-off bound only tells that from a timeout or a hang (the 30 s line wait).
  for (const args of [['dial', SERVICE, '60000'], ['listen', SERVICE]]) {
    const r = await attempt(args, file);
    assert.is(r.ok, false);
    assert.is(r.error, `ziti:${SERVICE}: cannot reach the OpenZiti controller https://127.0.0.1:9 named by identity ${file}`);
    assert.ok(r.ms < 20_000, `${r.ms} ms`);
  }
});

async function dialError(opts: object): Promise<Error> {
  const started = Date.now();
  try {
    const c = await dial(`ziti:${SERVICE}`, { ziti: opts, timeoutMs: 60_000 });
    c.destroy();
  } catch (err) {
    // Far below the dial's own 60 s timeout: the error is the identity file's, not a timer's (the
    // callers assert its words).
    assert.ok(Date.now() - started < 20_000, `fails at once (${Date.now() - started} ms)`);
    assert.not.match((err as Error).message, /\n/);
    return err as Error;
  }
  throw new Error('dial should have failed');
}

test('identity files: missing, not one, or a second identity in this process: one line naming it', async () => {
  if (!net) return skipped('no ziti network or SDK build');
  const dir = join(t.home, 'bad');
  mkdirSync(dir);
  const missing = join(dir, 'missing.json');
  let err = await dialError({ backend: 'sdk', identityFile: missing });
  assert.instance(err, ZitiError);
  assert.is(err.message, `ziti identity ${missing}: no such file`);
  err = await dialError({ backend: 'sdk' });
  assert.match(err.message, /no OpenZiti identity file given: pass --ziti-identity FILE or set RALPH_ZITI_IDENTITY/);
  const jwt = join(dir, 'token.jwt');
  writeFileSync(jwt, 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl\n');
  err = await dialError({ backend: 'sdk', identityFile: jwt });
  assert.match(err.message, /is an enrollment token \(JWT\), not an enrolled identity/);

  // This process signed in as `client` in the tests above: the SDK holds one identity per process.
  err = await dialError({ backend: 'sdk', identityFile: net.identities.daemon });
  assert.is(
    err.message,
    `ziti:${SERVICE}: this process already uses OpenZiti identity ${net.identities.client}; the Node SDK allows one identity per process (asked for ${net.identities.daemon})`,
  );
  // A dial that fails is a DialError (the CLI words it for the remote).
  try {
    await dial(`ziti:${EMPTY}`, { ziti: client, timeoutMs: 5000 });
    assert.unreachable('nobody hosts it');
  } catch (e) {
    assert.instance(e, DialError);
  }
});

test('auto takes only a build with ralph\'s fixes: a stock SDK is refused in one line saying what to run', async () => {
  if (!net) return skipped('no ziti network or SDK build');
  const ours = await attempt(['choice'], net.identities.client, { RALPH_ZITI_BACKEND: 'auto' });
  assert.is(ours.use, true, JSON.stringify(ours));
  const hasDefault = await attempt(['dial', SERVICE], net.identities.client, { RALPH_ZITI_BACKEND: 'auto', RALPH_ZITI_PROXY_DIR: join(t.home, 'zp'), RALPH_ZITI_PROXY_IDLE_MS: '500' });
  assert.is(hasDefault.ok, true, JSON.stringify(hasDefault));
  assert.is(hasDefault.stderr, '');

  // A stock package: the same files without ralph's build manifest (and without ralph's binary).
  const stock = join(t.home, 'node_modules', '@openziti', 'ziti-sdk-nodejs');
  cpSync(cachedBuildDir(), stock, { recursive: true });
  rmSync(join(stock, 'ralph-build.json'));
  rmSync(join(stock, 'build'), { recursive: true });
  const refused = await attempt(['choice'], net.identities.client, { RALPH_ZITI_SDK_MODULE: stock });
  assert.is(refused.use, false);
  const why = `the OpenZiti Node SDK at ${stock} is a stock @openziti/ziti-sdk-nodejs build, which ralph does not use (it crashes at the end of a connection and hides why a dial failed): run ${join(ROOT, 'install', 'build-ziti-sdk.sh')} (about a minute) for one with ralph's fixes`;
  assert.is(refused.refused, why);
  // auto goes on over the tunneler, and says so once; sdk refuses.
  const auto = await attempt(['dial', SERVICE], net.identities.client, { RALPH_ZITI_BACKEND: 'auto', RALPH_ZITI_SDK_MODULE: stock, RALPH_ZITI_PROXY_DIR: join(t.home, 'zp'), RALPH_ZITI_PROXY_IDLE_MS: '500' });
  assert.is(auto.ok, true, JSON.stringify(auto));
  assert.is(auto.stderr, `ralph: ${why}; using the ziti CLI tunneler instead\n`);
  const sdk = await attempt(['dial', SERVICE], net.identities.client, { RALPH_ZITI_SDK_MODULE: stock });
  assert.is(sdk.error, `ziti:${SERVICE}: ${why}; or use the ziti CLI tunneler (--ziti-backend tunnel, or RALPH_ZITI_BACKEND=tunnel)`);

  // A build made with other fixes (an older ralph's): refused too, naming both.
  const other = join(t.home, 'other-build');
  mkdirSync(other);
  writeFileSync(join(other, 'ralph-build.json'), '{}');
  writeFileSync(join(other, 'package.json'), '{"name":"@openziti/ziti-sdk-nodejs","main":"index.js"}');
  writeFileSync(join(other, 'index.js'), "exports.ralph_fixes = '0.13.3+ralph.000000000000';\n");
  const older = await attempt(['choice'], net.identities.client, { RALPH_ZITI_SDK_MODULE: other });
  assert.match(older.refused!, new RegExp(`^the OpenZiti Node SDK at ${other} carries fixes 0\\.13\\.3\\+ralph\\.000000000000, this ralph needs 0\\.13\\.3\\+ralph\\.[0-9a-f]{12}: run `));

  // Nothing built at all: auto quietly takes the tunneler; sdk says what to run.
  const nothing = { RALPH_ZITI_CACHE: join(t.home, 'empty-cache'), RALPH_ZITI_SDK_MODULE: '' };
  const none = await attempt(['dial', SERVICE], net.identities.client, nothing);
  assert.match(none.error!, new RegExp(`^ziti:${SERVICE}: the OpenZiti Node SDK is not built here: run \\S+build-ziti-sdk\\.sh \\(about a minute\\); or use the ziti CLI tunneler`));
  const quiet = await attempt(['choice'], net.identities.client, nothing);
  assert.equal([quiet.use, quiet.refused], [false, undefined]);
});

test.run();
