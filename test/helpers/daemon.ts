// Shared test helper: the real `ralph daemon` process in a temp RALPH_HOME, and clients that speak to it.
//
//   const t = makeTempHome('ralph-d');
//   const d = await startDaemon(t, { listen: ['tcp://127.0.0.1:0'] });
//   const control = await d.control();            // RpcPeer on the control channel (tcp, with the daemon's token, if listening; else unix)
//   ralph remote add box --address ${d.tcp} --token-file ${d.tokenFile}
//   await control.request('daemon.info');
//   ...
//   await d.stop();                                // SIGTERM, waits for exit
//   killRunners(t.home);                           // runners outlive the daemon by design
//   t.cleanup();

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import Database from 'better-sqlite3';
import { openChannel, type HelloRequest } from '../../daemon/hello.js';
import type { HelloResult } from '../../daemon/protocol.js';
import { RpcPeer } from '../../rpc/peer.js';
import { RALPH_BIN, exited, type TempHome } from './env.js';

export interface DaemonOptions {
  /** --listen addresses (e.g. 'tcp://127.0.0.1:0'; the real port is read from the ready line). */
  listen?: string[];
  maxLoops?: number;
  /** More arguments for `ralph daemon`. */
  args?: string[];
  /** Extra environment (over the temp home's). */
  env?: NodeJS.ProcessEnv;
  /** How long to wait for the ready line (default 20 s). */
  readyTimeoutMs?: number;
}

