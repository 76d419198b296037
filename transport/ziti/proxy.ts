// Client side of the tunnel backend, `proxy` mode (the default): every ralph command that dials a
// ziti service goes through one shared, supervised `ziti tunnel proxy` for that service and identity
// (./proxy-main.ts), started on first use and gone after RALPH_ZITI_PROXY_IDLE_MS without use.
//
// A connection first takes a lease on the proxy process's unix socket, which answers with the
// proxy's port; it then dials 127.0.0.1:PORT directly and holds the lease while it lives.
// The unix socket lives in a private directory (0700; the socket 0600):
//   $RALPH_ZITI_PROXY_DIR, else $XDG_RUNTIME_DIR/ralph-ziti, else $TMPDIR/ralph-ziti-<uid>.
// Files there, per (service, identity), KEY = a hash of both: KEY.sock, KEY.json (pid, the
// tunneler's pid and port), KEY.log (its warnings), KEY.lock (held while a proxy claims the socket).

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { DialError, dial, dialNet } from '../index.js';
import { privateRuntimeDir } from '../private-dir.js';
import { pidAlive } from './tunnel-process.js';

export const PROXY_DIR_ENV = 'RALPH_ZITI_PROXY_DIR';
export const PROXY_IDLE_ENV = 'RALPH_ZITI_PROXY_IDLE_MS';
const DEFAULT_IDLE_MS = 60_000;
const DEFAULT_START_TIMEOUT_MS = 15_000;
const LOG_MAX_BYTES = 256 * 1024;

/** What a running proxy process says of itself in KEY.json. */
export interface ProxyState {
  pid: number;
  /** The supervised `ziti tunnel proxy` (its watchdog's process group). */
  tunnelerPid: number;
  /** The proxy's port (it listens on 0.0.0.0; ralph dials it on 127.0.0.1, under a lease). */
  port: number;
  service: string;
  identity: string;
  startedAt: string;
  /** It ends after this long with no connection. */
  idleMs: number;
}

export interface ProxyPaths {
  socket: string;
  state: string;
  log: string;
  lock: string;
}

export function proxyPaths(dir: string, key: string): ProxyPaths {
  return {
    socket: join(dir, `${key}.sock`),
    state: join(dir, `${key}.json`),
    log: join(dir, `${key}.log`),
    lock: join(dir, `${key}.lock`),
  };
}

/** One proxy per service and identity file. */
export function proxyKey(service: string, identityFile: string): string {
  return createHash('sha256').update(`${service}\0${identityFile}`).digest('hex').slice(0, 16);
}

/** The private directory for proxy sockets: made 0700, and refused if it is not ours alone. */
export function proxyDir(env: NodeJS.ProcessEnv = process.env): string {
  return privateRuntimeDir('ralph-ziti', PROXY_DIR_ENV, "the OpenZiti proxy's socket", env);
}

/** The state of the proxy for this service and identity, if one runs. */
export function readProxyState(service: string, identityFile: string, env: NodeJS.ProcessEnv = process.env): ProxyState | null {
  try {
    return JSON.parse(readFileSync(proxyPaths(proxyDir(env), proxyKey(service, identityFile)).state, 'utf8')) as ProxyState;
  } catch {
    return null;
  }
}

const PROXY_MAIN = fileURLToPath(new URL('./proxy-main.js', import.meta.url));

function idleMs(): number {
  const v = Number(process.env[PROXY_IDLE_ENV]);
  return Number.isFinite(v) && v > 0 ? v : DEFAULT_IDLE_MS;
}

/**
 * Starts the proxy process for this service and identity, detached (it outlives this command), and
 * resolves once it says `ready`. Its one-line `error` becomes a DialError naming the service.
 */
function startProxy(service: string, identityFile: string, dir: string, key: string, timeoutMs: number): Promise<void> {
  const address = `ziti:${service}`;
  const paths = proxyPaths(dir, key);
  // The log keeps the warnings of past proxies too, but not without end.
  let size = 0;
  try {
    size = statSync(paths.log).size;
  } catch {
    /* no log yet */
  }
  const log = openSync(paths.log, size > LOG_MAX_BYTES ? 'w' : 'a', 0o600);
  const child = spawn(
    process.execPath,
    [PROXY_MAIN, '--service', service, '--identity', identityFile, '--dir', dir, '--key', key, '--idle-ms', String(idleMs()), '--timeout-ms', String(Math.max(timeoutMs, DEFAULT_START_TIMEOUT_MS))],
    { detached: true, stdio: ['ignore', 'pipe', log] },
  );
  closeSync(log);
  return new Promise((resolve, reject) => {
    let text = '';
    const finish = (err?: Error) => {
      clearTimeout(timer);
      child.stdout!.destroy();
      child.unref();
      if (err) reject(err);
      else resolve();
    };
    const timer = setTimeout(
      () => finish(new DialError(`${address}: the OpenZiti proxy did not start within ${timeoutMs} ms (its log: ${paths.log})`, address)),
      timeoutMs,
    );
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (d: string) => {
      text += d;
      const nl = text.indexOf('\n');
      if (nl === -1) return;
      const line = text.slice(0, nl);
      if (line === 'ready') return finish();
      const why = line.replace(/^error /, '').replace(/^ziti:\S+: /, '');
      finish(new DialError(`cannot connect to ${address}: ${why}`, address));
    });
    child.once('error', (err) => finish(new DialError(`${address}: cannot start the OpenZiti proxy: ${err.message}`, address)));
    child.once('exit', (code, signal) => {
      if (!text.includes('\n')) finish(new DialError(`${address}: the OpenZiti proxy exited (${code ?? signal}) before it was ready (its log: ${paths.log})`, address));
    });
  });
}

