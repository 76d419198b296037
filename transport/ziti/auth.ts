// Proof of identity at the start of every ziti connection, end to end between ralph and ralph.
//
// Why: OpenZiti decides who may dial the service, but two local TCP ports sit outside its control:
// the client's `ziti tunnel proxy` listens on 0.0.0.0 (hard-coded), and the daemon's tunnel-host
// port 127.0.0.1:PORT is open to every local user of the box. A connection through either arrives
// with no identity of its own. So the host asks every connection to prove it holds the private key
// of an identity enrolled in the host's OpenZiti network before a single byte reaches the daemon:
//
//   host → dialer   `ralph-ziti-auth 1 <nonce>\n`              (32 random bytes, base64url)
//   dialer → host   `{"v":1,"chain":"<PEM>","sig":"<base64>"}\n`  (its id.cert; sig over PROOF_CONTEXT)
//   host → dialer   `ok\n`  or  `refused <reason>\n` and the host closes
//
// The signed text binds the nonce to the service name, so a proof made for one service is worth
// nothing at another. The chain must lead, signature by signature, to a certificate in the host's
// own `id.ca` bundle (the network's CAs, written at enrollment), and the leaf must be in date.
// A stranger who reaches either port gets a challenge and, without an enrolled key, a refusal.
// It does not tell one enrolled identity from another: the Dial policy does that for circuits
// that OpenZiti carries from end to end.

import { X509Certificate, createPrivateKey, randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';

const GREETING = 'ralph-ziti-auth 1 ';
/** Longest line either side accepts during the exchange (a chain of a few certificates fits). */
export const MAX_AUTH_LINE = 64 * 1024;
export const AUTH_TIMEOUT_MS = 10_000;

/** What was signed: the context, the service and the host's nonce. */
function proofContext(service: string, nonce: string): Buffer {
  return Buffer.from(`ralph-ziti-auth-v1\n${service}\n${nonce}`, 'utf8');
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

function pemOf(value: string): string {
  return value.replace(/^pem:/, '');
}

function certificates(pem: string): X509Certificate[] {
  return (pemOf(pem).match(PEM_CERT) ?? []).map((p) => new X509Certificate(p));
}

/** The parts of an enrolled identity file the exchange needs, read once per process and file. */
interface IdentityKeys {
  chain: string;
  key: KeyObject;
  trusted: X509Certificate[];
}

const keysByFile = new Map<string, IdentityKeys>();

export class AuthError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AuthError';
  }
}

function identityKeys(identityFile: string): IdentityKeys {
  const known = keysByFile.get(identityFile);
  if (known) return known;
  let id: { cert?: unknown; key?: unknown; ca?: unknown };
  try {
    id = (JSON.parse(readFileSync(identityFile, 'utf8')) as { id: typeof id }).id;
  } catch (err) {
    throw new AuthError(`ziti identity ${identityFile}: cannot read it: ${(err as Error).message}`);
  }
  const text = (v: unknown, part: string): string => {
    if (typeof v !== 'string' || v === '') throw new AuthError(`ziti identity ${identityFile}: no id.${part}`);
    return pemOf(v);
  };
  let keys: IdentityKeys;
  try {
    keys = { chain: text(id.cert, 'cert'), key: createPrivateKey(text(id.key, 'key')), trusted: certificates(text(id.ca, 'ca')) };
    if (certificates(keys.chain).length === 0) throw new Error('id.cert holds no certificate');
  } catch (err) {
    if (err instanceof AuthError) throw err;
    throw new AuthError(`ziti identity ${identityFile}: its key or certificates cannot be used: ${(err as Error).message}`);
  }
  keysByFile.set(identityFile, keys);
  return keys;
}

/** RSA and EC keys sign a SHA-256 digest; Ed25519/Ed448 sign the message itself. */
function digestFor(key: KeyObject): string | null {
  return key.asymmetricKeyType === 'ed25519' || key.asymmetricKeyType === 'ed448' ? null : 'sha256';
}

/**
 * Reads one line off the stream during the exchange; whatever follows it is put back for the next
 * reader. Rejects on end, error, an over-long line or the deadline. It reads with 'readable' and
 * read(), so that once its listener is gone the stream is as a fresh one: a later 'data' listener
 * makes it flow (a pause() here would leave every later reader needing a resume()).
 */
function readLine(stream: Duplex, deadline: number, what: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (fn: () => void) => {
      clearTimeout(timer);
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      stream.off('error', onError);
      fn();
    };
    const onReadable = () => {
      let chunk: Buffer | null;
      while ((chunk = stream.read() as Buffer | null) !== null) {
        const nl = chunk.indexOf(10);
        if (nl === -1) {
          size += chunk.length;
          chunks.push(chunk);
          if (size > MAX_AUTH_LINE) return done(() => reject(new AuthError(`${what} is longer than ${MAX_AUTH_LINE} bytes`)));
          continue;
        }
        chunks.push(chunk.subarray(0, nl));
        const rest = chunk.subarray(nl + 1);
        return done(() => {
          if (rest.length > 0) stream.unshift(rest);
          resolve(Buffer.concat(chunks).toString('utf8'));
        });
      }
    };
    const onEnd = () => done(() => reject(new AuthError(`the connection closed before the ${what}`)));
    const onError = (err: Error) => done(() => reject(err));
    const timer = setTimeout(() => done(() => reject(new AuthError(`no ${what} within ${timeoutMs} ms`))), Math.max(1, deadline - Date.now()));
    stream.on('readable', onReadable);
    stream.on('end', onEnd);
    stream.on('close', onEnd);
    stream.on('error', onError);
  });
}

