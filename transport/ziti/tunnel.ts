// Backend 2 for ziti addresses: the `ziti` CLI (OpenZiti v1.6), supervised by ralph.
//
// Daemon side — `ziti tunnel host`:
//   The daemon listens on tcp 127.0.0.1:PORT, and `ziti tunnel host -i IDENTITY` carries every
//   client of the service there. PORT is the one the service's host.v1 config forwards to
//   (`{"protocol":"tcp","address":"127.0.0.1","port":PORT}`): the OpenZiti admin chose it, so ralph
//   is told it — opts.hostPort, else $RALPH_ZITI_HOST_PORT. Ready means the tunneler logged
//   (with --verbose) "listener established … serviceName S": its terminator exists and a dial
//   succeeds from then on. The info-level "hosting service" line comes ~100 ms before the bind, so it
//   is not used. Once ready, the log level goes back to info through the tunneler's CLI agent (its
//   socket in a private $TMPDIR): at debug it logs every message, which costs latency and
//   throughput. The wait is bounded by $RALPH_ZITI_TIMEOUT_MS (default 15 s); a tunneler that dies
//   later is restarted with backoff (0.2 s doubling to 10 s, reset after 30 s up); close stops it.
//   `ziti tunnel host` hosts every service its identity may bind: give the daemon's identity Bind
//   on its own service only.
//   Anyone on the box who can reach 127.0.0.1:PORT reaches that port too; ./index.ts lets no
//   connection through without a proof of an enrolled identity (./auth.ts).
//
// Client side, two modes ($RALPH_ZITI_CLIENT):
//   proxy (default) — a shared `ziti tunnel proxy S:0` per service and identity, owned by a detached
//     ralph process (./proxy-main.ts, ./proxy.ts), reused by every command while it lives. The proxy
//     binds 0.0.0.0 (hard-coded, no flag); the proof of identity makes that port worthless to anyone
//     else, and the owner ends it after a minute unused.
//   zcat — `ziti demo zcat -i IDENTITY ziti:S`, one process per connection: it dials the service
//     with the Go SDK and joins it to its own stdin/stdout, so nothing listens at all; end-of-stream
//     works both ways (stdin EOF → CloseWrite; remote EOF → zcat exits), and its errors are precise
//     ("service 'S' not found" = may not dial; "has no terminators" = nobody hosts S; the controller
//     refusing the connection). The price: each connection authenticates afresh, ~0.3–0.6 s on
//     loopback instead of ~0.1 s through a warm proxy. zcat runs without -v (at debug it logs every
//     message): the Duplex is handed out at once, and a failed dial arrives as a DialError on it.
//     A zcat lives exactly as long as its connection; if ralph dies, its stdin closes and its stdout
//     breaks, and it exits.
//
// End of stream: both report EOF; a killed tunneler also looks like a clean EOF (see
// install/ZITI-NOTES.md) — the protocol layer copes (clients resubscribe from seq).

import { EventEmitter } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { DialError, type Listener, type ZitiOptions } from '../index.js';
import { controllerRefused, mayNotUse, noDaemonHosting, unreachableController, ZitiError } from './errors.js';
import { controllerOf } from './identity.js';
import { pidAlive, WaitExited, WaitTimeout, ZitiProcess, zitiBinary, type ZitiLogLine } from './tunnel-process.js';

/** Environment variable: how the laptop side dials, `proxy` (shared `ziti tunnel proxy`, default) or `zcat`. */
export const CLIENT_ENV = 'RALPH_ZITI_CLIENT';
/** Environment variable: the local port the service's host.v1 config forwards to (daemon side). */
export const HOST_PORT_ENV = 'RALPH_ZITI_HOST_PORT';
const TIMEOUT_ENV = 'RALPH_ZITI_TIMEOUT_MS';
const DEFAULT_READY_TIMEOUT_MS = 15_000;
const RESTART_MIN_MS = 200;
const RESTART_MAX_MS = 10_000;
const STABLE_AFTER_MS = 30_000;
/** After the tunneler lists its services, how long the service it should host may take to appear. */
const NOT_BOUND_GRACE_MS = 2000;

