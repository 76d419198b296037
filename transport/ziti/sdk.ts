// Backend 1 for ziti addresses: the OpenZiti Node SDK (`@openziti/ziti-sdk-nodejs` 0.13.3) in-process,
// its callbacks wrapped as Duplex streams.
//
// What the SDK 0.13.3 does, and how this file copes (package lib/*.js and src/*.c):
// - `init(identityPath)` resolves only once the controller has sent the service list; an unreachable
//   controller or a refused identity is never reported → every wait here has a deadline.
// - One ziti context per process (a global `ztx` in src/ziti_init.c) → one identity per process;
//   asking for a second one is a clear error, not a silent switch.
// - `dial`'s data callback gets only bytes: end-of-stream and errors close the connection inside the
//   SDK and JavaScript is never told (src/ziti_dial.c on_data). A write to such a connection is
//   dropped without its callback (the C SDK returns INVALID_STATE, the binding ignores it). So a
//   dialed stream ends when (a) the protocol layer says so — `markRemoteEnded(stream)` —, (b) a write
//   fails, or (c) a write is not acknowledged within the stall limit (RALPH_ZITI_WRITE_STALL_MS).
// - On the hosting side the client's end IS reported (data callback with `app_data` undefined), after
//   which the SDK has already closed our writing half.
// - Write callbacks are stored per connection (per listener, for hosted clients) and each write
//   replaces the previous one, so a callback may arrive through another write's function: every
//   write here passes one dispatcher that routes by the `conn` in the result, one write in flight
//   per connection (Writable guarantees that; no _writev).
// - Reads cannot be paused: the SDK pushes whatever arrives. Writes are paced by their callbacks.
// - There is no unbind: closing a listener turns new clients away; the service stays bound until
//   the process exits. After `init` the SDK keeps the event loop alive: processes must exit explicitly.

import { EventEmitter } from 'node:events';
import { realpathSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Duplex } from 'node:stream';
import { DialError, type Listener } from '../index.js';
import { ZitiError } from './errors.js';
import type { ZitiIdentity } from './identity.js';

export const SDK_PACKAGE = '@openziti/ziti-sdk-nodejs';
/** Environment variable: load the SDK from this module path instead (tests point it at the stand-in). */
export const SDK_MODULE_ENV = 'RALPH_ZITI_SDK_MODULE';
/** Environment variable: how long a write may wait for the SDK's acknowledgement (ms). */
export const WRITE_STALL_ENV = 'RALPH_ZITI_WRITE_STALL_MS';
const DEFAULT_WRITE_STALL_MS = 60_000;

/** Permission bits of `serviceAvailable` (lib/ziti.js: 1 = may dial, 2 = may bind). */
const CAN_DIAL = 1;
const CAN_BIND = 2;

export interface ClientEvent {
  status: number;
  client: number;
  js_arb_data?: number;
  clt_ctx?: { caller_id?: string; app_data?: Buffer };
}
export interface ClientDataEvent {
  client: number;
  js_arb_data?: number;
  /** undefined when the client closed (or the connection failed). */
  app_data?: Buffer;
}
export interface WriteResult {
  conn: number;
  /** Bytes written, or a negative ziti error code. */
  status: number;
}

/** The part of the SDK 0.13.3 module this backend uses (its lib/ziti.js exports). */
export interface ZitiSdk {
  init(identityPath: string): Promise<number>;
  serviceAvailable(service: string, cb: (r: { status: number; permissions: number }) => void): void;
  dial(service: string, isWebSocket: boolean, onConnect: (conn?: number) => void, onData: (data: Buffer) => void): void;
  write(conn: number, data: Buffer, cb: (r: WriteResult) => void): void;
  close(conn: number): void;
  listen(
    service: string,
    jsArbData: number,
    onListen: (status: number) => void,
    onListenClient: (e: ClientEvent) => void,
    onClientConnect: (e: ClientEvent) => void,
    onClientData: (e: ClientDataEvent) => void,
  ): void;
}

/** The SDK is not installed here (or its native part cannot load). */
export class SdkUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SdkUnavailableError';
  }
}

let loaded: { sdk: ZitiSdk } | { error: SdkUnavailableError } | undefined;

