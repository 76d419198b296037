// The daemon: listeners, the connection router (hello → control / loop / git), the loop supervisor
// and event fan-out. Runners are not its children in any way that matters: it can die and come back.

import { hostname } from 'node:os';
import type { Duplex } from 'node:stream';
import { readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ErrorCodes, RpcError, type ResponseError } from '../rpc/messages.js';
import { DEFAULT_AGENT_PACKAGES, agentBinary, agentsBinDir, findOnPath } from '../install/agents.js';
import { RpcPeer } from '../rpc/peer.js';
import type { Config } from '../store/config.js';
import { openDb, type Db } from '../store/db.js';
import { LoopStore } from '../store/loops.js';
import { ensurePrivateDir, homePaths, type HomePaths } from '../store/paths.js';
import { TokenError } from '../store/token.js';
import { endAndLinger, isLoopbackHost, listen, parseAddress, type Listener, type ZitiOptions } from '../transport/index.js';
import type { DaemonContext, DaemonLogger } from './context.js';
import { serveControl } from './control.js';
import { loadDeps, type LoopDeps } from './deps.js';
import { HelloError, helloErrorReply, helloReply, readHello, type HelloToken } from './hello.js';
import { busyAsRpcError, DAEMON_BUSY_TIMEOUT_MS } from './db-busy.js';
import { createLogger } from './log.js';
import { gitHelloProblem, handleGitChannel } from './git-service.js';
import { dialRunner, splice } from './loop-channel.js';
import { ControlNotifications, HELLO_TIMEOUT_MS, PROTOCOL_VERSION, type DaemonInfo, type HelloParams, type LoopResumeParams, type LoopStartParams } from './protocol.js';
import { DEFAULT_MAX_LOOPS, LoopStarter } from './start-loop.js';
import { Supervisor } from './supervisor.js';
import { loadOrCreateToken } from './token.js';

export interface DaemonOptions {
  /** RALPH_HOME of the daemon. */
  home: string;
  /** Addresses besides the always-on unix:$RALPH_HOME/daemon.sock. */
  listen?: string[];
  /** Accept a tcp address that is not loopback. */
  allowPublic?: boolean;
  maxLoops?: number;
  config: Config;
  /** How long a new connection may take to say hello (default HELLO_TIMEOUT_MS). */
  helloTimeoutMs?: number;
  ziti?: ZitiOptions;
  log?: DaemonLogger;
  deps?: () => Promise<LoopDeps>;
}

export interface RunningDaemon {
  /** Bound addresses, the unix control socket first (tcp ports are real ones). */
  addresses: string[];
  ctx: DaemonContext;
  /** Closes listeners, connections and the DB; loop runners keep running. */
  close(): Promise<void>;
}

/** A daemon that cannot start as asked; the message is one line for the user. */
export class DaemonSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DaemonSetupError';
  }
}

