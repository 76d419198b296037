// OpenZiti transport: `ziti:<service>` addresses with an enrolled identity file.
// Two backends carry them: the Node SDK in-process ('sdk', ./sdk.ts) and the `ziti` CLI tunneler
// ('tunnel', ./tunnel.ts). 'auto' (the default) takes the SDK when a build with ralph's fixes is
// here (install/build-ziti-sdk.sh), else the tunneler; a stock SDK is passed over with one line.
// Either way, every connection opens with a proof of identity (./auth.ts): the host hands out only
// connections whose dialer proved an enrolled key of its network, and dial returns only once the
// host has accepted ours.
//
// Options, each with an environment fallback:
//   identity file   opts.identityFile  ?? $RALPH_ZITI_IDENTITY   (CLI: --ziti-identity FILE)
//   backend         opts.backend       ?? $RALPH_ZITI_BACKEND    ('sdk' | 'tunnel' | 'auto')
//   bind timeout    $RALPH_ZITI_TIMEOUT_MS (listen has no timeout option; dial uses its own)

import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { DialError, endAndLinger, type Listener, type ZitiOptions } from '../index.js';
import { AuthError, checkProof, proofChecker, proveIdentity, type ProofChecker } from './auth.js';
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
  if (asked === 'tunnel') return asked;
  if (asked === 'sdk') {
    // Asked for by name: a missing or refused SDK is the error, in one line.
    const sdk = await import('./sdk.js');
    try {
      sdk.loadSdk();
    } catch (err) {
      throw new ZitiError(`ziti:${service}: ${(err as Error).message}; or use the ziti CLI tunneler (--ziti-backend tunnel, or RALPH_ZITI_BACKEND=tunnel)`, `ziti:${service}`);
    }
    return asked;
  }
  if (asked !== 'auto') {
    throw new ZitiError(`ziti:${service}: unknown OpenZiti backend ${JSON.stringify(asked)}: use sdk, tunnel or auto`, `ziti:${service}`);
  }
  const sdk = await import('./sdk.js');
  const choice = sdk.sdkChoice();
  if (choice.use) return 'sdk';
  if (choice.refused && !refusalSaid) {
    refusalSaid = true;
    (opts.warn ?? ((m: string) => process.stderr.write(`ralph: ${m}\n`)))(`${choice.refused}; using the ziti CLI tunneler instead`);
  }
  return 'tunnel';
}

/** Why `auto` passed over an SDK is said once per process. */
let refusalSaid = false;

function listenTimeoutMs(): number {
  const v = Number(process.env[TIMEOUT_ENV]);
  return Number.isFinite(v) && v > 0 ? v : DEFAULT_LISTEN_TIMEOUT_MS;
}

/** Hosts `service` with the identity: a Listener producing one Duplex per client that proved itself. */
export async function listenZiti(service: string, opts: ZitiOptions): Promise<Listener> {
  const identity = identityFor(service, opts);
  const checker = checkerFor(service, identity.file);
  const warn = opts.warn ?? warnOnStderr(`ziti:${service}`);
  let inner: Listener;
  if ((await backendFor(service, opts)) === 'sdk') {
    const sdk = await import('./sdk.js');
    inner = await sdk.listenSdk(service, identity, listenTimeoutMs(), warn);
  } else {
    const tunnel = await import('./tunnel.js');
    inner = await tunnel.listenTunnel(service, { ...opts, identityFile: identity.file });
  }
  return new ProvingListener(inner, checker, warn);
}

/**
 * Dials `service` with the identity: a Duplex on which the host has accepted our proof of identity
 * (./auth.ts), or one clear error within `timeoutMs`.
 */
export async function dialZiti(service: string, opts: ZitiOptions, timeoutMs: number): Promise<Duplex> {
  const identity = identityFor(service, opts);
  const deadline = Date.now() + timeoutMs;
  let conn: Duplex;
  if ((await backendFor(service, opts)) === 'sdk') {
    const sdk = await import('./sdk.js');
    conn = await sdk.dialSdk(service, identity, timeoutMs);
  } else {
    const tunnel = await import('./tunnel.js');
    conn = await tunnel.dialTunnel(service, { ...opts, identityFile: identity.file }, timeoutMs);
  }
  try {
    await proveIdentity(conn, service, identity.file, Math.max(1, deadline - Date.now()));
  } catch (err) {
    // Through the shared proxy, a connection the overlay could not carry just ends: ask it why.
    const early = (conn as { explainEarlyEnd?: () => Promise<string | undefined> }).explainEarlyEnd;
    const why = err instanceof AuthError && /closed before/.test(err.message) && early ? await early() : undefined;
    conn.destroy();
    if (why) throw new DialError(`cannot connect to ziti:${service}: ${why}`, `ziti:${service}`);
    if (err instanceof DialError) throw err;
    if (err instanceof AuthError && /^no .* within \d+ ms$/.test(err.message)) {
      throw new DialError(`ziti:${service}: no connection within ${timeoutMs} ms (service ${service}, identity ${identity.file})`, `ziti:${service}`);
    }
    if (err instanceof AuthError && /closed before/.test(err.message)) {
      throw new DialError(`cannot connect to ziti:${service}: the connection closed before the daemon greeted (is \`ralph daemon --ziti-service ${service}\` running there?)`, `ziti:${service}`);
    }
    throw new DialError(`cannot connect to ziti:${service}: ${(err as Error).message}`, `ziti:${service}`);
  }
  return conn;
}

function checkerFor(service: string, identityFile: string): ProofChecker {
  try {
    return proofChecker(service, identityFile);
  } catch (err) {
    throw new ZitiError((err as Error).message, `ziti:${service}`);
  }
}

function warnOnStderr(address: string): (message: string) => void {
  return (m) => process.stderr.write(`${new Date().toISOString()} warn ${address}: ${m}\n`);
}

/** Hands out only connections whose dialer proved an enrolled identity of this network. */
class ProvingListener extends EventEmitter implements Listener {
  readonly address: string;

  constructor(
    private readonly inner: Listener,
    checker: ProofChecker,
    warn: (message: string) => void,
  ) {
    super();
    this.address = inner.address;
    inner.onConnection((conn) => {
      conn.on('error', () => conn.destroy());
      checkProof(conn, checker).then(
        () => {
          if (!conn.destroyed) this.emit('connection', conn);
        },
        (err: Error) => {
          warn(`refused a connection: ${err.message}`);
          endAndLinger(conn); // checkProof has told the dialer why
        },
      );
    });
  }
  onConnection(handler: (conn: Duplex) => void): void {
    this.on('connection', handler);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
