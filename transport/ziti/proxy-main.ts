// The laptop's shared way onto one OpenZiti service: a small detached process, one per (service,
// identity), that every ralph command of that remote uses while it lives. Started by ./proxy.ts.
//
//   node proxy-main.js --service S --identity FILE --dir DIR --key KEY --idle-ms N --timeout-ms N
//
// It owns a supervised `ziti tunnel proxy S:0` (./tunnel.ts Tunneler: ready-wait, restart with
// backoff, a watchdog that ends it if this process is killed) and serves DIR/KEY.sock (0600, DIR 0700).
// Each ralph connection takes a lease there: it learns the proxy's port, dials 127.0.0.1:PORT itself
// (so its bytes pass through no extra process), and holds the lease while the connection lives.
// The port is open only while this process lives: it exits after N ms with no lease, on
// SIGTERM/SIGINT/SIGHUP, and takes the proxy with it. Whoever else reaches the port (the proxy binds
// 0.0.0.0) meets the daemon's demand for proof of an enrolled identity (./auth.ts).
//
// To the process that started it, it writes one line on stdout, `ready` or `error <message>`, and
// nothing after. DIR/KEY.json says who it is (pid, the tunneler's pid and port) for `ralph remote
// test` and for tests; its warnings go to stderr, which the starter points at DIR/KEY.log.

