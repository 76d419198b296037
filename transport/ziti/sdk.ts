// Backend 1 for ziti addresses: the OpenZiti Node SDK in-process. ralph uses only a build of
// `@openziti/ziti-sdk-nodejs` 0.13.3 that carries ralph's fixes (install/build-ziti-sdk.sh applies
// install/ziti-sdk/): the stock 0.13.3 frees a dialed connection at its end without telling
// JavaScript (a use-after-free on the next write or close), never reports a failed dial, and leaks
// a thread-safe function per write. Its connections are wrapped here as Duplex streams that behave
// like TCP sockets, half-close included.
//
// The contract of that build (install/ziti-sdk/addon.patch says what it changes, and why):
// - init(file) resolves with 0 once the controller has accepted the identity, with a negative
//   ziti status when the controller cannot be reached or refuses it (errorString(status) words it),
//   and rejects (with a string) when the SDK cannot load the file.
// - dial(service, false, onConnect, onData): onConnect(conn), or onConnect(undefined, status,
//   message); then onData(bytes)…, and at the end onData(null) (the other side ended) or
//   onData(null, status, message) (the connection failed).
// - write(conn, bytes, cb): cb({conn, status}) exactly once; status < 0: not written.
// - closeWrite(conn) ends our side and keeps reading; close(conn) ends the connection (callbacks
//   already queued may still arrive, and are ignored).
// - listen(service, arb, onListen(status), onListenClient, onClientConnect, onClientData):
//   onClientData({client, app_data}) with bytes, or without app_data and with `status` (0: the
//   client ended its side; < 0: the connection failed).
// - One ziti context per process (a global in the addon) → one identity per process: asking for
//   a second one is a clear error. There is no unbind: a closed listener turns new clients away.
// - Reads cannot be paused: the C SDK keeps reading from the edge router whatever the data
//   callback returns (see MAX_UNREAD_BYTES), so a stream holds at most that much unread.
// - After init the SDK keeps the event loop alive: a process that used it exits explicitly (the
//   CLI always does, see cli/ralph.ts).
// Every wait still has a deadline: a controller that accepts a TCP connection and then says
// nothing would otherwise hold a command forever.

import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { DialError, type Listener } from '../index.js';
import { controllerRefused, mayNotUse, noDaemonHosting, unreachableController, ZitiError } from './errors.js';
import { controllerUrl, type ZitiIdentity } from './identity.js';
import { zitiCacheDir } from './paths.js';

export const SDK_PACKAGE = '@openziti/ziti-sdk-nodejs';
export const SDK_VERSION = '0.13.3';
/** Environment variable: load the SDK from this directory (a build-ziti-sdk.sh output) instead. */
export const SDK_MODULE_ENV = 'RALPH_ZITI_SDK_MODULE';
/** What install/build-ziti-sdk.sh writes beside a build (a stock package has none). */
const BUILD_MANIFEST = 'ralph-build.json';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const FIXES_DIR = join(ROOT, 'install', 'ziti-sdk');
const BUILD_SCRIPT = join(ROOT, 'install', 'build-ziti-sdk.sh');

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
  /** undefined at the end: then `status` says how (0: the client ended its side; < 0: failed). */
  app_data?: Buffer;
  status?: number;
}
export interface WriteResult {
  conn: number;
  /** Bytes written, or a negative ziti status. */
  status: number;
}

