// Where ralph keeps what it builds for OpenZiti (the `ziti` CLI, the Node SDK): shared by the tunnel
// backend and the SDK backend, so neither imports the other.

import { homedir } from 'node:os';
import { join } from 'node:path';

/** Where install/get-ziti.sh and install/build-ziti-sdk.sh keep what they build. */
export function zitiCacheDir(): string {
  return process.env.RALPH_ZITI_CACHE || join(homedir(), '.cache', 'ralph-ziti');
}
