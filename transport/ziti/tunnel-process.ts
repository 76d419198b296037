// A `ziti` CLI child that ralph supervises: found once, started in its own process group, its JSON
// log lines read from stderr, and never left behind.
//
// Orphans: a child started with `watchdog: true` runs under a few lines of sh that hold a pipe from
// us on fd 3. When ralph goes away in any way — exit, crash, SIGKILL — the kernel closes that pipe,
// the watchdog reads end-of-file and sends SIGTERM to the ziti process (SIGKILL 3 s later). On a
// normal exit ralph also kills the whole group itself (`stopAllOnExit`). (Linux's PR_SET_PDEATHSIG
// would do the same, but only on Linux, and it fires when the spawning *thread* ends.)

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { ZitiError } from './errors.js';
import { zitiCacheDir } from './paths.js';

/** Environment variables naming the `ziti` CLI (v1.6.x); CI sets the first, install/get-ziti.sh reads the second. */
export const ZITI_BIN_ENVS = ['RALPH_ZITI_BIN', 'RALPH_ZITI'] as const;

/** One JSON log line of the ziti CLI (logrus JSON formatter). */
export interface ZitiLogLine {
  level?: string;
  msg?: string;
  error?: string;
  [field: string]: unknown;
}

function executable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Is a process with this pid alive (one we may not signal counts as alive)? */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

let found: string | undefined;

/** The `ziti` CLI: $RALPH_ZITI_BIN, $RALPH_ZITI, `ziti` on PATH, or the build cache of install/get-ziti.sh. */
export function zitiBinary(address: string): string {
  if (found) return found;
  for (const name of ZITI_BIN_ENVS) {
    const v = process.env[name];
    if (!v) continue;
    if (!executable(v)) throw new ZitiError(`${address}: ${name}=${v} is not an executable ziti CLI`, address);
    return (found = v);
  }
  const candidates = (process.env.PATH ?? '').split(delimiter).filter(Boolean).map((d) => join(d, 'ziti'));
  candidates.push(join(zitiCacheDir(), 'bin', 'ziti'));
  const hit = candidates.find(executable);
  if (!hit) {
    throw new ZitiError(
      `${address}: the ziti CLI (OpenZiti v1.6) was not found: put it on PATH or set RALPH_ZITI_BIN (install/get-ziti.sh builds one)`,
      address,
    );
  }
  return (found = hit);
}

/** Does this look like a working ziti CLI? (Used by tests and the bench to decide whether to skip.) */
export function zitiWorks(bin: string): boolean {
  const r = spawnSync(bin, ['version'], { env: { ...process.env, ZITI_CHECK_VERSION: 'false' }, encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 && /^v\d+\.\d+/.test(r.stdout.trim());
}

// fd 3 is our pipe: end-of-file on it means ralph is gone. The ziti process gets /dev/null on stdin.
const WATCHDOG = [
  '"$@" </dev/null &',
  'z=$!',
  '{ while read -r _ <&3; do :; done; kill -TERM "$z" 2>/dev/null; sleep 3; kill -KILL "$z" 2>/dev/null; } </dev/null &',
  'w=$!',
  "trap 'kill -TERM \"$z\" 2>/dev/null' TERM INT HUP",
  'while :; do wait "$z"; rc=$?; kill -0 "$z" 2>/dev/null || break; done',
  // ziti ended by itself: the guard must not stay behind (nor ever signal a recycled pid).
  'kill "$w" 2>/dev/null',
  // A private directory made for this ziti process only (its CLI agent socket): gone with it.
  'if [ -n "${RALPH_ZITI_OWN_DIR:-}" ]; then rm -rf -- "$RALPH_ZITI_OWN_DIR"; fi',
  'exit "$rc"',
].join('\n');

const live = new Set<ZitiProcess>();
let exitHookInstalled = false;

/** On process exit, every ziti group still running is killed (the watchdog covers abrupt deaths). */
function stopAllOnExit(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const p of live) p.killGroup('SIGKILL');
  });
}

export interface ZitiProcessOptions {
  /** Guard the child with the watchdog (its stdin is then not ours to use). */
  watchdog: boolean;
  /** Keep at most this many recent log lines for error messages. */
  keepLines?: number;
  /** More environment for the child. */
  env?: Record<string, string>;
}