/** Loads the SDK once per process (by package name, or from $RALPH_ZITI_SDK_MODULE). */
export function loadSdk(): ZitiSdk {
  if (!loaded) {
    const spec = process.env[SDK_MODULE_ENV] || SDK_PACKAGE;
    try {
      const mod = createRequire(import.meta.url)(spec) as Partial<ZitiSdk> & { default?: Partial<ZitiSdk> };
      const sdk = (typeof mod.init === 'function' ? mod : mod.default) as Partial<ZitiSdk> | undefined;
      const missing = ['init', 'serviceAvailable', 'dial', 'write', 'close', 'listen'].filter(
        (f) => typeof (sdk as Record<string, unknown> | undefined)?.[f] !== 'function',
      );
      if (missing.length > 0) {
        throw new Error(`it has no ${missing.join(', ')}: not the ${SDK_PACKAGE} 0.13 API`);
      }
      loaded = { sdk: sdk as ZitiSdk };
    } catch (err) {
      const why = String((err as Error).message ?? err).split('\n')[0];
      loaded = {
        error: new SdkUnavailableError(
          `the OpenZiti Node SDK (${spec}) cannot be loaded: ${why} — install it next to ralph ` +
            `(npm install ${SDK_PACKAGE}) or use the tunnel backend`,
        ),
      };
    }
  }
  if ('error' in loaded) throw loaded.error;
  return loaded.sdk;
}

/** Does the SDK load in this process? */
export function sdkAvailable(): boolean {
  try {
    loadSdk();
    return true;
  } catch {
    return false;
  }
}

// --- one identity per process -------------------------------------------------------------------

let session: { key: string; identity: ZitiIdentity; ready: Promise<void> } | undefined;

function identityKey(file: string): string {
  try {
    return realpathSync(file);
  } catch {
    return file;
  }
}

/** Rejects with `onTimeout()` unless `p` settles before the deadline. */
function beforeDeadline<T>(p: Promise<T>, deadline: number, onTimeout: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(onTimeout()), Math.max(0, deadline - Date.now()));
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err) => {
        clearTimeout(timer);
        reject(err);
      },
    );
  });
}

/** How a network failure is reported: DialError when dialing, ZitiError when hosting. */
type Fail = (message: string) => Error;

async function signIn(sdk: ZitiSdk, service: string, identity: ZitiIdentity, deadline: number, ms: number, fail: Fail): Promise<void> {
  const address = `ziti:${service}`;
  const key = identityKey(identity.file);
  if (session && session.key !== key) {
    throw new ZitiError(
      `${address}: this process already uses OpenZiti identity ${session.identity.file}; ` +
        `the Node SDK allows one identity per process (asked for ${identity.file})`,
      address,
    );
  }
  if (!session) {
    const started = new Promise<number>((resolve, reject) => {
      try {
        sdk.init(identity.file).then(resolve, reject);
      } catch (err) {
        reject(err);
      }
    });
    const ready = started.then(
      (status) => {
        if (status !== 0) {
          throw fail(`ziti identity ${identity.file}: the controller ${identity.ztAPI} did not accept it (ziti status ${status})`);
        }
      },
      (reason: unknown) => {
        // The SDK rejects with a string ("ziti.init() failed with return code N") when it cannot even
        // load the identity; nothing was started, so another identity may be tried.
        session = undefined;
        const why = reason instanceof Error ? reason.message : String(reason);
        throw new ZitiError(`ziti identity ${identity.file}: the OpenZiti SDK cannot use it (${why})`, address);
      },
    );
    ready.catch(() => {});
    session = { key, identity, ready };
  }
  await beforeDeadline(
    session.ready,
    deadline,
    () =>
      fail(
        `${address}: no answer from the OpenZiti controller ${identity.ztAPI} for identity ${identity.file} ` +
          `within ${ms} ms (controller unreachable, or the identity is not accepted)`,
      ),
  );
}

/** The identity's permission bits on the service; an error when it may not see the service at all. */
async function permissions(sdk: ZitiSdk, service: string, identity: ZitiIdentity, deadline: number, ms: number, fail: Fail): Promise<number> {
  const address = `ziti:${service}`;
  const r = await beforeDeadline(
    new Promise<{ status: number; permissions: number }>((resolve) => sdk.serviceAvailable(service, resolve)),
    deadline,
    () => fail(`${address}: the OpenZiti controller did not answer about service ${service} within ${ms} ms`),
  );
  if (r.status < 0) {
    throw fail(`${address}: identity ${identity.file} has no access to service ${service} (no such service, or no policy grants it)`);
  }
  return r.permissions;
}

// --- streams --------------------------------------------------------------------------------------