export interface DaemonHandle {
  child: ChildProcess;
  pid: number;
  /** Every address from the ready line, the unix control socket first. */
  addresses: string[];
  /** unix:$RALPH_HOME/daemon.sock */
  unix: string;
  /** The first tcp:// address, with its real port (undefined without a tcp --listen). */
  tcp: string | undefined;
  /** $RALPH_HOME/daemon.token of the daemon, and the token in it (what a tcp client must present). */
  tokenFile: string;
  token: string;
  /** Everything the daemon wrote on stderr so far (its log). */
  log(): string;
  /** Resolves with the first log line (from now or already written) matching `re`. */
  waitForLog(re: RegExp, timeoutMs?: number): Promise<string>;
  /** A stream after a good hello on `address` (default: tcp if any, else unix); tcp hellos carry the token. */
  open(hello: HelloRequest, address?: string): Promise<{ stream: Duplex; result: HelloResult }>;
  /** An RpcPeer on the control channel. Closed by stop()/kill() if still open. */
  control(address?: string): Promise<RpcPeer>;
  /** A control peer subscribed to loop events; `events` collects every notification as it arrives. */
  subscribe(address?: string): Promise<{ peer: RpcPeer; events: Array<{ method: string; params: any }>; next(method: string, loopId?: string, timeoutMs?: number): Promise<any> }>;
  /** SIGTERM (or `signal`) and wait for the exit. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGKILL and wait for the exit (runners keep running). */
  kill(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const READY = /^ralph daemon: listening on (.+)$/m;

export async function startDaemon(t: TempHome, opts: DaemonOptions = {}): Promise<DaemonHandle> {
  const args = [RALPH_BIN, 'daemon', '--home', t.home];
  for (const a of opts.listen ?? []) args.push('--listen', a);
  if (opts.maxLoops !== undefined) args.push('--max-loops', String(opts.maxLoops));
  args.push(...(opts.args ?? []));
  const child = spawn(process.execPath, args, {
    env: { ...t.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const logWaiters: Array<{ re: RegExp; resolve: (line: string) => void }> = [];
  const checkWaiters = () => {
    for (const w of [...logWaiters]) {
      const line = stderr.split('\n').find((l) => w.re.test(l));
      if (line !== undefined) {
        logWaiters.splice(logWaiters.indexOf(w), 1);
        w.resolve(line);
      }
    }
  };
  child.stderr!.on('data', (d) => {
    stderr += d;
    if (process.env.RALPH_TEST_DAEMON_LOG) process.stderr.write(`[daemon ${child.pid}] ${d}`);
    checkWaiters();
  });
  const readyLine = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`ralph daemon printed no ready line within ${opts.readyTimeoutMs ?? 20_000} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, opts.readyTimeoutMs ?? 20_000);
    child.stdout!.on('data', (d) => {
      stdout += d;
      const m = READY.exec(stdout);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`ralph daemon exited (${code ?? signal}) before it was ready\nstdout: ${stdout}\nstderr: ${stderr}`));
    });
  });
  const addresses = readyLine.trim().split(/\s+/);
  const unix = addresses.find((a) => a.startsWith('unix:'))!;
  const tcp = addresses.find((a) => a.startsWith('tcp://'));
  const tokenFile = join(t.home, 'daemon.token');
  const token = readFileSync(tokenFile, 'utf8').trim();
  const peers: RpcPeer[] = [];
  const closePeers = () => {
    for (const p of peers.splice(0)) p.close('test daemon stopping');
  };

  const handle: DaemonHandle = {
    child,
    pid: child.pid!,
    addresses,
    unix,
    tcp,
    tokenFile,
    token,
    log: () => stderr,
    waitForLog(re, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          logWaiters.splice(logWaiters.indexOf(w), 1);
          reject(new Error(`daemon logged nothing matching ${re} within ${timeoutMs} ms; log:\n${stderr}`));
        }, timeoutMs);
        const w = {
          re,
          resolve: (line: string) => {
            clearTimeout(timer);
            resolve(line);
          },
        };
        logWaiters.push(w);
        checkWaiters();
      });
    },
    open(hello, address) {
      const to = address ?? tcp ?? unix;
      return openChannel(to, to.startsWith('tcp://') ? { token, ...hello } : hello, { timeoutMs: 5000 });
    },
    async control(address) {
      const { stream } = await handle.open({ channel: 'control', client: 'test' }, address);
      const peer = new RpcPeer(stream);
      peers.push(peer);
      return peer;
    },
    async subscribe(address) {
      const peer = await handle.control(address);
      const events: Array<{ method: string; params: any }> = [];
      const waiters: Array<{ method: string; loopId?: string; resolve: (p: any) => void }> = [];
      const onEvent = (method: string) => (params: any) => {
        events.push({ method, params });
        for (const w of [...waiters]) {
          if (w.method === method && (w.loopId === undefined || params?.loopId === w.loopId)) {
            waiters.splice(waiters.indexOf(w), 1);
            w.resolve(params);
          }
        }
      };
      for (const m of ['loop.started', 'loop.completed', 'loop.failed', 'loop.stopped']) peer.onNotification(m, onEvent(m));
      await peer.request('subscribe', {}, { timeoutMs: 5000 });
      return {
        peer,
        events,
        next(method, loopId, timeoutMs = 30_000) {
          const seen = events.find((e) => e.method === method && (loopId === undefined || e.params?.loopId === loopId));
          if (seen) return Promise.resolve(seen.params);
          return new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`no ${method} event${loopId ? ` for ${loopId}` : ''} within ${timeoutMs} ms; got ${JSON.stringify(events)}`)), timeoutMs);
            waiters.push({
              method,
              ...(loopId === undefined ? {} : { loopId }),
              resolve: (p) => {
                clearTimeout(timer);
                resolve(p);
              },
            });
          });
        },
      };
    },
    async stop(signal = 'SIGTERM') {
      closePeers();
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited(child);
    },
    async kill() {
      closePeers();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      return exited(child);
    },
  };
  return handle;
}

/**
 * SIGKILLs every loop runner recorded as open in this home's session DB (runners run in their own
 * session, so they outlive the daemon and the test file otherwise). Call it before t.cleanup().
 */
export function killRunners(home: string): number[] {
  const dbPath = join(home, 'ralph.db');
  if (!existsSync(dbPath)) return [];
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    db.pragma('busy_timeout = 5000');
    const rows = db.prepare("SELECT pid FROM loops WHERE pid IS NOT NULL AND status IN ('starting', 'running', 'paused')").all() as Array<{ pid: number }>;
    const killed: number[] = [];
    for (const { pid } of rows) {
      try {
        process.kill(pid, 'SIGKILL');
        killed.push(pid);
      } catch {
        /* already gone */
      }
    }
    return killed;
  } finally {
    db.close();
  }
}
