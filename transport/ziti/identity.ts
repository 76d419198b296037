// The enrolled OpenZiti identity file: found (flag or environment), read and checked at the edge,
// so a wrong path or a wrong kind of file is one clear line, not an SDK status code or a hang.

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ZitiError } from './errors.js';

/** Environment variable naming the identity file when no --ziti-identity is given. */
export const IDENTITY_ENV = 'RALPH_ZITI_IDENTITY';

export interface ZitiIdentity {
  /** Absolute path of the identity JSON file. */
  file: string;
  /** The controller's edge API URL recorded at enrollment. */
  ztAPI: string;
}

/** The identity file to use: the option, else $RALPH_ZITI_IDENTITY, else a clear error. */
export function identityFileFor(service: string, given: string | undefined): string {
  const file = given || process.env[IDENTITY_ENV];
  if (!file) {
    throw new ZitiError(
      `ziti:${service}: no OpenZiti identity file given: pass --ziti-identity FILE or set ${IDENTITY_ENV}`,
      `ziti:${service}`,
    );
  }
  return resolve(file);
}

/**
 * Reads and checks an enrolled identity: `{ ztAPI, id: { cert, key, ca } }` as written by
 * `ziti edge enroll`. Throws a ZitiError naming the file for every way it can be wrong.
 */
export function readIdentity(service: string, file: string): ZitiIdentity {
  const address = `ziti:${service}`;
  const fail = (why: string): never => {
    throw new ZitiError(`ziti identity ${file}: ${why}`, address);
  };
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') fail('no such file');
    if (code === 'EACCES' || code === 'EPERM') fail('cannot read it: permission denied');
    if (code === 'EISDIR') fail('is a directory, not an identity file');
    fail(`cannot read it: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    if (/^\s*[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*\s*$/.test(text)) {
      fail(`is an enrollment token (JWT), not an enrolled identity: enroll it first with \`ziti edge enroll ${file}\``);
    }
    fail('is not JSON: expected an enrolled identity written by `ziti edge enroll`');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    fail('is not an enrolled OpenZiti identity (expected a JSON object with ztAPI and id)');
  }
  const v = value as { ztAPI?: unknown; id?: unknown };
  if (typeof v.ztAPI !== 'string' || v.ztAPI === '') {
    fail('is not an enrolled OpenZiti identity: no ztAPI (controller URL)');
  }
  const id = v.id as Record<string, unknown> | undefined;
  if (typeof id !== 'object' || id === null) fail('is not an enrolled OpenZiti identity: no id section');
  for (const part of ['cert', 'key', 'ca'] as const) {
    if (typeof id![part] !== 'string' || id![part] === '') {
      fail(`is not an enrolled OpenZiti identity: no id.${part}`);
    }
  }
  return { file, ztAPI: v.ztAPI as string };
}

/** The controller an identity file names, for messages ('its controller' when it cannot be read). */
export function controllerOf(identityFile: string): string {
  try {
    const v = JSON.parse(readFileSync(identityFile, 'utf8')) as { ztAPI?: unknown };
    return typeof v.ztAPI === 'string' ? controllerUrl(v.ztAPI) : 'its controller';
  } catch {
    return 'its controller';
  }
}

/** The controller's address without the edge API path ziti records in ztAPI. */
export function controllerUrl(ztAPI: string): string {
  return ztAPI.replace(/\/edge\/client\/v1\/?$/, '');
}
