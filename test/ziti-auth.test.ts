// The proof of identity that opens every ziti connection (transport/ziti/auth.ts), over real unix
// sockets with real keys and certificates from openssl: who gets through, and what the others hear.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { AuthError, checkProof, proofChecker, proveIdentity } from '../transport/ziti/auth.js';
import { makeTempHome } from './helpers/env.js';
import { makePki } from './helpers/pki.js';

const SERVICE = 'ralph-auth';
const t = makeTempHome('ralph-zauth');
const network = makePki(join(t.home, 'network'), 'network');
const stranger = makePki(join(t.home, 'stranger'), 'stranger');

function identityFile(name: string, issued: { key: string; cert: string }, ca: string): string {
  const file = join(t.home, `${name}.json`);
  writeFileSync(file, JSON.stringify({ ztAPI: 'https://127.0.0.1:1/edge/client/v1', id: { key: `pem:${issued.key}`, cert: `pem:${issued.cert}`, ca: `pem:${ca}` } }), { mode: 0o600 });
  return file;
}

const daemonId = identityFile('daemon', network.issue('daemon'), network.ca);
const clientId = identityFile('client', network.issue('client'), network.ca);
// Same CA bundle, but a certificate from a CA of its own making: not of this network.
const forgedId = identityFile('forged', stranger.issue('client'), network.ca);

/** A host on a unix socket that checks every connection's proof and reports the outcome. */
async function host(): Promise<{ path: string; outcomes: Array<{ ok: boolean; id?: string; why?: string; after?: string }>; close(): Promise<void> }> {
  const path = join(t.home, `host-${Math.random().toString(36).slice(2)}.sock`);
  const outcomes: Array<{ ok: boolean; id?: string; why?: string; after?: string }> = [];
  const checker = proofChecker(SERVICE, daemonId);
  const server = net.createServer((conn) => {
    checkProof(conn, checker, 2000).then(
      (proven) => {
        // The first bytes after the exchange belong to the channel, whole.
        conn.once('data', (d: Buffer) => {
          outcomes.push({ ok: true, id: proven.id, after: d.toString() });
          conn.end('channel-reply\n');
        });
      },
      (err: Error) => {
        outcomes.push({ ok: false, why: err.message });
        conn.end();
      },
    );
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { path, outcomes, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

function connect(path: string): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s = net.connect(path, () => resolve(s));
    s.once('error', reject);
  });
}

/** Everything the other side sends until it closes (bounded: a hang fails the test, with what came). */
function readAll(s: Duplex, ms = 5000): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const timer = setTimeout(() => resolve(`${text}[still open after ${ms} ms]`), ms);
    s.once('close', () => clearTimeout(timer));
    s.setEncoding('utf8');
    s.on('data', (d: string) => (text += d));
    s.once('end', () => resolve(text));
    s.once('close', () => resolve(text));
  });
}

test('an enrolled identity of the network proves itself; the channel starts right after', async () => {
  const h = await host();
  const s = await connect(h.path);
  await proveIdentity(s, SERVICE, clientId, 2000);
  s.write('hello-after-proof\n');
  assert.is(await readAll(s), 'channel-reply\n');
  assert.equal(h.outcomes, [{ ok: true, id: 'client', after: 'hello-after-proof\n' }]);
  await h.close();
});

test('a certificate from another CA is refused, and the dialer is told why', async () => {
  const h = await host();
  const s = await connect(h.path);
  const err = await proveIdentity(s, SERVICE, forgedId, 2000).catch((e: Error) => e);
  assert.instance(err, AuthError);
  assert.is((err as Error).message, `ziti:${SERVICE} refused identity ${forgedId}: the certificate was not issued by this OpenZiti network`);
  assert.equal(h.outcomes, [{ ok: false, why: 'the certificate was not issued by this OpenZiti network' }]);
  s.destroy();
  await h.close();
});

test('a proof made for another service, or a stolen certificate without its key, is refused', async () => {
  const h = await host();
  // Signed for another service name: the signature covers it.
  const s1 = await connect(h.path);
  const wrong = proveIdentity(s1, 'other-service', clientId, 2000);
  const err1 = await wrong.catch((e: Error) => e);
  assert.match((err1 as Error).message, /refused identity .*: the signature does not match the certificate$/);
  // The client's real certificate, signed with a key of the network that is not its own.
  const mixed = identityFile('mixed', { key: network.issue('other').key, cert: network.issue('client2').cert }, network.ca);
  const s2 = await connect(h.path);
  const err2 = await proveIdentity(s2, SERVICE, mixed, 2000).catch((e: Error) => e);
  assert.match((err2 as Error).message, /the signature does not match the certificate$/);
  assert.is(h.outcomes.length, 2);
  assert.ok(h.outcomes.every((o) => !o.ok));
  s1.destroy();
  s2.destroy();
  await h.close();
});

test('a stranger speaking something else gets one refusal line and nothing of the channel', async () => {
  const h = await host();
  const s = await connect(h.path);
  const got = readAll(s);
  s.write('{"jsonrpc":"2.0","id":0,"method":"hello","params":{"version":1,"channel":"control"}}\n');
  const text = await got;
  const lines = text.split('\n').filter(Boolean);
  assert.is(lines.length, 2);
  assert.match(lines[0]!, /^ralph-ziti-auth 1 [A-Za-z0-9_-]{43}$/);
  assert.is(lines[1], 'refused no proof of identity: expected {"v":1,"chain":…,"sig":…}');
  assert.is(h.outcomes.length, 1);
  assert.is(h.outcomes[0]!.ok, false);
  await h.close();
});

test('a dialer that says nothing is dropped at the deadline; an over-long line is refused', async () => {
  const h = await host();
  const silent = await connect(h.path);
  const silentText = readAll(silent);
  const long = await connect(h.path);
  const longText = readAll(long);
  long.write('x'.repeat(70 * 1024));
  const [a, b] = await Promise.all([silentText, longText]);
  assert.is(a.split('\n').filter(Boolean).length, 1); // the greeting, then the close
  assert.match(b, /\nrefused proof of identity is longer than 65536 bytes\n$/);
  assert.equal(
    h.outcomes.map((o) => o.why).sort(),
    ['no proof of identity within 2000 ms', 'proof of identity is longer than 65536 bytes'],
  );
  await h.close();
});

test('a host that does not greet: the dialer gives up at its deadline with a clear error', async () => {
  const path = join(t.home, 'mute.sock');
  const server = net.createServer(() => {});
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const s = await connect(path);
  const err = await proveIdentity(s, SERVICE, clientId, 300).catch((e: Error) => e);
  assert.is((err as Error).message, 'no OpenZiti host greeting within 300 ms');
  s.destroy();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

test.after(() => t.cleanup());
test.run();
