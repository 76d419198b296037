// The daemon process itself: listening, hello, control methods that need no loop, bad input.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, copyFileSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
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
  // with the daemon's token: past it, every other check still holds
  const hello = (params: object) => JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'hello', params: { token: d.token, ...params } }) + '\n';
  const cases: Array<{ name: string; send: string | null; code: number; message: RegExp }> = [
    { name: 'silence', send: null, code: ErrorCodes.InvalidRequest, message: /no hello within 300 ms/ },
    { name: 'invalid JSON', send: '{"jsonrpc": nope\n', code: ErrorCodes.ParseError, message: /not valid JSON/ },
    { name: 'wrong method', send: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'daemon.info' }) + '\n', code: ErrorCodes.InvalidRequest, message: /must be hello/ },
    { name: 'wrong version', send: hello({ version: 99, channel: 'control' }), code: ErrorCodes.Refused, message: /version 99 is not supported/ },
    { name: 'unknown channel', send: hello({ version: PROTOCOL_VERSION, channel: 'shell' }), code: ErrorCodes.InvalidParams, message: /unknown channel "shell"/ },
    { name: 'loop channel without a loop', send: hello({ version: PROTOCOL_VERSION, channel: 'loop' }), code: ErrorCodes.InvalidParams, message: /loop must be/ },
    // A NUL in pushId used to reach git's environment, where spawn throws: the daemon died of it.
    { name: 'NUL in pushId', send: hello({ version: PROTOCOL_VERSION, channel: 'git', service: 'git-receive-pack', repo: 'x', pushId: 'p\u0000' }), code: ErrorCodes.InvalidParams, message: /^hello pushId must be 1 to 128 letters, digits, "-" or "_"$/ },
    { name: 'pushId with a space', send: hello({ version: PROTOCOL_VERSION, channel: 'git', service: 'git-receive-pack', repo: 'x', pushId: 'a b' }), code: ErrorCodes.InvalidParams, message: /pushId must be/ },
    { name: 'escape in repo', send: hello({ version: PROTOCOL_VERSION, channel: 'git', service: 'git-receive-pack', repo: 'x\u001b[2J' }), code: ErrorCodes.InvalidParams, message: /^hello repo must not contain control characters$/ },
    { name: 'newline in client', send: hello({ version: PROTOCOL_VERSION, channel: 'control', client: 'a\nb' }), code: ErrorCodes.InvalidParams, message: /^hello client must not contain control characters$/ },
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
  // After all of it, a good client is served, and nothing was made for the refused pushes.
  const peer = await d.control();
  const info: any = await peer.request('daemon.info', {}, { timeoutMs: 5000 });
  assert.is(info.protocol, PROTOCOL_VERSION);
  assert.not.ok(existsSync(join(t.home, 'repos', 'x.git')), 'no repo made for a refused hello');
  peer.close();
});

test('the tcp port is closed to strangers: no token or a wrong one gets one line naming the token file, checked before anything else; the unix socket needs none', async () => {
  const tokenFile = join(t.home, 'daemon.token');
  assert.is(d.tokenFile, tokenFile);
  assert.is(statSync(tokenFile).mode & 0o777, 0o600);
  assert.match(d.token, /^[0-9a-f]{64}$/);
  const hello = (params: object) => JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'hello', params: { version: PROTOCOL_VERSION, channel: 'control', ...params } }) + '\n';
  const needs = new RegExp(`^this daemon's tcp port needs its token: copy ${tokenFile} from the box and add the remote with --token-file FILE \\(or reach it over ssh or OpenZiti\\)$`);
  const wrong = new RegExp(`^the token does not match this daemon's \\(${tokenFile}\\): copy that file from the box again and add the remote with --token-file FILE$`);
  const cases: Array<{ name: string; send: string; message: RegExp }> = [
    { name: 'no token', send: hello({}), message: needs },
    { name: 'wrong token', send: hello({ token: 'f'.repeat(64) }), message: wrong },
    { name: 'the token with one digit changed', send: hello({ token: d.token.slice(0, -1) + (d.token.endsWith('0') ? '1' : '0') }), message: wrong },
    { name: 'a token that is not a string', send: hello({ token: 42 }), message: wrong },
    { name: 'no token and a wrong version: the token comes first', send: hello({ version: 99 }), message: needs },
    { name: 'no token, a git hello', send: hello({ channel: 'git', service: 'git-receive-pack', repo: 'app' }), message: needs },
  ];
  for (const c of cases) {
    const conn = await dial(d.tcp!);
    const got = answerThenClose(conn);
    conn.write(c.send);
    const { reply, closed } = await got;
    assert.is(reply?.error?.code, ErrorCodes.Refused, `${c.name}: ${JSON.stringify(reply)}`);
    assert.match(reply.error.message, c.message, c.name);
    assert.ok(closed, c.name);
  }
  await d.waitForLog(/tcp:\/\/127\.0\.0\.1:\d+ from 127\.0\.0\.1:\d+: refused: this daemon's tcp port needs its token/);
  // the right token is served, and the unix socket asks for none
  const over = await d.open({ channel: 'control' }, d.tcp!);
  assert.is(over.result.channel, 'control');
  over.stream.destroy();
  const local = await d.open({ channel: 'control' }, d.unix);
  assert.is(local.result.channel, 'control');
  local.stream.destroy();
});

