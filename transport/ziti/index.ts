// OpenZiti transport. Filled in by the OpenZiti issue; until then a ziti address is a clear error.

import type { Duplex } from 'node:stream';
import type { Listener, ZitiOptions } from '../index.js';

export async function listenZiti(service: string, _opts: ZitiOptions): Promise<Listener> {
  throw new Error(`ziti:${service}: the OpenZiti transport is not built yet`);
}

export async function dialZiti(service: string, _opts: ZitiOptions, _timeoutMs: number): Promise<Duplex> {
  throw new Error(`ziti:${service}: the OpenZiti transport is not built yet`);
}