/**
 * Dialer side: answers the host's challenge with the identity's certificate and signature, and
 * resolves once the host said ok. The stream is then positioned at the first byte of the channel.
 * Rejects with an AuthError carrying the host's reason when it refuses.
 */
export async function proveIdentity(stream: Duplex, service: string, identityFile: string, timeoutMs: number): Promise<void> {
  const keys = identityKeys(identityFile);
  const deadline = Date.now() + timeoutMs;
  const greeting = await readLine(stream, deadline, 'OpenZiti host greeting', timeoutMs);
  if (!greeting.startsWith(GREETING)) {
    throw new AuthError(`ziti:${service} did not greet as a ralph daemon does (got ${JSON.stringify(greeting.slice(0, 60))}): are both sides the same ralph version?`);
  }
  const nonce = greeting.slice(GREETING.length);
  const sig = sign(digestFor(keys.key), proofContext(service, nonce), keys.key).toString('base64');
  stream.write(JSON.stringify({ v: 1, chain: keys.chain, sig }) + '\n');
  const answer = await readLine(stream, deadline, 'answer to our proof of identity', timeoutMs);
  if (answer === 'ok') return;
  const reason = answer.startsWith('refused ') ? answer.slice('refused '.length) : JSON.stringify(answer.slice(0, 120));
  throw new AuthError(`ziti:${service} refused identity ${identityFile}: ${reason}`);
}

/** Host side: what the host checks proofs against — its own identity's CA bundle. */
export interface ProofChecker {
  service: string;
  trusted: X509Certificate[];
}

export function proofChecker(service: string, identityFile: string): ProofChecker {
  return { service, trusted: identityKeys(identityFile).trusted };
}

/** The subject CN of the proven leaf certificate: the OpenZiti identity's id. */
export type ProvenIdentity = { id: string };

/**
 * Host side: challenges a fresh connection and checks the answer. Resolves with the proven identity
 * (the stream positioned at the first byte of the channel); rejects with an AuthError saying why,
 * after telling the dialer — the caller closes the connection.
 */
export async function checkProof(stream: Duplex, checker: ProofChecker, timeoutMs = AUTH_TIMEOUT_MS): Promise<ProvenIdentity> {
  const nonce = randomBytes(32).toString('base64url');
  stream.write(`${GREETING}${nonce}\n`);
  const deadline = Date.now() + timeoutMs;
  let line: string;
  try {
    line = await readLine(stream, deadline, 'proof of identity', timeoutMs);
  } catch (err) {
    // Nothing to tell a peer that left or said nothing; a too-long line is told.
    if (err instanceof AuthError && /longer than/.test(err.message)) refuseWith(stream, err.message);
    throw err;
  }
  try {
    const proven = verifyProof(line, nonce, checker);
    stream.write('ok\n');
    return proven;
  } catch (err) {
    refuseWith(stream, (err as Error).message);
    throw err;
  }
}

function refuseWith(stream: Duplex, reason: string): void {
  if (!stream.destroyed && stream.writable) stream.write(`refused ${reason.replace(/\s+/g, ' ')}\n`);
}

function verifyProof(line: string, nonce: string, checker: ProofChecker): ProvenIdentity {
  let proof: { v?: unknown; chain?: unknown; sig?: unknown };
  try {
    proof = JSON.parse(line) as typeof proof;
  } catch {
    throw new AuthError('no proof of identity: the first line is not JSON (connect with ralph and an enrolled OpenZiti identity)');
  }
  if (typeof proof !== 'object' || proof === null || proof.v !== 1 || typeof proof.chain !== 'string' || typeof proof.sig !== 'string') {
    throw new AuthError('no proof of identity: expected {"v":1,"chain":…,"sig":…}');
  }
  let chain: X509Certificate[];
  try {
    chain = certificates(proof.chain);
  } catch {
    throw new AuthError('the certificate chain cannot be parsed');
  }
  const leaf = chain[0];
  if (!leaf) throw new AuthError('the proof holds no certificate');
  const now = Date.now();
  if (now < Date.parse(leaf.validFrom) || now > Date.parse(leaf.validTo)) {
    throw new AuthError(`the certificate is not valid now (valid ${leaf.validFrom} to ${leaf.validTo})`);
  }
  if (!chainsToTrusted(leaf, chain.slice(1), checker.trusted)) {
    throw new AuthError('the certificate was not issued by this OpenZiti network');
  }
  let ok = false;
  try {
    ok = verify(digestFor(leaf.publicKey), proofContext(checker.service, nonce), leaf.publicKey, Buffer.from(proof.sig, 'base64'));
  } catch {
    ok = false;
  }
  if (!ok) throw new AuthError('the signature does not match the certificate');
  return { id: /(?:^|\n)CN=([^\n]*)/.exec(leaf.subject)?.[1] ?? leaf.fingerprint256 };
}

/**
 * Does `cert` lead to one of the trusted certificates, each link checked by issuer name and
 * signature? Intermediates may come from the dialer or from the trusted bundle itself.
 */
function chainsToTrusted(cert: X509Certificate, intermediates: X509Certificate[], trusted: X509Certificate[]): boolean {
  const isTrusted = (c: X509Certificate) => trusted.some((t) => t.fingerprint256 === c.fingerprint256);
  const pool = [...intermediates, ...trusted];
  let current = cert;
  for (let depth = 0; depth < 8; depth++) {
    if (isTrusted(current)) return true;
    const issuer = pool.find((c) => c !== current && c.ca && current.checkIssued(c) && current.verify(c.publicKey));
    if (!issuer) return false;
    current = issuer;
  }
  return false;
}