export type TunnelOptions = ZitiOptions & {
  identityFile: string;
  /** The daemon's local port (host side); else $RALPH_ZITI_HOST_PORT. */
  hostPort?: number;
};

function readyTimeoutMs(): number {
  const v = Number(process.env[TIMEOUT_ENV]);
  return Number.isFinite(v) && v > 0 ? v : DEFAULT_READY_TIMEOUT_MS;
}

function hostPortFor(service: string, opts: TunnelOptions): number {
  const address = `ziti:${service}`;
  const given = opts.hostPort ?? process.env[HOST_PORT_ENV];
  if (given === undefined || given === '') {
    throw new ZitiError(
      `${address}: the tunnel backend needs the local port that service ${service}'s host.v1 config forwards to: set ${HOST_PORT_ENV}=PORT`,
      address,
    );
  }
  const port = Number(given);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ZitiError(`${address}: bad ${HOST_PORT_ENV} ${JSON.stringify(String(given))}: expected a port number 1-65535`, address);
  }
  return port;
}

/** A ziti CLI error as one line that says what is wrong, naming the identity file or the service. */
export function explainZitiError(service: string, identityFile: string, error: string): string {
  if (/service '[^']*' not found|NOT_FOUND/.test(error)) return mayNotUse('dial', service, identityFile);
  if (/has no terminators/.test(error)) return noDaemonHosting(service);
  if (/no apiSession|authenticat/i.test(error)) {
    const controller = controllerOf(identityFile);
    if (/connection refused|no such host|i\/o timeout|network is unreachable|context deadline|EOF/i.test(error)) {
      return unreachableController(controller, identityFile);
    }
    return controllerRefused(controller, identityFile, error.replace(/\s+/g, ' ').slice(0, 200));
  }
  if (/unable to load ziti identity/.test(error)) return `ziti cannot use identity ${identityFile}: ${error}`;
  return error.replace(/\s+/g, ' ');
}

// ---------------------------------------------------------------------------------------------
// Daemon side

/**
 * Supervises one `ziti tunnel host` (the daemon's side) or `ziti tunnel proxy S:0` (the laptop's,
 * see ./proxy-main.ts): ready-wait, restart with backoff, stop.
 */
export class Tunneler {
  private proc: ZitiProcess | undefined;
  /** The proxy's local port, known once it is listening (0 for a host). */
  port = 0;
  /** Called after every start that reached readiness, the first and each restart. */
  onReady: () => void = () => {};
  private readonly lineHandlers = new Set<(line: ZitiLogLine) => void>();

  /** Every log line of this tunneler and of those that replace it; returns the unsubscribe. */
  onLine(handler: (line: ZitiLogLine) => void): () => void {
    this.lineHandlers.add(handler);
    return () => this.lineHandlers.delete(handler);
  }

  /** Is a tunneler up and ready (between a death and its restart's readiness, none is)? */
  up = false;
  private closed = false;
  private backoffMs = RESTART_MIN_MS;
  private restartTimer: NodeJS.Timeout | undefined;
  private readonly address: string;
  /** Private $TMPDIR of the current tunneler: its CLI agent socket lives there. */
  private agentDir: string | undefined;

  constructor(
    private readonly bin: string,
    private readonly service: string,
    private readonly identityFile: string,
    private readonly mode: 'host' | 'proxy',
    private readonly warn: (message: string) => void,
  ) {
    this.address = `ziti:${service}`;
  }

  /** What this tunneler does to the service, for messages: host it, or dial it. */
  private get verb(): 'host' | 'dial' {
    return this.mode === 'host' ? 'host' : 'dial';
  }

