// PLACEHOLDER: backend 2 (the `ziti` CLI tunneler) is being written by another engineer, who replaces
// this file. It exists only so the dispatcher in ./index.ts compiles and says something clear.

import type { Duplex } from 'node:stream';
import type { Listener, ZitiOptions } from '../index.js';
import { ZitiError } from './errors.js';

export async function listenTunnel(service: string, _opts: ZitiOptions): Promise<Listener> {
  throw new ZitiError(`ziti:${service}: the tunnel backend is not built yet (use the sdk backend)`, `ziti:${service}`);
}

export async function dialTunnel(service: string, _opts: ZitiOptions, _timeoutMs: number): Promise<Duplex> {
  throw new ZitiError(`ziti:${service}: the tunnel backend is not built yet (use the sdk backend)`, `ziti:${service}`);
}
