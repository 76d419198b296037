// One interface for every byte-stream transport: listen(address) → connections, dial(address) → Duplex.
// Nothing here knows what the bytes mean.

import { EventEmitter } from 'node:events';
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { dirname } from 'node:path';
import type { Duplex } from 'node:stream';
import { AddressError, formatAddress, parseAddress, type Address } from './address.js';

export * from './address.js';

/**
 * Connections are half-open capable: a peer that has finished sending (git after its pack) may
 * still be owed a reply, so a server ends its side only when it is done, never on the peer's end.
 */
export interface Listener {
  /** The address actually bound (a tcp port of 0 is replaced by the real one). */
  readonly address: string;
  onConnection(handler: (conn: Duplex) => void): void;
  close(): Promise<void>;
}

export interface ZitiOptions {
  /** Path of the enrolled identity JSON file. */
  identityFile?: string;
  /** Which backend carries ziti addresses: the Node SDK in-process, or the `ziti` CLI tunneler. */
  backend?: 'sdk' | 'tunnel' | 'auto';
  /** Where a host reports connections it refused (no proof of identity); default: stderr. */
  warn?: (message: string) => void;
}

export interface SshDialOptions {
  /** The command ssh runs on the box, as words (each is quoted for the box's shell). */
  remoteCommand: string[];
}

export interface DialOptions {
  timeoutMs?: number;
  ziti?: ZitiOptions;
  /** Required for ssh:// addresses. */
  ssh?: SshDialOptions;
}

export interface ListenOptions {
  ziti?: ZitiOptions;
}

export class DialError extends Error {
  constructor(
    message: string,
    readonly address: string,
    /** The system error behind it, when there is one (ENOENT, ECONNREFUSED, ETIMEDOUT, …). */
    readonly code?: string,
  ) {
    super(message);
    this.name = 'DialError';
  }
}

/**
 * How long a connection that was answered and ended (a refusal) keeps being read: closing a socket
 * with unread input resets it, and the peer could lose the answer.
 */
const LINGER_AFTER_END_MS = 2000;

/** Ends `conn` after `lastWords` (if any), reading and dropping what still comes, for a moment. */
export function endAndLinger(conn: Duplex, lastWords?: string): void {
  if (conn.destroyed) return;
  if (lastWords === undefined) conn.end();
  else conn.end(lastWords);
  conn.on('data', () => {});
  conn.resume();
  const t = setTimeout(() => conn.destroy(), LINGER_AFTER_END_MS);
  conn.once('close', () => clearTimeout(t));
}

class NetListener extends EventEmitter implements Listener {
  constructor(
    private readonly server: net.Server,
    readonly address: string,
    private readonly cleanup: () => void = () => {},
  ) {
    super();
    server.on('connection', (sock) => {
      sock.setNoDelay?.(true);
      this.emit('connection', sock);
    });
  }
  onConnection(handler: (conn: Duplex) => void): void {
    this.on('connection', handler);
  }
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.cleanup();
    });
  }
}

/** Is something answering on this unix socket? (A stale file from a dead process is not.) */
export function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function listenUnix(path: string): Promise<Listener> {
  // A directory made here is private; one that was there is left as it is (the socket itself is
  // 0600): `--listen unix:/run/ralph.sock` must not close /run to everyone else.
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  try {
    if (lstatSync(path).isSocket()) {
      if (await socketAnswers(path)) throw new AddressError(`${path} is in use by another process`);
      unlinkSync(path);
    } else {
      throw new AddressError(`${path} exists and is not a socket`);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const server = net.createServer({ allowHalfOpen: true });
  // Created under a umask that leaves only the owner, so there is no window where others may connect.
  const oldMask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(oldMask);
  }
  chmodSync(path, 0o600);
  return new NetListener(server, `unix:${path}`, () => {
    try {
      unlinkSync(path);
    } catch {
      /* already gone */
    }
  });
}

async function listenTcp(host: string, port: number): Promise<Listener> {
  const server = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host, port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const bound = server.address() as net.AddressInfo;
  return new NetListener(server, formatAddress({ kind: 'tcp', host, port: bound.port }));
}

export async function listen(address: string | Address, opts: ListenOptions = {}): Promise<Listener> {
  const a = typeof address === 'string' ? parseAddress(address) : address;
  switch (a.kind) {
    case 'unix':
      return listenUnix(a.path);
    case 'tcp':
      return listenTcp(a.host, a.port);
    case 'ziti': {
      const ziti = await import('./ziti/index.js');
      return ziti.listenZiti(a.service, opts.ziti ?? {});
    }
    case 'ssh':
      throw new AddressError(`${formatAddress(a)} can be dialed, not listened on: sshd listens, and runs a command that joins a local socket`);
  }
}

/** Connects a unix or tcp socket: `dial` for those kinds, with every net option open to the caller. */
export function dialNet(target: net.NetConnectOpts, label: string, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(target);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new DialError(`${label}: no connection within ${timeoutMs} ms`, label, 'ETIMEDOUT'));
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.off('error', onError);
      sock.setNoDelay?.(true);
      resolve(sock);
    });
    const onError = (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const why =
        err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
          ? 'nothing is listening there'
          : err.code === 'EACCES'
            ? 'permission denied'
            : err.message;
      reject(new DialError(`cannot connect to ${label}: ${why}`, label, err.code));
    };
    sock.once('error', onError);
  });
}

export async function dial(address: string | Address, opts: DialOptions = {}): Promise<Duplex> {
  const a = typeof address === 'string' ? parseAddress(address) : address;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  switch (a.kind) {
    case 'unix':
      return dialNet({ path: a.path }, formatAddress(a), timeoutMs);
    case 'tcp':
      return dialNet({ host: a.host, port: a.port }, formatAddress(a), timeoutMs);
    case 'ziti': {
      const ziti = await import('./ziti/index.js');
      return ziti.dialZiti(a.service, opts.ziti ?? {}, timeoutMs);
    }
    case 'ssh': {
      if (!opts.ssh) throw new DialError(`${formatAddress(a)}: no command given to run on the box`, formatAddress(a));
      const ssh = await import('./ssh/index.js');
      return ssh.dialSsh(a, opts.ssh, timeoutMs);
    }
  }
}