  /** Starts the tunneler and resolves once it hosts the service; one clear error otherwise. */
  async start(timeoutMs: number): Promise<void> {
    // --verbose for the one reliable readiness line; then the log level goes down to info through
    // the tunneler's CLI agent, whose socket Go puts in $TMPDIR: a private directory of ours (0700).
    // The watchdog removes the directory when the tunneler ends, even if ralph was killed.
    const agentDir = mkdtempSync(join(tmpdir(), 'ralph-ziti-'));
    this.agentDir = agentDir;
    // A proxy on port 0: the kernel picks a free port, and the ready line says which.
    const what = this.mode === 'host' ? ['tunnel', 'host'] : ['tunnel', 'proxy', `${this.service}:0`];
    const proc = new ZitiProcess(
      this.bin,
      [...what, '--identity', this.identityFile, '--verbose', '--log-formatter', 'json'],
      { watchdog: true, env: { TMPDIR: agentDir, RALPH_ZITI_OWN_DIR: agentDir } },
    );
    this.proc = proc;
    proc.onLine((l) => {
      for (const h of this.lineHandlers) h(l);
    });
    // An identity that may not bind (dial) the service: the tunneler lists its services and adds none by
    // that name (the "adding service" line follows the list at once); say so instead of timing out.
    let listed = false;
    let added = false;
    let notBound: NodeJS.Timeout | undefined;
    const mayNotBind = new Promise<never>((_, reject) => {
      const off = proc.onLine((l) => {
        if (l.msg === 'adding service' && l.service === this.service) added = true;
        if (l.level === 'error' && typeof l.msg === 'string' && /^failed to authenticat/.test(l.msg)) {
          off();
          reject(new ZitiError(`${this.address}: ${explainZitiError(this.service, this.identityFile, `${l.msg}: ${String(l.error ?? '')}`)}`, this.address));
        }
        if (!listed && typeof l.msg === 'string' && l.msg.startsWith('processing service updates')) {
          listed = true;
          notBound = setTimeout(() => {
            off();
            if (!added) reject(new ZitiError(`${this.address}: ${mayNotUse(this.verb, this.service, this.identityFile)}`, this.address));
          }, NOT_BOUND_GRACE_MS);
        }
      });
      void proc.exited.then(off);
    });
    mayNotBind.catch(() => {});
    try {
      const ready = await Promise.race([proc.waitFor((l) => this.isReady(l), timeoutMs), mayNotBind]);
      clearTimeout(notBound);
      if (this.mode === 'proxy') this.port = Number(/:(\d+)$/.exec(String(ready.addr))![1]);
    } catch (err) {
      clearTimeout(notBound);
      await proc.stop();
      rmSync(agentDir, { recursive: true, force: true });
      throw err instanceof ZitiError ? err : new ZitiError(this.startFailure(proc, err, timeoutMs), this.address);
    }
    proc.ignoreDebug = true;
    await this.quieten();
    this.up = proc.running;
    if (this.up) this.onReady();
    const upSince = Date.now();
    void proc.exited.then((how) => {
      if (this.proc === proc) this.up = false;
      proc.killGroup('SIGKILL'); // whatever of its group is left (nothing, normally)
      rmSync(agentDir, { recursive: true, force: true });
      if (this.closed || this.proc !== proc) return;
      if (Date.now() - upSince >= STABLE_AFTER_MS) this.backoffMs = RESTART_MIN_MS;
      const why = proc.lastError();
      this.warn(`ziti tunnel ${this.mode} exited (${how.code ?? how.signal})${why ? `: ${why}` : ''}; restarting in ${this.backoffMs} ms`);
      this.scheduleRestart(timeoutMs);
    });
  }

  /**
   * Lowers the running tunneler's log level to info: with debug on it logs every message it
   * carries, which costs latency and throughput. Best effort: if it fails, the debug lines are
   * dropped unparsed (ignoreDebug) and nothing else changes.
   */
  private async quieten(): Promise<void> {
    const dir = this.agentDir;
    if (!dir) return;
    const sock = readdirSync(dir).map((n) => /^gops-agent\.(\d+)\.sock$/.exec(n)).find((m) => m && this.proc?.running && pidAlive(Number(m[1])));
    if (!sock) return;
    // A one-shot command with a deadline: execa's timeout, and a failure is just a result.
    const { execa } = await import('execa');
    await execa(this.bin, ['agent', 'set-log-level', 'info', '--pid', sock[1]!, '--timeout', '3s'], {
      env: { TMPDIR: dir, ZITI_CHECK_VERSION: 'false' },
      stdio: 'ignore',
      reject: false,
      timeout: 5000,
      killSignal: 'SIGKILL',
    });
  }