/** A running `ziti` command. Log lines arrive through onLine; exit through `exited`. */
export class ZitiProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly recent: ZitiLogLine[] = [];
  private readonly lineHandlers = new Set<(line: ZitiLogLine) => void>();
  private partial = '';
  /** Drop debug and trace lines without parsing them (set once readiness has been seen). */
  ignoreDebug = false;
  private done = false;

  constructor(bin: string, args: string[], opts: ZitiProcessOptions) {
    const env = { ...process.env, ...opts.env, ZITI_CHECK_VERSION: 'false' };
    this.child = opts.watchdog
      ? spawn('/bin/sh', ['-c', WATCHDOG, 'ralph-ziti-watchdog', bin, ...args], {
          detached: true,
          env,
          stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
        })
      : spawn(bin, args, { detached: true, env, stdio: ['pipe', 'pipe', 'pipe'] });
    live.add(this);
    stopAllOnExit();
    const keep = opts.keepLines ?? 40;
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (chunk: string) => {
      const text = this.partial + chunk;
      const lines = text.split('\n');
      this.partial = lines.pop()!;
      for (const raw of lines) {
        if (this.lineHandlers.size === 0 && this.done) continue;
        // On the hot path (a --verbose tunneler logs every message): skip debug lines unparsed.
        if (this.ignoreDebug && (raw.includes('"level":"debug"') || raw.includes('"level":"trace"'))) continue;
        const line = parseLine(raw);
        if (!line) continue;
        if (line.level !== 'debug' && line.level !== 'trace') {
          this.recent.push(line);
          if (this.recent.length > keep) this.recent.shift();
        }
        for (const h of this.lineHandlers) h(line);
      }
    });
    // A watchdog pipe we never write to; keep it from holding our event loop open.
    const guard = this.child.stdio[3] as (NodeJS.WritableStream & { unref?: () => void; on: ChildProcess['on'] }) | null;
    guard?.on('error', () => {});
    this.exited = new Promise((resolve) => {
      this.child.once('error', () => {
        this.done = true;
        live.delete(this);
        resolve({ code: 127, signal: null });
      });
      this.child.once('exit', (code, signal) => {
        this.done = true;
        live.delete(this);
        resolve({ code, signal });
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return !this.done;
  }

  onLine(handler: (line: ZitiLogLine) => void): () => void {
    this.lineHandlers.add(handler);
    return () => this.lineHandlers.delete(handler);
  }

  /** The most recent error-level line's error (or message), for a one-line explanation. */
  lastError(): string | undefined {
    for (let i = this.recent.length - 1; i >= 0; i--) {
      const l = this.recent[i]!;
      if (typeof l.msg === 'string' && /resolvectl|systemd-resolve/.test(l.msg + String(l.error ?? ''))) continue;
      if (l.level === 'error' || l.level === 'fatal' || l.level === 'warning') return String(l.error ?? l.msg ?? '');
    }
    return undefined;
  }

  /**
   * Resolves with the first log line for which `match` is true; rejects when the process exits
   * first or nothing matches within timeoutMs (the error says which).
   */
  waitFor(match: (line: ZitiLogLine) => boolean, timeoutMs: number): Promise<ZitiLogLine> {
    return new Promise((resolve, reject) => {
      let off = () => {};
      const timer = setTimeout(() => {
        off();
        reject(new WaitTimeout(timeoutMs));
      }, timeoutMs);
      off = this.onLine((line) => {
        if (!match(line)) return;
        clearTimeout(timer);
        off();
        resolve(line);
      });
      void this.exited.then((how) => {
        clearTimeout(timer);
        off();
        reject(new WaitExited(how.code, how.signal));
      });
    });
  }

  /** Signals the whole process group (the ziti process may outlive its watchdog sh by a moment). */
  killGroup(signal: NodeJS.Signals): void {
    if (this.child.pid === undefined) return;
    try {
      process.kill(-this.child.pid, signal);
    } catch {
      /* the group is gone */
    }
  }

  /** SIGTERM to the group; SIGKILL after graceMs; resolves once the child has exited. */
  async stop(graceMs = 3000): Promise<void> {
    if (this.done) return;
    this.killGroup('SIGTERM');
    const timer = setTimeout(() => this.killGroup('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
    // The ziti process under a watchdog may outlive the sh by a moment; the group kill covers it.
    this.killGroup('SIGKILL');
  }
}

export class WaitTimeout extends Error {
  constructor(readonly timeoutMs: number) {
    super(`nothing within ${timeoutMs} ms`);
  }
}

export class WaitExited extends Error {
  constructor(
    readonly code: number | null,
    readonly signal: NodeJS.Signals | null,
  ) {
    super(`exited (${code ?? signal})`);
  }
}

function parseLine(raw: string): ZitiLogLine | undefined {
  const s = raw.trim();
  if (!s.startsWith('{')) return s ? { level: 'info', msg: s } : undefined;
  try {
    const v = JSON.parse(s) as unknown;
    return typeof v === 'object' && v !== null ? (v as ZitiLogLine) : undefined;
  } catch {
    return { level: 'info', msg: s };
  }
}