const streams = new Map<number, ZitiSdkStream>();

/** The one write callback given to the SDK: routes the result to its connection (see header). */
function onWriteDone(r: WriteResult | unknown): void {
  if (typeof r !== 'object' || r === null || typeof (r as WriteResult).conn !== 'number') return;
  streams.get((r as WriteResult).conn)?.writeDone((r as WriteResult).status);
}

function writeStallMs(): number {
  const v = Number(process.env[WRITE_STALL_ENV]);
  return Number.isFinite(v) && v > 0 ? v : DEFAULT_WRITE_STALL_MS;
}

/**
 * One OpenZiti connection as a Duplex. On the dialing side the SDK never reports the other side's
 * end: call `remoteEnded()` (or `markRemoteEnded(stream)` from transport/ziti) when the protocol knows.
 */
export class ZitiSdkStream extends Duplex {
  private inflight: ((err?: Error | null) => void) | undefined;
  private stallTimer: NodeJS.Timeout | undefined;
  private sdkClosed = false;
  private writeShut = false;

  constructor(
    private readonly sdk: ZitiSdk,
    readonly handle: number,
    readonly label: string,
  ) {
    super({ allowHalfOpen: false });
    streams.set(handle, this);
  }

  override _read(): void {
    // The SDK pushes; it cannot be paused.
  }

  /** Bytes from the SDK's data callback. */
  pushData(data: Buffer): void {
    if (!this.destroyed && !this.readableEnded && data.length > 0) this.push(data);
  }

  /** The other side is done (the protocol layer knows it; the SDK's dial never says so). */
  remoteEnded(): void {
    if (!this.destroyed && !this.readableEnded) this.push(null);
  }

  /** Hosting side: the client closed; the SDK has already shut our writing half. */
  clientClosed(): void {
    this.writeShut = true;
    this.failInflight(new Error(`${this.label}: the other side closed the connection`));
    this.remoteEnded();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.writeShut || this.sdkClosed) {
      cb(new Error(`${this.label}: the other side closed the connection`));
      return;
    }
    this.inflight = cb;
    const ms = writeStallMs();
    this.stallTimer = setTimeout(() => {
      this.destroy(new Error(`${this.label}: a write was not acknowledged within ${ms} ms: the connection is gone`));
    }, ms);
    try {
      this.sdk.write(this.handle, chunk, onWriteDone);
    } catch (err) {
      this.failInflight(new Error(`${this.label}: write failed: ${(err as Error).message}`));
    }
  }

  /** The SDK's write result for this connection. */
  writeDone(status: number): void {
    const cb = this.inflight;
    if (!cb) return;
    this.inflight = undefined;
    clearTimeout(this.stallTimer);
    if (status < 0) cb(new Error(`${this.label}: write failed (ziti status ${status}): the connection is gone`));
    else cb();
  }

  private failInflight(err: Error): void {
    const cb = this.inflight;
    this.inflight = undefined;
    clearTimeout(this.stallTimer);
    cb?.(err);
  }

  override _final(cb: (err?: Error | null) => void): void {
    // The SDK has no half-close: ending our side closes the connection (all writes are acknowledged).
    this.closeSdk();
    this.remoteEnded();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    clearTimeout(this.stallTimer);
    this.inflight = undefined;
    this.closeSdk();
    cb(err);
  }

  private closeSdk(): void {
    if (this.sdkClosed) return;
    this.sdkClosed = true;
    if (streams.get(this.handle) === this) streams.delete(this.handle);
    try {
      this.sdk.close(this.handle);
    } catch {
      // already gone
    }
  }
}

// --- dial and listen -----------------------------------------------------------------------------

