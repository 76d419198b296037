// OpenZiti transport: `ziti:<service>` addresses with an enrolled identity file.
// Two backends carry them: the Node SDK in-process ('sdk', ./sdk.ts) and the `ziti` CLI tunneler
// ('tunnel', ./tunnel.ts). 'auto' (the default) takes the SDK when it loads here, else the tunneler.
//
// Options, each with an environment fallback:
//   identity file   opts.identityFile  ?? $RALPH_ZITI_IDENTITY   (CLI: --ziti-identity FILE)
//   backend         opts.backend       ?? $RALPH_ZITI_BACKEND    ('sdk' | 'tunnel' | 'auto')
//   bind timeout    $RALPH_ZITI_TIMEOUT_MS (listen has no timeout option; dial uses its own)

import type { Duplex } from 'node:stream';
import type { Listener, ZitiOptions } from '../index.js';
import { ZitiError } from './errors.js';
import { identityFileFor, readIdentity, type ZitiIdentity } from './identity.js';

export { ZitiError } from './errors.js';
export { IDENTITY_ENV } from './identity.js';

export const BACKEND_ENV = 'RALPH_ZITI_BACKEND';
export const TIMEOUT_ENV = 'RALPH_ZITI_TIMEOUT_MS';
const DEFAULT_LISTEN_TIMEOUT_MS = 15_000;

type Backend = 'sdk' | 'tunnel';

function identityFor(service: string, opts: ZitiOptions): ZitiIdentity {
  return readIdentity(service, identityFileFor(service, opts.identityFile));
}

async function backendFor(service: string, opts: ZitiOptions): Promise<Backend> {
  const asked = opts.backend ?? (process.env[BACKEND_ENV] || 'auto');
  if (asked === 'sdk' || asked === 'tunnel') return asked;
  if (asked !== 'auto') {
    throw new ZitiError(`ziti:${service}: unknown OpenZiti backend ${JSON.stringify(asked)}: use sdk, tunnel or auto`, `ziti:${service}`);
  }
  const sdk = await import('./sdk.js');
  return sdk.sdkAvailable() ? 'sdk' : 'tunnel';
}

function listenTimeoutMs(): number {
  const v = Number(process.env[TIMEOUT_ENV]);
  return Number.isFinite(v) && v > 0 ? v : DEFAULT_LISTEN_TIMEOUT_MS;
}

/** Hosts `service` with the identity: a Listener producing one Duplex per client. */
export async function listenZiti(service: string, opts: ZitiOptions): Promise<Listener> {
  const identity = identityFor(service, opts);
  if ((await backendFor(service, opts)) === 'sdk') {
    const sdk = await import('./sdk.js');
    return sdk.listenSdk(service, identity, listenTimeoutMs());
  }
  const tunnel = await import('./tunnel.js');
  return tunnel.listenTunnel(service, { ...opts, identityFile: identity.file });
}

/** Dials `service` with the identity: a Duplex, or one clear error within `timeoutMs`. */
export async function dialZiti(service: string, opts: ZitiOptions, timeoutMs: number): Promise<Duplex> {
  const identity = identityFor(service, opts);
  if ((await backendFor(service, opts)) === 'sdk') {
    const sdk = await import('./sdk.js');
    return sdk.dialSdk(service, identity, timeoutMs);
  }
  const tunnel = await import('./tunnel.js');
  return tunnel.dialTunnel(service, { ...opts, identityFile: identity.file }, timeoutMs);
}

/**
 * Tells a connection that the other side is done. The SDK backend's dialed streams never learn
 * it by themselves (the Node SDK 0.13.3 does not report end-of-stream on dial): a protocol that
 * knows — a final reply, a goodbye message — calls this, and the stream ends ('end', then 'close').
 * For any other stream (unix, tcp, tunnel) it does nothing: those report their own end.
 */
export function markRemoteEnded(conn: Duplex): void {
  const c = conn as Duplex & { remoteEnded?: () => void };
  if (typeof c.remoteEnded === 'function') c.remoteEnded();
}