export function ralphVersion(): string {
  try {
    const pkg = join(fileURLToPath(import.meta.url), '..', '..', '..', 'package.json');
    return (JSON.parse(readFileSync(pkg, 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Refuses addresses the daemon must not bind, before anything is bound. */
export function checkListenAddresses(addresses: string[], allowPublic: boolean): void {
  for (const text of addresses) {
    let a;
    try {
      a = parseAddress(text);
    } catch (err) {
      throw new DaemonSetupError((err as Error).message);
    }
    if (a.kind === 'ssh') {
      throw new DaemonSetupError(
        `${text} is not for the daemon: over ssh, sshd runs \`ralph bridge\` on this box, which joins the daemon's unix socket; add the remote on the laptop with: ralph remote add NAME --ssh [USER@]HOST[:PORT]`,
      );
    }
    if (a.kind === 'tcp' && !isLoopbackHost(a.host) && !allowPublic) {
      throw new DaemonSetupError(
        `refusing to listen on ${text}: tcp is not encrypted, so anyone on the way could read the daemon's token and every byte of your loops. ` +
          `Listen on 127.0.0.1 and reach the daemon over ssh (ralph remote add NAME --ssh HOST) or OpenZiti, or pass --allow-public if this network is already private.`,
      );
    }
  }
}

export async function startDaemonServer(opts: DaemonOptions): Promise<RunningDaemon> {
  const log = opts.log ?? createLogger();
  const extra = opts.listen ?? [];
  checkListenAddresses(extra, opts.allowPublic ?? false);

  const paths: HomePaths = homePaths(opts.home);
  ensurePrivateDir(paths.home);
  let token: HelloToken;
  try {
    token = { token: loadOrCreateToken(paths.daemonToken), file: paths.daemonToken };
  } catch (err) {
    if (err instanceof TokenError) throw new DaemonSetupError(err.message);
    throw err;
  }
  // A short busy timeout: better-sqlite3 waits for another process's lock synchronously, and the
  // whole daemon (every client) waits with it. A request that finds the DB locked is told so.
  const db: Db = openDb(paths.db, { busyTimeoutMs: DAEMON_BUSY_TIMEOUT_MS });
  const store = new LoopStore(db);
  const host = hostname();
  const maxLoops = opts.maxLoops ?? opts.config.maxConcurrentLoops ?? DEFAULT_MAX_LOOPS;
  const helloTimeoutMs = opts.helloTimeoutMs ?? HELLO_TIMEOUT_MS;
  let depsPromise: Promise<LoopDeps> | undefined;
  const deps = () => (depsPromise ??= (opts.deps ?? loadDeps)().catch((err) => {
    depsPromise = undefined;
    throw err;
  }));

  const supervisor = new Supervisor(store, log);
  const starter = new LoopStarter({ paths, store, config: opts.config, log, host, maxLoops, supervisor, deps });
  const ctx: DaemonContext = {
    paths,
    store,
    config: opts.config,
    log,
    host,
    startLoop: (params: LoopStartParams, progress?: (line: string) => void) => starter.start(params, progress),
    resumeLoop: (params: LoopResumeParams, progress?: (line: string) => void) => starter.resume(params, progress),
    stopStarting: (loopId: string) => starter.stopStarting(loopId),
  };

  // Event fan-out to control connections that said `subscribe`.
  const subscribers = new Set<RpcPeer>();
  supervisor.onEvent((event, loop) => {
    for (const peer of subscribers) peer.notify(event, loop);
  });

  const info = (): DaemonInfo => ({
    version: ralphVersion(),
    protocol: PROTOCOL_VERSION,
    host,
    agents: agentsAvailable(paths),
    loopsRunning: starter.running(),
    maxLoops,
  });

  const { adopted, failed } = supervisor.adoptAll();
  if (adopted + failed > 0) log.info(`re-adopted ${adopted} running loop(s); ${failed} found dead and marked failed`);

  const connections = new Set<Duplex>();
  const peers = new Set<RpcPeer>();

  const refuse = (conn: Duplex, who: string, id: number | string | null, error: ResponseError) => {
    log.warn(`${who}: refused: ${error.message}`);
    if (conn.destroyed) return;
    endAndLinger(conn, helloErrorReply(id, error));
  };

  /** `needsToken`: the connection came in on a tcp listener, where nothing else says who it is. */
  const handleConnection = async (conn: Duplex, via: string, needsToken: boolean) => {
    connections.add(conn);
    conn.once('close', () => connections.delete(conn));
    conn.on('error', () => conn.destroy());
    const sock = conn as Duplex & { remoteAddress?: string; remotePort?: number };
    const who = sock.remoteAddress ? `${via} from ${sock.remoteAddress}:${sock.remotePort}` : via;
    let hello: { id: number | string; params: HelloParams };
    try {
      hello = await readHello(conn, { timeoutMs: helloTimeoutMs, ...(needsToken ? { token } : {}) });
    } catch (err) {
      if (err instanceof HelloError) refuse(conn, who, err.id, err.error);
      else conn.destroy();
      return;
    }
    const { id, params } = hello;
    const client = params.client ? ` (${params.client})` : '';
    const reply = () => conn.write(helloReply(id, { version: PROTOCOL_VERSION, channel: params.channel, host }));
    try {
      switch (params.channel) {
        case 'control': {
          reply();
          const peer = new RpcPeer(conn);
          peers.add(peer);
          peer.onClose(() => {
            peers.delete(peer);
            subscribers.delete(peer);
          });
          serveControl(peer, {
            ctx,
            supervisor,
            info,
            addSubscriber: (p) => {
              subscribers.add(p);
              log.info(`${who}${client}: subscribed to loop events`);
            },
            progressTo: (p) => (line: string) => void p.notify(ControlNotifications.progress, { line: line.replace(/^ralph: /, '') }),
          });
          return;
        }
        case 'loop': {
          const { row, runner } = await dialRunner(ctx, supervisor, params.loop);
          if (conn.destroyed) {
            runner.destroy();
            return;
          }
          log.info(`${who}${client}: attached to loop ${row.id}`);
          reply();
          connections.add(runner);
          runner.once('close', () => connections.delete(runner));
          splice(conn, runner);
          return;
        }
        case 'git': {
          // The daemon answers the hello (refusing a bad repo name, or fetching a repo that does not
          // exist, with an error reply); the git service gets the stream right after the reply.
          const problem = gitHelloProblem(params, ctx);
          if (problem) throw new RpcError(ErrorCodes.Refused, problem);
          log.info(`${who}${client}: ${params.service} ${params.repo}${params.pushId ? ` (push ${params.pushId})` : ''}`);
          reply();
          // Not awaited (the connection is git's now); its failure is one connection's, never the daemon's.
          handleGitChannel(conn, params, ctx).catch((err: unknown) => {
            log.error(`${who}${client}: git channel failed: ${(err as Error)?.message ?? String(err)}`);
            conn.destroy();
          });
          return;
        }
      }
    } catch (thrown) {
      const err = busyAsRpcError(thrown);
      const error: ResponseError =
        err instanceof RpcError
          ? { code: err.code, message: err.message, ...(err.data === undefined ? {} : { data: err.data }) }
          : { code: ErrorCodes.InternalError, message: (err as Error).message };
      refuse(conn, who, id, error);
    }
  };

  // Listen: the unix control socket first (hooks and local CLIs), then every --listen address.
  const listeners: Listener[] = [];
  try {
    for (const address of [`unix:${paths.daemonSocket}`, ...extra]) {
      let l: Listener;
      try {
        l = await listen(address, opts.ziti ? { ziti: { warn: log.warn, ...opts.ziti } } : {});
      } catch (err) {
        throw new DaemonSetupError(`cannot listen on ${address}: ${(err as Error).message}`);
      }
      listeners.push(l);
      const via = l.address.startsWith('unix:') ? 'unix' : l.address;
      const needsToken = parseAddress(address).kind === 'tcp';
      l.onConnection((conn) => void handleConnection(conn, via, needsToken));
      if (needsToken) log.info(`${l.address} asks every connection for the token in ${paths.daemonToken} (on the laptop: ralph remote add NAME --address ${l.address} --token-file COPY)`);
    }
  } catch (err) {
    await Promise.all(listeners.map((l) => l.close()));
    supervisor.close();
    db.close();
    throw err;
  }

  let closing: Promise<void> | undefined;
  return {
    addresses: listeners.map((l) => l.address),
    ctx,
    close: () =>
      (closing ??= (async () => {
        const done = Promise.all(listeners.map((l) => l.close()));
        for (const p of peers) p.close('daemon shutting down');
        for (const c of connections) c.destroy();
        supervisor.close();
        await done;
        db.close();
      })()),
  };
}

/** Which agent CLIs this box can run now: installed under $RALPH_HOME/agents or on PATH. */
function agentsAvailable(paths: HomePaths): DaemonInfo['agents'] {
  const out: DaemonInfo['agents'] = {};
  const search = [agentsBinDir(paths), process.env.PATH ?? ''].join(delimiter);
  for (const agent of Object.keys(DEFAULT_AGENT_PACKAGES)) {
    const path = findOnPath(agentBinary(agent), search);
    out[agent] = { available: path !== null, path };
  }
  return out;
}