  private isReady(l: ZitiLogLine): boolean {
    if (typeof l.msg !== 'string') return false;
    if (this.mode === 'proxy') return l.msg === 'service is listening' && l.service === this.service && /:\d+$/.test(String(l.addr));
    return l.msg.startsWith('listener established') && l.serviceName === this.service;
  }

  private startFailure(proc: ZitiProcess, err: unknown, timeoutMs: number): string {
    const last = proc.lastError();
    const id = this.identityFile;
    if (last && /no apiSession|authenticat|unable to load/i.test(last)) return `${this.address}: ${explainZitiError(this.service, id, last)}`;
    const cmd = `ziti tunnel ${this.mode}`;
    const doing = this.mode === 'host' ? 'hosting' : 'proxying';
    if (err instanceof WaitExited) {
      return `${this.address}: ${cmd} (identity ${id}) exited ${err.code ?? err.signal} before ${doing} ${this.service}${last ? `: ${last}` : ''}`;
    }
    if (err instanceof WaitTimeout) {
      const policy = this.mode === 'host' ? 'bind it (a Bind policy)' : 'dial it (a Dial policy)';
      return (
        `${this.address}: ${cmd} (identity ${id}) was not ${doing} service ${this.service} after ${timeoutMs} ms: ` +
        `may identity ${id} ${policy}, and is the controller ${controllerOf(id)} reachable?${last ? ` (last error: ${last})` : ''}`
      );
    }
    return `${this.address}: ${cmd}: ${(err as Error).message}`;
  }

  private scheduleRestart(timeoutMs: number): void {
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, RESTART_MAX_MS);
    this.restartTimer = setTimeout(() => {
      if (this.closed) return;
      this.start(timeoutMs).then(
        () => this.warn(`ziti tunnel ${this.mode} restarted; ${this.mode === 'host' ? 'hosting' : 'proxying'} ${this.service} again`),
        (err: Error) => {
          if (this.closed) return;
          this.warn(`${err.message}; retrying in ${this.backoffMs} ms`);
          this.scheduleRestart(timeoutMs);
        },
      );
    }, delay);
  }

  /** The tunneler's pid (its watchdog's group), for tests that kill it. */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.restartTimer);
    await this.proc?.stop();
    if (this.agentDir) rmSync(this.agentDir, { recursive: true, force: true });
  }
}

class TunnelListener extends EventEmitter implements Listener {
  constructor(
    readonly address: string,
    private readonly server: net.Server,
    private readonly host: Tunneler,
  ) {
    super();
    server.on('connection', (sock) => {
      sock.setNoDelay(true);
      this.emit('connection', sock);
    });
  }
  onConnection(handler: (conn: Duplex) => void): void {
    this.on('connection', handler);
  }
  async close(): Promise<void> {
    await Promise.all([this.host.close(), new Promise<void>((resolve) => this.server.close(() => resolve()))]);
  }
}

/** Hosts `service`: the daemon's tcp 127.0.0.1:PORT, carried by a supervised `ziti tunnel host`. */
export async function listenTunnel(service: string, opts: TunnelOptions): Promise<Listener> {
  const address = `ziti:${service}`;
  const port = hostPortFor(service, opts);
  const bin = zitiBinary(address);
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new ZitiError(`${address}: cannot listen on 127.0.0.1:${port} (${HOST_PORT_ENV}): ${err.code === 'EADDRINUSE' ? 'the port is in use' : err.message}`, address)),
    );
    server.listen({ host: '127.0.0.1', port }, () => resolve());
  });
  const warn = (m: string) => process.stderr.write(`${new Date().toISOString()} warn ${address}: ${m}\n`);
  const host = new Tunneler(bin, service, opts.identityFile, 'host', warn);
  try {
    await host.start(readyTimeoutMs());
  } catch (err) {
    server.close();
    throw err;
  }
  return new TunnelListener(address, server, host);
}