export async function dialSdk(service: string, identity: ZitiIdentity, timeoutMs: number): Promise<Duplex> {
  const address = `ziti:${service}`;
  const deadline = Date.now() + timeoutMs;
  const sdk = loadSdk();
  const fail: Fail = (m) => new DialError(m, address);
  await signIn(sdk, service, identity, deadline, timeoutMs, fail);
  const perms = await permissions(sdk, service, identity, deadline, timeoutMs, fail);
  if ((perms & CAN_DIAL) === 0) {
    throw new DialError(`${address}: identity ${identity.file} may not dial service ${service} (no Dial policy grants it)`, address);
  }
  return new Promise<Duplex>((resolve, reject) => {
    let settled = false;
    let stream: ZitiSdkStream | undefined;
    const early: Buffer[] = [];
    const timer = setTimeout(() => {
      settled = true;
      reject(new DialError(`${address}: no connection to service ${service} within ${timeoutMs} ms`, address));
    }, Math.max(0, deadline - Date.now()));
    const onConnect = (conn?: number) => {
      if (settled) {
        // Connected after we gave up: nobody will use it.
        if (typeof conn === 'number') {
          try {
            sdk.close(conn);
          } catch {}
        }
        return;
      }
      settled = true;
      clearTimeout(timer);
      if (typeof conn !== 'number') {
        reject(
          new DialError(`${address}: cannot connect to service ${service}: no one is hosting it, or the network refused the dial`, address),
        );
        return;
      }
      stream = new ZitiSdkStream(sdk, conn, address);
      for (const b of early.splice(0)) stream.pushData(b);
      resolve(stream);
    };
    const onData = (data: Buffer) => {
      if (stream) stream.pushData(data);
      else if (!settled) early.push(data);
    };
    try {
      sdk.dial(service, false, onConnect, onData);
    } catch (err) {
      settled = true;
      clearTimeout(timer);
      reject(new DialError(`${address}: the OpenZiti SDK refused the dial: ${(err as Error).message}`, address));
    }
  });
}

let nextListenerId = 1;

class ZitiSdkListener extends EventEmitter implements Listener {
  readonly address: string;
  private closed = false;
  private readonly clients = new Map<number, ZitiSdkStream>();

  constructor(
    private readonly sdk: ZitiSdk,
    service: string,
  ) {
    super();
    this.address = `ziti:${service}`;
  }

  onConnection(handler: (conn: Duplex) => void): void {
    this.on('connection', handler);
  }

  /** Turns new clients away. The SDK 0.13.3 cannot unbind: the service stays bound until exit. */
  async close(): Promise<void> {
    this.closed = true;
  }

  private stream(client: number): ZitiSdkStream {
    let s = this.clients.get(client);
    if (!s) {
      s = new ZitiSdkStream(this.sdk, client, this.address);
      this.clients.set(client, s);
      s.once('close', () => {
        if (this.clients.get(client) === s) this.clients.delete(client);
      });
    }
    return s;
  }

  onListenClient = (e: ClientEvent): void => {
    if (e.status !== 0) return;
    if (this.closed) {
      try {
        this.sdk.close(e.client);
      } catch {}
      return;
    }
    this.stream(e.client);
  };

  onClientConnect = (e: ClientEvent): void => {
    if (this.closed && !this.clients.has(e.client)) return;
    const s = this.stream(e.client);
    if (e.status !== 0) s.destroy();
    else this.emit('connection', s);
  };

  onClientData = (e: ClientDataEvent): void => {
    const s = this.clients.get(e.client);
    if (!s) return;
    if (e.app_data && e.app_data.length > 0) s.pushData(e.app_data);
    else if (!e.app_data) s.clientClosed();
  };
}

export async function listenSdk(service: string, identity: ZitiIdentity, timeoutMs: number): Promise<Listener> {
  const address = `ziti:${service}`;
  const deadline = Date.now() + timeoutMs;
  const sdk = loadSdk();
  const fail: Fail = (m) => new ZitiError(m, address);
  await signIn(sdk, service, identity, deadline, timeoutMs, fail);
  const perms = await permissions(sdk, service, identity, deadline, timeoutMs, fail);
  if ((perms & CAN_BIND) === 0) {
    throw new ZitiError(`${address}: identity ${identity.file} may not host service ${service} (no Bind policy grants it)`, address);
  }
  const listener = new ZitiSdkListener(sdk, service);
  const bound = new Promise<void>((resolve, reject) => {
    try {
      sdk.listen(
        service,
        nextListenerId++,
        (status) => {
          if (status === 0) resolve();
          else reject(new ZitiError(`${address}: identity ${identity.file} cannot host service ${service} (ziti status ${status})`, address));
        },
        listener.onListenClient,
        listener.onClientConnect,
        listener.onClientData,
      );
    } catch (err) {
      reject(new ZitiError(`${address}: the OpenZiti SDK refused to host service ${service}: ${(err as Error).message}`, address));
    }
  });
  try {
    await beforeDeadline(bound, deadline, () => new ZitiError(`${address}: service ${service} was not bound within ${timeoutMs} ms`, address));
  } catch (err) {
    void listener.close();
    throw err;
  }
  return listener;
}
