// Per-user directories for sockets that only this user may reach (the OpenZiti proxy's lease
// socket, ssh's shared connections): made 0700, tightened if others may enter, and refused if the
// path is not a directory of this user's (a link, or someone else's directory in /tmp).

import { chmodSync, lstatSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * `$<envVar>`, else `$XDG_RUNTIME_DIR/<name>`, else `<tmp>/<name>-<uid>` (tmp: `$TMPDIR`, or the
 * given directory — ssh's socket paths must stay short, and macOS's `$TMPDIR` is long); made private.
 * `what` says in an error what the directory is for.
 */
export function privateRuntimeDir(name: string, envVar: string, what: string, env: NodeJS.ProcessEnv = process.env, tmp = tmpdir()): string {
  const uid = process.getuid?.() ?? 0;
  const dir = env[envVar] || (env.XDG_RUNTIME_DIR ? join(env.XDG_RUNTIME_DIR, name) : join(tmp, `${name}-${uid}`));
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== uid) {
    throw new Error(`${dir} (for ${what}) is not a directory of this user's: remove it, or set ${envVar}`);
  }
  if ((st.mode & 0o077) !== 0) chmodSync(dir, 0o700);
  return dir;
}