test('ralph remote add --token-file: without it the daemon says what to do; a wrong or missing file is one line; the token is kept 0600 and never listed', async () => {
  const laptop = makeTempHome('ralph-dml');
  const env = laptop.env;
  try {
    const without = await ralph(['remote', 'add', 'box', '--address', d.tcp!], { env, cwd: laptop.home });
    assert.is(without.code, 1);
    assert.is(
      without.stderr,
      `ralph: remote box (${d.tcp}): the daemon refused: this daemon's tcp port needs its token: copy ${d.tokenFile} from the box and add the remote with --token-file FILE (or reach it over ssh or OpenZiti); nothing saved (--no-check adds it anyway)\n`,
    );
    const wrongFile = join(laptop.home, 'wrong.token');
    writeFileSync(wrongFile, 'a'.repeat(64) + '\n');
    const wrong = await ralph(['remote', 'add', 'box', '--address', d.tcp!, '--token-file', wrongFile], { env, cwd: laptop.home });
    assert.is(wrong.code, 1);
    assert.match(wrong.stderr, /^ralph: remote box \(\S+\): the daemon refused: the token does not match this daemon's \(\S+daemon\.token\): copy that file from the box again and add the remote with --token-file FILE; nothing saved/);
    const garbage = join(laptop.home, 'garbage.token');
    writeFileSync(garbage, 'not a token\n');
    for (const [file, re] of [
      [join(laptop.home, 'missing.token'), /^ralph: no token file at \S+missing\.token: copy \$RALPH_HOME\/daemon\.token from the box first\n$/],
      [garbage, /^ralph: \S+garbage\.token does not hold a daemon token/],
    ] as const) {
      const r = await ralph(['remote', 'add', 'box', '--address', d.tcp!, '--token-file', file], { env, cwd: laptop.home });
      assert.is(r.code, 1, r.stderr);
      assert.match(r.stderr, re);
      assert.is(r.stderr.trim().split('\n').length, 1);
    }
    assert.not.ok(existsSync(env.RALPH_CONFIG!), 'nothing saved');

    const copy = join(laptop.home, 'box.token');
    copyFileSync(d.tokenFile, copy);
    const ok = await ralph(['remote', 'add', 'box', '--address', d.tcp!, '--token-file', copy], { env, cwd: laptop.home });
    assert.is(ok.code, 0, ok.stderr);
    assert.is(statSync(env.RALPH_CONFIG!).mode & 0o777, 0o600);
    assert.is(JSON.parse(readFileSync(env.RALPH_CONFIG!, 'utf8')).remotes.box.token, d.token);
    const listed = await ralph(['remote', 'list', '--json'], { env });
    assert.equal(JSON.parse(listed.stdout), [{ name: 'box', address: d.tcp, token: '(set)' }]);
    assert.not.ok(listed.stdout.includes(d.token));
    const table = await ralph(['remote', 'list'], { env });
    assert.not.ok(table.stdout.includes(d.token));
    assert.match(table.stdout, /daemon token/);
    assert.is((await ralph(['remote', 'test', 'box'], { env })).code, 0);
  } finally {
    laptop.cleanup();
  }
});

test('the token file: made once and kept across restarts; one readable by others stops the daemon with one line', async () => {
  const other = makeTempHome('ralph-dmt');
  try {
    const d1 = await startDaemon(other);
    const first = d1.token;
    await d1.stop();
    const d2 = await startDaemon(other);
    assert.is(d2.token, first, 'the same token after a restart');
    await d2.stop();
    chmodSync(d2.tokenFile, 0o644);
    const r = await ralph(['daemon', '--home', other.home], { env: other.env, timeoutMs: 20_000 });
    assert.is(r.code, 1);
    assert.is(
      r.stderr,
      `ralph: ${d2.tokenFile} may be read by other users (mode 644): its token may be known; remove it for a new one (then give the new file to every laptop), or chmod 600 it\n`,
    );
    rmSync(d2.tokenFile);
    const d3 = await startDaemon(other);
    assert.is.not(d3.token, first, 'a new token once the old file is removed');
    assert.is(statSync(d3.tokenFile).mode & 0o777, 0o600);
    await d3.stop();
  } finally {
    other.cleanup();
  }
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
    assert.match(r.stderr, /tcp is not encrypted, so anyone on the way could read the daemon's token/);
    assert.match(r.stderr, /reach the daemon over ssh \(ralph remote add NAME --ssh HOST\) or OpenZiti/);
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