// ---------------------------------------------------------------------------------------------
// Client side

/** A zcat process's stdin and stdout as one Duplex; destroying it ends the process. */
class ZcatStream extends Duplex {
  /** Has the far side sent anything yet (then the circuit is up)? */
  answered = false;

  constructor(private readonly proc: ZitiProcess) {
    super({ allowHalfOpen: false });
    const { stdin, stdout } = proc.child;
    stdout!.on('data', (chunk: Buffer) => {
      this.answered = true;
      if (!this.push(chunk)) stdout!.pause();
    });
    // The end comes once stdout has ended AND stderr is read to its end: a zcat that failed to dial
    // says why on stderr, and that reason must win over a bare end-of-stream.
    const ended = (s: NodeJS.ReadableStream) => new Promise<void>((resolve) => (s.once('end', resolve), s.once('close', resolve)));
    void Promise.all([ended(stdout!), ended(proc.child.stderr!)]).then(() => {
      if (!this.destroyed && !this.readableEnded) this.push(null);
    });
    stdout!.on('error', (err) => this.destroy(err));
    stdin!.on('error', () => {
      /* the process is gone; its exit ends the stream */
    });
  }
  override _read(): void {
    this.proc.child.stdout!.resume();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const stdin = this.proc.child.stdin!;
    if (stdin.destroyed || !this.proc.running) return cb(new Error('the ziti connection has closed'));
    stdin.write(chunk, (err) => cb(err ?? null));
  }
  override _final(cb: (err?: Error | null) => void): void {
    const stdin = this.proc.child.stdin!;
    if (stdin.destroyed || stdin.writableEnded) return cb();
    stdin.end(() => cb());
  }
  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    if (this.proc.running) this.proc.killGroup('SIGTERM');
    this.proc.child.stdin!.destroy();
    this.proc.child.stdout!.destroy();
    cb(err);
  }
}

/**
 * Dials `service` with the identity through `ziti demo zcat`. The Duplex comes back at once: bytes
 * written wait in zcat's stdin until its circuit is up (so a hello is sent without a round trip of
 * waiting). zcat says nothing when it connects — unless run with -v, which logs every message and
 * costs latency and throughput — but it says exactly why when it cannot: that fatal line destroys
 * the stream with a DialError ("identity X may not dial service S", "no daemon is hosting S", the
 * controller unreachable), which the reader of the first reply gets. A zcat that neither connects
 * nor fails within timeoutMs is ended with "no connection within".
 */
export async function dialTunnel(service: string, opts: TunnelOptions, timeoutMs: number): Promise<Duplex> {
  const address = `ziti:${service}`;
  const mode = process.env[CLIENT_ENV] || 'proxy';
  if (mode === 'proxy') {
    const { dialProxy } = await import('./proxy.js');
    return dialProxy(service, opts.identityFile, timeoutMs);
  }
  if (mode !== 'zcat') throw new DialError(`${address}: unknown ${CLIENT_ENV} ${JSON.stringify(mode)}: use proxy or zcat`, address);
  const bin = zitiBinary(address);
  const proc = new ZitiProcess(bin, ['demo', 'zcat', '--log-formatter', 'json', '-i', opts.identityFile, address], { watchdog: false });
  const stream = new ZcatStream(proc);
  const off = proc.onLine((l) => {
    if (l.level !== 'fatal') return;
    off();
    stream.destroy(new DialError(`cannot connect to ${address}: ${explainZitiError(service, opts.identityFile, String(l.error ?? l.msg))}`, address));
  });
  const timer = setTimeout(() => {
    if (stream.answered || stream.destroyed) return;
    stream.destroy(new DialError(`${address}: no connection within ${timeoutMs} ms (service ${service}, identity ${opts.identityFile})`, address));
  }, timeoutMs);
  timer.unref();
  stream.once('close', () => clearTimeout(timer));
  return stream;
}
