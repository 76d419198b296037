// The daemon's token: what a connection to its tcp listener must present in its hello. tcp has no
// identity of its own (anyone who reaches the port could run commands as the daemon's user), so the
// daemon keeps a random secret in $RALPH_HOME/daemon.token (0600, made on first start) and the
// laptop keeps a copy in its config (0600). The unix socket (file permissions), ssh (host and user
// keys) and OpenZiti (identities) decide who gets in by themselves and need none.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { linkSync, lstatSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { parseToken, TokenError } from '../store/token.js';

const TOKEN_BYTES = 32;

/**
 * The daemon's token, made on first start: random, written to a private file beside it and linked
 * into place, so another process never reads a half-written one. A file that others may read is
 * refused: its secret may be out.
 */
export function loadOrCreateToken(file: string): string {
  const tmp = `${file}.${process.pid}.tmp`;
  const gone = (path: string) => {
    try {
      unlinkSync(path);
    } catch {
      /* not there */
    }
  };
  gone(tmp);
  try {
    writeFileSync(tmp, randomBytes(TOKEN_BYTES).toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
    linkSync(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new TokenError(`cannot create ${file}: ${(err as Error).message}`);
  } finally {
    gone(tmp);
  }
  let st;
  try {
    st = lstatSync(file);
  } catch (err) {
    throw new TokenError(`cannot read ${file}: ${(err as Error).message}`);
  }
  if (!st.isFile()) throw new TokenError(`${file} is not a plain file: remove it, and the daemon makes a new token`);
  if ((st.mode & 0o077) !== 0) {
    throw new TokenError(
      `${file} may be read by other users (mode ${(st.mode & 0o777).toString(8)}): its token may be known; remove it for a new one (then give the new file to every laptop), or chmod 600 it`,
    );
  }
  return parseToken(readFileSync(file, 'utf8'), file);
}

/** Does `given` equal the token? In constant time: both are hashed to the same length first. */
export function tokenMatches(token: string, given: string): boolean {
  const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();
  return timingSafeEqual(digest(token), digest(given));
}