import { chmodSync, closeSync, openSync, readFileSync, renameSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import net from 'node:net';
import { explainZitiError, Tunneler } from './tunnel.js';
import { pidAlive, zitiBinary, type ZitiLogLine } from './tunnel-process.js';
import { socketAnswers } from '../index.js';
import { proxyPaths, type ProxyState } from './proxy.js';

interface Args {
  service: string;
  identity: string;
  dir: string;
  key: string;
  idleMs: number;
  timeoutMs: number;
}

function parseArgs(argv: string[]): Args {
  const get = (name: string): string => {
    const i = argv.indexOf(`--${name}`);
    const v = i === -1 ? undefined : argv[i + 1];
    if (!v) throw new Error(`ralph ziti proxy: missing --${name}`);
    return v;
  };
  return {
    service: get('service'),
    identity: get('identity'),
    dir: get('dir'),
    key: get('key'),
    idleMs: Number(get('idle-ms')),
    timeoutMs: Number(get('timeout-ms')),
  };
}

const args = parseArgs(process.argv.slice(2));
const paths = proxyPaths(args.dir, args.key);
const address = `ziti:${args.service}`;
let told = false;

/** The one line for the starter; the pipe is closed by the starter right after it. */
function tell(line: string): void {
  if (told) return;
  told = true;
  try {
    writeSync(1, `${line.replace(/\s+/g, ' ')}\n`);
  } catch {
    /* the starter has gone: nobody to tell */
  }
}

function warn(message: string): void {
  process.stderr.write(`${new Date().toISOString()} warn ${address}: ${message}\n`);
}

const LOCK_WAIT_STEP_MS = 50;

/**
 * Takes DIR/KEY.lock (created exclusively, our pid inside) so that of two proxies started at once
 * only one claims the socket. A lock whose holder is dead is taken over.
 */
async function takeLock(deadline: number): Promise<() => void> {
  for (;;) {
    try {
      const fd = openSync(paths.lock, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(paths.lock, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let holder = 0;
    try {
      holder = Number(readFileSync(paths.lock, 'utf8').trim() || '0');
    } catch {
      continue; // released in between
    }
    // An empty file is a lock being written this instant: wait, as for a live holder.
    if (holder && !pidAlive(holder)) {
      rmSync(paths.lock, { force: true });
      continue;
    }
    // Another proxy is claiming the socket at this moment (a few ms): wait for it, bounded.
    if (Date.now() > deadline) throw new Error(`${paths.lock} is held by process ${holder}`);
    await new Promise((resolve) => setTimeout(resolve, LOCK_WAIT_STEP_MS));
  }
}

function writeState(tunneler: Tunneler, startedAt: string): void {
  const state: ProxyState = {
    pid: process.pid,
    tunnelerPid: tunneler.pid ?? 0,
    port: tunneler.port,
    service: args.service,
    identity: args.identity,
    startedAt,
    idleMs: args.idleMs,
  };
  const tmp = `${paths.state}.${process.pid}`;
  writeFileSync(tmp, JSON.stringify(state) + '\n', { mode: 0o600 });
  renameSync(tmp, paths.state);
}

/** Is DIR/KEY.json still ours (a proxy that replaced us must keep its files)? */
function stateIsOurs(): boolean {
  try {
    return (JSON.parse(readFileSync(paths.state, 'utf8')) as ProxyState).pid === process.pid;
  } catch {
    return false;
  }
}

async function main(): Promise<void> {
  process.umask(0o077);
  const deadline = Date.now() + args.timeoutMs;
  const release = await takeLock(deadline);
  let server: net.Server;
  try {
    if (await socketAnswers(paths.socket)) {
      tell('ready'); // another proxy serves this service and identity already
      release();
      process.exit(0);
    }
    rmSync(paths.socket, { force: true });
    server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(paths.socket, () => resolve());
    });
    chmodSync(paths.socket, 0o600);
  } finally {
    release();
  }

  const tunneler = new Tunneler(zitiBinary(address), args.service, args.identity, 'proxy', warn);
  const startedAt = new Date().toISOString();
  let startError: string | undefined;
  const upWaiters = new Set<(err?: Error) => void>();
  const wakeUpWaiters = (err?: Error) => {
    for (const w of upWaiters) w(err);
    upWaiters.clear();
  };
  tunneler.onReady = () => {
    writeState(tunneler, startedAt);
    wakeUpWaiters();
  };

  // The proxy's reason for a failed circuit ("tunnel failed" at error level), for the dialer.
  let lastFailure: { at: number; error: string } | undefined;
  const failureWaiters = new Set<() => void>();
  tunneler.onLine((l: ZitiLogLine) => {
    if (l.msg !== 'tunnel failed') return;
    lastFailure = { at: Date.now(), error: String(l.error ?? l.msg) };
    for (const w of failureWaiters) w();
    failureWaiters.clear();
  });

  let active = 0;
  let idleTimer: NodeJS.Timeout | undefined;
  let closing = false;
  const armIdle = () => {
    clearTimeout(idleTimer);
    idleTimer = setTimeout(() => void shutdown('idle'), args.idleMs);
  };

  const shutdown = async (why: string): Promise<void> => {
    if (closing) return;
    closing = true;
    clearTimeout(idleTimer);
    server.close();
    if (stateIsOurs()) {
      rmSync(paths.socket, { force: true });
      rmSync(paths.state, { force: true });
    }
    await tunneler.close();
    if (why !== 'idle') warn(`stopped (${why})`);
    process.exit(0);
  };
  for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(sig, () => void shutdown(sig));

  /** Resolves once the tunneler is up, or rejects with why it is not within the timeout. */
  const whenUp = (): Promise<void> =>
    tunneler.up
      ? Promise.resolve()
      : new Promise((resolve, reject) => {
          if (startError) return reject(new Error(startError));
          const timer = setTimeout(() => {
            upWaiters.delete(done);
            reject(new Error(startError ?? `ziti tunnel proxy is not up after ${args.timeoutMs} ms (restarting)`));
          }, args.timeoutMs);
          const done = (err?: Error) => {
            clearTimeout(timer);
            if (err) reject(err);
            else resolve();
          };
          upWaiters.add(done);
        });

  /** Why the proxy ended a connection before the daemon said a word: its "tunnel failed" line. */
  const failureReason = (since: number): Promise<string> =>
    new Promise((resolve) => {
      const pick = () => resolve(explainZitiError(args.service, args.identity, lastFailure!.error));
      if (lastFailure && lastFailure.at >= since) return pick();
      const timer = setTimeout(() => {
        failureWaiters.delete(onFailure);
        resolve(`the OpenZiti proxy closed the connection before ${args.service} answered`);
      }, 1000);
      const onFailure = () => {
        clearTimeout(timer);
        pick();
      };
      failureWaiters.add(onFailure);
    });

  /**
   * One lease: a command's ziti connection. It is told the proxy's port (`up PORT`) or why there is
   * none (`error …`), dials that port itself, and holds the lease open while its connection lives;
   * a lease line `why` asks why the proxy ended a connection before the daemon said a word.
   */
  const serveLease = async (lease: net.Socket): Promise<void> => {
    const since = Date.now();
    lease.setEncoding('utf8');
    let asked = '';
    lease.on('data', (d: string) => {
      asked = (asked + d).slice(-64); // only `why` lines are expected
      if (!asked.includes('why\n')) return;
      asked = '';
      void failureReason(since).then((why) => lease.writable && lease.write(`why ${why.replace(/\s+/g, ' ')}\n`));
    });
    lease.on('error', () => lease.destroy());
    try {
      await whenUp();
    } catch (err) {
      if (lease.writable) lease.end(`error ${(err as Error).message.replace(/\s+/g, ' ')}\n`);
      return;
    }
    if (lease.writable) lease.write(`up ${tunneler.port}\n`);
  };

  server.on('connection', (client: net.Socket) => {
    active++;
    clearTimeout(idleTimer);
    client.once('close', () => {
      active--;
      if (active === 0 && !closing) armIdle();
    });
    void serveLease(client);
  });

  try {
    await tunneler.start(args.timeoutMs);
  } catch (err) {
    startError = (err as Error).message.replace(/^ziti:\S+: /, '');
    tell(`error ${startError}`);
    wakeUpWaiters(new Error(startError));
    await shutdown(`could not start: ${startError}`);
    return;
  }
  tell('ready');
  if (active === 0) armIdle();
}

main().catch((err: Error) => {
  tell(`error ${address}: the OpenZiti proxy could not start: ${err.message}`);
  process.exit(1);
});