/** Reads one line from a lease (the proxy process answers in short lines). */
function leaseLine(lease: Duplex, timeoutMs: number, what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const done = (fn: () => void) => {
      clearTimeout(timer);
      lease.off('data', onData);
      lease.off('close', onClose);
      fn();
    };
    const onData = (d: Buffer) => {
      text += d.toString('utf8');
      const nl = text.indexOf('\n');
      if (nl !== -1) done(() => resolve(text.slice(0, nl)));
    };
    const onClose = () => done(() => reject(new Error(`the OpenZiti proxy process closed before ${what}`)));
    const timer = setTimeout(() => done(() => reject(new Error(`no ${what} within ${timeoutMs} ms`))), timeoutMs);
    lease.on('data', onData);
    lease.once('close', onClose);
  });
}

/** A ziti connection through the shared proxy: a tcp socket, with why the proxy ended it early. */
export interface ProxiedConnection extends Duplex {
  /** Asks the proxy process why this connection ended before the daemon said anything. */
  explainEarlyEnd?: () => Promise<string | undefined>;
}

/**
 * Dials `service` through the shared proxy for this identity, starting it if none runs. The stream
 * carries the daemon's greeting first (./auth.ts); if it ends before that, explainEarlyEnd says why.
 */
export async function dialProxy(service: string, identityFile: string, timeoutMs: number): Promise<ProxiedConnection> {
  const address = `ziti:${service}`;
  const deadline = Date.now() + timeoutMs;
  let dir: string;
  try {
    dir = proxyDir();
  } catch (err) {
    throw new DialError(`${address}: ${(err as Error).message}`, address);
  }
  const key = proxyKey(service, identityFile);
  const { socket } = proxyPaths(dir, key);
  const remaining = () => Math.max(1, deadline - Date.now());
  const lessor = { kind: 'unix', path: socket } as const;
  let lease: Duplex;
  try {
    lease = await dial(lessor, { timeoutMs: remaining() });
  } catch (err) {
    const code = (err as DialError).code;
    if (code !== 'ENOENT' && code !== 'ECONNREFUSED') throw new DialError(`${address}: cannot reach the OpenZiti proxy at ${socket}: ${(err as Error).message}`, address);
    await startProxy(service, identityFile, dir, key, remaining());
    try {
      lease = await dial(lessor, { timeoutMs: remaining() });
    } catch (err2) {
      throw new DialError(`${address}: the OpenZiti proxy started but ${socket} does not answer: ${(err2 as Error).message}`, address);
    }
  }
  lease.on('error', () => lease.destroy());
  let port: number;
  try {
    const answer = await leaseLine(lease, remaining(), "the OpenZiti proxy's port");
    const up = /^up (\d+)$/.exec(answer);
    if (!up) throw new Error(answer.replace(/^error /, '').replace(/^ziti:\S+: /, ''));
    port = Number(up[1]);
  } catch (err) {
    lease.destroy();
    throw new DialError(`cannot connect to ${address}: ${(err as Error).message}`, address);
  }
  let conn: ProxiedConnection;
  try {
    // Half-open allowed: a connection the proxy ends at once must stay (and keep its lease) until
    // explainEarlyEnd has asked why.
    conn = await dialNet({ host: '127.0.0.1', port, allowHalfOpen: true }, `tcp://127.0.0.1:${port}`, remaining());
  } catch (err) {
    lease.destroy();
    throw new DialError(`cannot connect to ${address}: the OpenZiti proxy: ${(err as Error).message}`, address);
  }
  conn.once('close', () => lease.destroy());
  conn.explainEarlyEnd = async () => {
    if (lease.destroyed) return undefined;
    lease.write('why\n');
    try {
      return (await leaseLine(lease, 2000, 'an answer')).replace(/^why /, '');
    } catch {
      return undefined;
    }
  };
  return conn;
}

/** The running proxy for this service and identity, or null when none runs. */
export function runningProxy(service: string, identityFile: string): ProxyState | null {
  const state = readProxyState(service, identityFile);
  return state && pidAlive(state.pid) ? state : null;
}

const STOP_POLL_MS = 50;
const STOP_WAIT_MS = 10_000;

/**
 * Stops the proxy for this service and identity (SIGTERM: it closes its socket and ends its
 * tunneler) and resolves once it is gone; null when none was running.
 */
export async function stopProxy(service: string, identityFile: string): Promise<ProxyState | null> {
  const state = runningProxy(service, identityFile);
  if (!state) return null;
  try {
    process.kill(state.pid, 'SIGTERM');
  } catch {
    return state; // gone in between
  }
  // Another process's exit cannot be awaited as an event: look, briefly, until it is gone.
  const until = Date.now() + STOP_WAIT_MS;
  while (pidAlive(state.pid) && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, STOP_POLL_MS));
  if (pidAlive(state.pid)) throw new Error(`the OpenZiti proxy (pid ${state.pid}) did not stop within ${STOP_WAIT_MS / 1000} s`);
  return state;
}