/** The part of the SDK (ralph's build of 0.13.3, lib/ziti.js) this backend uses. */
export interface ZitiSdk {
  ralph_fixes: string;
  init(identityPath: string): Promise<number>;
  setLogLevel(level: number): void;
  errorString(status: number): string;
  serviceAvailable(service: string, cb: (r: { status: number; permissions: number }) => void): void;
  dial(
    service: string,
    isWebSocket: boolean,
    onConnect: (conn?: number, status?: number, message?: string) => void,
    onData: (data: Buffer | null, status?: number, message?: string) => void,
  ): void;
  write(conn: number, data: Buffer, cb: (r: WriteResult) => void): void;
  closeWrite(conn: number): number;
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

/** The SDK cannot be used here: not built, a stock build, a build with other fixes, or it does not load. */
export class SdkUnavailableError extends Error {
  constructor(
    message: string,
    /** True when nothing was found at all (as opposed to something found and refused). */
    readonly notFound = false,
  ) {
    super(message);
    this.name = 'SdkUnavailableError';
  }
}

// --- which build --------------------------------------------------------------------------------

let fixesId: string | undefined;

/**
 * The fixes this ralph expects a build to carry: sha256 of the files in install/ziti-sdk/ in name
 * order, concatenated (install/build-ziti-sdk.sh computes it the same way and compiles it into the
 * binary as `ralph_fixes`).
 */
export function expectedFixes(): string {
  if (fixesId === undefined) {
    const hash = createHash('sha256');
    for (const name of readdirSync(FIXES_DIR).sort()) {
      const file = join(FIXES_DIR, name);
      if (statSync(file).isFile()) hash.update(readFileSync(file));
    }
    fixesId = `${SDK_VERSION}+ralph.${hash.digest('hex').slice(0, 12)}`;
  }
  return fixesId;
}

/** Where install/build-ziti-sdk.sh puts the build for these fixes. */
export function cachedBuildDir(): string {
  return join(zitiCacheDir(), 'sdk', `ziti-sdk-nodejs-${expectedFixes()}`);
}

const rebuild = `run ${BUILD_SCRIPT} (about a minute)`;

/** The SDK directory to use: $RALPH_ZITI_SDK_MODULE, else this ralph's build in the cache, else a package next to ralph. */
function locateSdk(): string {
  const given = process.env[SDK_MODULE_ENV];
  if (given) {
    if (!existsSync(given)) throw new SdkUnavailableError(`${SDK_MODULE_ENV}=${given}: no such directory`);
    return given;
  }
  const cached = cachedBuildDir();
  if (existsSync(cached)) return cached;
  try {
    return dirname(createRequire(import.meta.url).resolve(`${SDK_PACKAGE}/package.json`));
  } catch {
    // not installed next to ralph
  }
  const others = existsSync(join(zitiCacheDir(), 'sdk')) ? readdirSync(join(zitiCacheDir(), 'sdk')).filter((n) => n.startsWith('ziti-sdk-nodejs-')) : [];
  if (others.length > 0) {
    throw new SdkUnavailableError(
      `the OpenZiti Node SDK in ${join(zitiCacheDir(), 'sdk')} was built with other fixes than this ralph's (${expectedFixes()}): ${rebuild}`,
    );
  }
  throw new SdkUnavailableError(`the OpenZiti Node SDK is not built here: ${rebuild}`, true);
}

/** Loads the SDK at `dir` only if it is a build with this ralph's fixes. */
function loadChecked(dir: string): ZitiSdk {
  if (!existsSync(join(dir, BUILD_MANIFEST))) {
    throw new SdkUnavailableError(
      `the OpenZiti Node SDK at ${dir} is a stock ${SDK_PACKAGE} build, which ralph does not use ` +
        `(it crashes at the end of a connection and hides why a dial failed): ${rebuild} for one with ralph's fixes`,
    );
  }
  let mod: Partial<ZitiSdk>;
  try {
    mod = createRequire(import.meta.url)(resolve(dir)) as Partial<ZitiSdk>;
  } catch (err) {
    const why = String((err as Error).message ?? err).split('\n')[0];
    throw new SdkUnavailableError(`the OpenZiti Node SDK at ${dir} does not load (${why}): ${rebuild}`);
  }
  if (mod.ralph_fixes !== expectedFixes()) {
    throw new SdkUnavailableError(
      `the OpenZiti Node SDK at ${dir} carries fixes ${mod.ralph_fixes ?? '(none)'}, this ralph needs ${expectedFixes()}: ${rebuild}`,
    );
  }
  const missing = ['init', 'setLogLevel', 'errorString', 'serviceAvailable', 'dial', 'write', 'closeWrite', 'close', 'listen'].filter(
    (f) => typeof (mod as Record<string, unknown>)[f] !== 'function',
  );
  if (missing.length > 0) throw new SdkUnavailableError(`the OpenZiti Node SDK at ${dir} has no ${missing.join(', ')}: ${rebuild}`);
  return mod as ZitiSdk;
}

let loaded: { sdk: ZitiSdk } | { error: SdkUnavailableError } | undefined;

/** Loads the SDK once per process; throws SdkUnavailableError with one line saying why and what to run. */
export function loadSdk(): ZitiSdk {
  if (!loaded) {
    try {
      loaded = { sdk: loadChecked(locateSdk()) };
    } catch (err) {
      loaded = { error: err instanceof SdkUnavailableError ? err : new SdkUnavailableError(String((err as Error).message ?? err)) };
    }
  }
  if ('error' in loaded) throw loaded.error;
  return loaded.sdk;
}

/**
 * For `--ziti-backend auto`: use the SDK? `refused` says why not when an SDK was found but is not
 * one ralph may use (nothing said when there is none at all).
 */
export function sdkChoice(): { use: true } | { use: false; refused?: string } {
  try {
    loadSdk();
    return { use: true };
  } catch (err) {
    const e = err as SdkUnavailableError;
    return e.notFound ? { use: false } : { use: false, refused: e.message };
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

/** init()'s refusal in the user's terms: the controller unreachable, or refusing the identity. */
function signInFailure(sdk: ZitiSdk, identity: ZitiIdentity, status: number): string {
  const controller = controllerUrl(identity.ztAPI);
  const why = sdk.errorString(status);
  if (/not available|did not complete in time|terminated/i.test(why)) return unreachableController(controller, identity.file);
  return controllerRefused(controller, identity.file, `${why}, ziti status ${status}`);
}

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
    // The C SDK logs to stderr at INFO by default; ralph says what went wrong itself. ZITI_LOG=N
    // (the SDK's own variable) brings its log back.
    if (!process.env.ZITI_LOG) sdk.setLogLevel(0);
    const started = new Promise<number>((resolve, reject) => {
      try {
        sdk.init(identity.file).then(resolve, reject);
      } catch (err) {
        reject(err);
      }
    });
    const ready = started.then(
      (status) => {
        if (status !== 0) throw fail(`${address}: ${signInFailure(sdk, identity, status)}`);
      },
      (reason: unknown) => {
        // The SDK rejects (with a string) only when it cannot even load the identity; nothing was
        // started, so another identity may be tried.
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
        `${address}: no answer from the OpenZiti controller ${controllerUrl(identity.ztAPI)} for identity ${identity.file} ` +
          `within ${ms} ms`,
      ),
  );
}

/** The identity's permission bits on the service; an error when it may not see the service at all. */
async function permissions(
  sdk: ZitiSdk,
  service: string,
  identity: ZitiIdentity,
  verb: 'dial' | 'host',
  deadline: number,
  ms: number,
  fail: Fail,
): Promise<number> {
  const address = `ziti:${service}`;
  const r = await beforeDeadline(
    new Promise<{ status: number; permissions: number }>((resolve) => sdk.serviceAvailable(service, resolve)),
    deadline,
    () => fail(`${address}: the OpenZiti controller did not answer about service ${service} within ${ms} ms`),
  );
  if (r.status < 0) throw fail(`${address}: ${mayNotUse(verb, service, identity.file)}`);
  return r.permissions;
}

// --- streams --------------------------------------------------------------------------------------

/**
 * The most bytes one connection holds that its reader has not taken yet; past it the connection is
 * closed. Needed because nothing here can slow an OpenZiti sender down: the C SDK keeps reading the
 * edge router's link, which carries every connection to that router, and a data callback that
 * takes fewer bytes only moves them into the SDK's own unbounded buffer (docs/architecture.md,
 * Findings). Readers pipe, so unread bytes pile up only while a reader is stalled: a working one,
 * even under a large `git push`, keeps this near the stream's highWaterMark (16 KiB). 64 MiB is
 * about 3 s of the SDK's full rate into a reader that stopped outright, and bounds what one peer
 * can make us hold.
 */
export const MAX_UNREAD_BYTES = 64 * 1024 * 1024;

/**
 * One OpenZiti connection as a Duplex, like a TCP socket: `end()` half-closes (the other side
 * reads the end and may still answer), the other side's end ends the readable side, and with
 * `allowHalfOpen` false (the default, as for net.connect) our side then ends too. Reads cannot be
 * paused (the SDK pushes what arrives): past MAX_UNREAD_BYTES unread the connection is destroyed
 * with one error naming the peer. Writes are paced by their callbacks, one at a time.
 */
export class ZitiSdkStream extends Duplex {
  private inflight: ((err?: Error | null) => void) | undefined;
  private sdkClosed = false;
  private readEnded = false;

  constructor(
    private readonly sdk: ZitiSdk,
    readonly handle: number,
    readonly label: string,
    /** Who is on the other side, in the user's words: `client identity "laptop"`, `the daemon hosting S`. */
    readonly peer: string,
    /** Told (without the label) when this side closes the connection for holding too much unread. */
    private readonly onOverflow?: (message: string) => void,
  ) {
    super({ allowHalfOpen: false });
  }

  override _read(): void {
    // The SDK pushes; it cannot be paused (fromSdk bounds what piles up instead).
  }

  /** What the SDK says about this connection: bytes, or its end (status 0: ended; < 0: failed). */
  fromSdk(data: Buffer | null | undefined, status = 0, message?: string): void {
    if (this.destroyed || this.readEnded) return;
    if (data) {
      if (data.length > 0) this.push(data);
      if (this.readableLength > MAX_UNREAD_BYTES) this.overflow();
    } else if (status === 0) {
      this.readEnded = true;
      this.push(null);
    } else {
      this.readEnded = true;
      this.destroy(new Error(`${this.label}: the connection failed: ${message ?? this.sdk.errorString(status)} (ziti status ${status})`));
    }
  }

  private overflow(): void {
    const why =
      `closed the connection: ${this.peer} sent more than ${MAX_UNREAD_BYTES / (1024 * 1024)} MiB that ralph here had not read yet ` +
      '(its reader stalled, or the peer floods; the OpenZiti SDK cannot slow a sender down, so ralph ends the connection rather than hold it all)';
    this.onOverflow?.(why);
    this.destroy(new Error(`${this.label}: ${why}`));
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.sdkClosed) {
      cb(new Error(`${this.label}: the connection is closed`));
      return;
    }
    this.inflight = cb;
    try {
      this.sdk.write(this.handle, chunk, (r) => this.writeDone(r.status));
    } catch (err) {
      this.inflight = undefined;
      cb(new Error(`${this.label}: write failed: ${(err as Error).message}`));
    }
  }

  private writeDone(status: number): void {
    const cb = this.inflight;
    if (!cb) return;
    this.inflight = undefined;
    if (status < 0) cb(new Error(`${this.label}: write failed: ${this.sdk.errorString(status)} (ziti status ${status})`));
    else cb();
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (!this.sdkClosed) {
      try {
        this.sdk.closeWrite(this.handle);
      } catch {
        // already gone: the close below says the rest
      }
    }
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.inflight = undefined;
    if (!this.sdkClosed) {
      this.sdkClosed = true;
      try {
        this.sdk.close(this.handle);
      } catch {
        // already gone
      }
    }
    cb(err);
  }
}

// --- dial and listen -----------------------------------------------------------------------------

/** A failed dial in the user's terms. */
function dialFailure(service: string, status: number | undefined, message: string | undefined): string {
  const why = message ?? 'no reason given';
  // The router closes a dial to a service that has no terminator ("connection is closed").
  if (/connection is closed|service not available/i.test(why)) return noDaemonHosting(service);
  return `the OpenZiti network refused the dial to service ${service}: ${why}${status !== undefined ? ` (ziti status ${status})` : ''}`;
}

export async function dialSdk(service: string, identity: ZitiIdentity, timeoutMs: number): Promise<Duplex> {
  const address = `ziti:${service}`;
  const deadline = Date.now() + timeoutMs;
  const sdk = loadSdk();
  const fail: Fail = (m) => new DialError(m, address);
  await signIn(sdk, service, identity, deadline, timeoutMs, fail);
  const perms = await permissions(sdk, service, identity, 'dial', deadline, timeoutMs, fail);
  if ((perms & CAN_DIAL) === 0) throw new DialError(`${address}: ${mayNotUse('dial', service, identity.file)}`, address);
  return new Promise<Duplex>((resolve, reject) => {
    let settled = false;
    let stream: ZitiSdkStream | undefined;
    // Connect and data come through two queues: keep anything that overtakes the connect.
    const early: Array<[Buffer | null, number | undefined, string | undefined]> = [];
    const timer = setTimeout(() => {
      settled = true;
      reject(new DialError(`cannot connect to ${address}: no connection to service ${service} within ${timeoutMs} ms`, address));
    }, Math.max(0, deadline - Date.now()));
    const onConnect = (conn?: number, status?: number, message?: string) => {
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
        reject(new DialError(`cannot connect to ${address}: ${dialFailure(service, status, message)}`, address));
        return;
      }
      stream = new ZitiSdkStream(sdk, conn, address, `the daemon hosting ${service}`);
      for (const e of early.splice(0)) stream.fromSdk(...e);
      resolve(stream);
    };
    const onData = (data: Buffer | null, status?: number, message?: string) => {
      if (stream) stream.fromSdk(data, status, message);
      else if (!settled) early.push([data, status, message]);
    };
    try {
      sdk.dial(service, false, onConnect, onData);
    } catch (err) {
      settled = true;
      clearTimeout(timer);
      reject(new DialError(`cannot connect to ${address}: the OpenZiti SDK refused the dial: ${(err as Error).message}`, address));
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
    private readonly warn: (message: string) => void,
  ) {
    super();
    this.address = `ziti:${service}`;
  }

  onConnection(handler: (conn: Duplex) => void): void {
    this.on('connection', handler);
  }

  /** Turns new clients away. The SDK cannot unbind: the service stays bound until the process exits. */
  async close(): Promise<void> {
    this.closed = true;
  }

  onListenClient = (e: ClientEvent): void => {
    if (e.status !== 0) return;
    if (this.closed) {
      try {
        this.sdk.close(e.client);
      } catch {}
      return;
    }
    // The dialer's identity name, as the edge router passes it on.
    const caller = e.clt_ctx?.caller_id;
    const s = new ZitiSdkStream(this.sdk, e.client, this.address, caller ? `client identity ${JSON.stringify(caller)}` : 'a client', this.warn);
    this.clients.set(e.client, s);
    s.once('close', () => {
      if (this.clients.get(e.client) === s) this.clients.delete(e.client);
    });
  };

  onClientConnect = (e: ClientEvent): void => {
    const s = this.clients.get(e.client);
    if (!s) return;
    if (e.status !== 0) s.destroy();
    else this.emit('connection', s);
  };

  onClientData = (e: ClientDataEvent): void => {
    this.clients.get(e.client)?.fromSdk(e.app_data ?? null, e.app_data ? 0 : (e.status ?? 0));
  };
}

/** `warn`: where a connection this side closes (see MAX_UNREAD_BYTES) is reported. */
export async function listenSdk(service: string, identity: ZitiIdentity, timeoutMs: number, warn: (message: string) => void): Promise<Listener> {
  const address = `ziti:${service}`;
  const deadline = Date.now() + timeoutMs;
  const sdk = loadSdk();
  const fail: Fail = (m) => new ZitiError(m, address);
  await signIn(sdk, service, identity, deadline, timeoutMs, fail);
  const perms = await permissions(sdk, service, identity, 'host', deadline, timeoutMs, fail);
  if ((perms & CAN_BIND) === 0) throw new ZitiError(`${address}: ${mayNotUse('host', service, identity.file)}`, address);
  const listener = new ZitiSdkListener(sdk, service, warn);
  const bound = new Promise<void>((resolve, reject) => {
    try {
      sdk.listen(
        service,
        nextListenerId++,
        (status) => {
          if (status === 0) resolve();
          else reject(new ZitiError(`${address}: identity ${identity.file} cannot host service ${service}: ${sdk.errorString(status)} (ziti status ${status})`, address));
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
