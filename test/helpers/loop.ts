// Loop test helpers: start a real loop runner over a fixture agent, and a client for its socket
// that records every event and checks the output stream for gaps and duplicates as it arrives.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { isUtf8 } from 'node:buffer';
import {
  LOOP_PROTOCOL,
  type CompletedEvent,
  type LoopStatusResult,
  type OutputEvent,
  type SubscribeParams,
  type SubscribeResult,
} from '../../loop/protocol.js';
import { launchRunner } from '../../loop/launch.js';
import { prepareLoop, type PrepareRequest } from '../../loop/prepare.js';
import { RpcPeer } from '../../rpc/index.js';
import { openDb, type Db } from '../../store/db.js';
import { isFinal, LoopStore, type LoopRow } from '../../store/loops.js';
import { homePaths, type HomePaths } from '../../store/paths.js';
import { dial } from '../../transport/index.js';
import { alive, FIXTURES, makeTempHome, waitUntil, type TempHome } from './env.js';
import { makeTaskRepo, type TaskRepo, type TaskRepoOptions } from './task.js';

export const AGENT_FIXTURE = join(FIXTURES, 'agent.mjs');

/** The --agent-cmd that runs the fixture agent with these steps (see test/fixtures/agent.mjs). */
export function fixtureAgentCmd(steps = 'work'): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  // exec: the agent itself leads the PTY session, as a real agent CLI would.
  return `exec ${q(process.execPath)} ${q(AGENT_FIXTURE)} ${steps}`;
}

/**
 * A process that liveness checks take for loop `loopId`'s runner (node running …/loop/main.js
 * <loopId>, as launch.ts starts runners) and that does nothing until killed: a row can have a live
 * runner without a loop running. `dir` holds its script.
 */
export async function standInRunner(dir: string, loopId: string): Promise<ChildProcess> {
  const script = join(dir, 'stand-in', 'loop', 'main.js');
  mkdirSync(dirname(script), { recursive: true });
  writeFileSync(script, 'setInterval(() => {}, 1 << 30);\n');
  const child = spawn(process.execPath, [script, loopId], { stdio: 'ignore' });
  await once(child, 'spawn');
  return child;
}

/** A process that has exited (or is a zombie waiting to be reaped): it runs no more code. */
export function gone(pid: number): boolean {
  if (!alive(pid)) return true;
  try {
    return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return true;
  }
}

/**
 * A shell command that starts a tool as Claude Code does, in a session of its own (setsid) and not on
 * the agent's stdout, in the background: it writes its pid to `<dir>/<name>.pid`, and with `stubborn`
 * ignores SIGTERM; it waits 5 minutes in `dir` (by which endLeftTools knows it).
 */
export function toolInOwnSession(dir: string, name: string, stubborn = false): string {
  writeFileSync(join(dir, `${name}.sh`), `${stubborn ? "trap '' TERM; " : ''}cd ${dir} && echo $$ > ${dir}/${name}.pid && exec sleep 300\n`);
  return `setsid sh ${dir}/${name}.sh </dev/null >/dev/null 2>&1 &`;
}

/** The pid written to `file` (a whole line), once it is. */
export function pidIn(file: string): Promise<number> {
  return waitUntil(() => (existsSync(file) && readFileSync(file, 'utf8').endsWith('\n') ? Number(readFileSync(file, 'utf8')) : undefined), { what: `a pid in ${file}` });
}

/**
 * Kills the tools of toolInOwnSession(dir, …) that still run: a test that failed may have left them.
 * A pid that is another process's by now (its cwd is not `dir`) is left alone.
 */
export function endLeftTools(dir: string): void {
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.pid'))) {
    const pid = Number(readFileSync(join(dir, f), 'utf8'));
    try {
      if (readlinkSync(`/proc/${pid}/cwd`) === dir) process.kill(pid, 'SIGKILL');
    } catch {
      /* gone, as it should be */
    }
  }
}

type Notification = { method: string; params: any };

export class LoopClient {
  readonly events: Notification[] = [];
  /** Each `output` event, its payload decoded. */
  readonly outputs: Array<OutputEvent & { data: string }> = [];
  /** Everything received as output, in order. */
  output = '';
  /** Offset just past the last output received (null before subscribing). */
  nextSeq: number | null = null;
  /** Output events that did not start where the previous one ended. */
  readonly gaps: string[] = [];
  private readonly listeners = new Set<() => void>();

  constructor(readonly peer: RpcPeer) {
    for (const method of ['state', 'iteration', 'completed', 'writeRefused']) {
      peer.onNotification(method, (params) => {
        this.events.push({ method, params });
        this.changed();
      });
    }
    peer.onNotification('output', (params, _peer, payload) => {
      const e = params as OutputEvent;
      if (payload === undefined) {
        this.gaps.push(`an output event at ${e.seq} without a payload frame`);
        return;
      }
      if (this.nextSeq !== null && e.seq !== this.nextSeq) this.gaps.push(`expected seq ${this.nextSeq}, got ${e.seq}`);
      if (!isUtf8(payload)) this.gaps.push(`the output event at ${e.seq} is not whole UTF-8 characters`);
      const data = payload.toString('utf8');
      this.outputs.push({ ...e, data });
      this.output += data;
      this.nextSeq = e.seq + payload.length;
      this.changed();
    });
    peer.onClose(() => this.changed());
  }

  static async connect(socketPath: string): Promise<LoopClient> {
    return new LoopClient(new RpcPeer(await dial(`unix:${socketPath}`)));
  }

  request<T = any>(method: string, params?: unknown): Promise<T> {
    return this.peer.request<T>(method, params, { timeoutMs: 20_000 });
  }

  status(): Promise<LoopStatusResult> {
    return this.request('status');
  }

  async subscribe(params: SubscribeParams = {}): Promise<SubscribeResult> {
    // Events may arrive before this continuation runs (same socket read): check them against r.seq.
    this.nextSeq = null;
    const first = this.outputs.length;
    const r = await this.request<SubscribeResult>('subscribe', { protocol: LOOP_PROTOCOL, ...params });
    const firstEvent = this.outputs[first];
    if (firstEvent === undefined) this.nextSeq = r.seq;
    else if (firstEvent.seq !== r.seq) this.gaps.push(`subscribed at ${r.seq}, first event at ${firstEvent.seq}`);
    return r;
  }

  /** Resolves with check()'s value once it is truthy, re-checking on every event from the runner. */
  waitFor<T>(what: string, check: () => T | undefined | null | false, timeoutMs = 30_000): Promise<T> {
    return new Promise((resolve, reject) => {
      const listener = () => {
        let v: T | undefined | null | false;
        try {
          v = check();
        } catch (err) {
          done();
          reject(err);
          return;
        }
        if (v) {
          done();
          resolve(v);
        } else if (this.peer.closed) {
          done();
          reject(new Error(`connection closed while waiting for ${what}; output so far:\n${this.output.slice(-2000)}`));
        }
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`timed out waiting for ${what}; output so far:\n${this.output.slice(-2000)}`));
      }, timeoutMs);
      const done = () => {
        clearTimeout(timer);
        this.listeners.delete(listener);
      };
      this.listeners.add(listener);
      listener();
    });
  }

  waitForEvent(method: string, pred: (params: any) => boolean = () => true): Promise<any> {
    return this.waitFor(`a ${method} event`, () => this.events.find((e) => e.method === method && pred(e.params))?.params);
  }

  waitForOutput(pattern: RegExp | string): Promise<string> {
    const re = typeof pattern === 'string' ? new RegExp(pattern.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')) : pattern;
    return this.waitFor(`output matching ${re}`, () => (re.test(this.output) ? this.output : undefined));
  }

  /** Waits for the `completed` event and for the output up to its seq. */
  async waitForEnd(): Promise<CompletedEvent> {
    const end: CompletedEvent = await this.waitForEvent('completed');
    await this.waitFor(`output up to ${end.seq}`, () => (this.nextSeq ?? 0) >= end.seq);
    return end;
  }

  /**
   * Subscribes from the start (unless already subscribed) and waits for the loop's end and for all
   * of its output. Works whether the loop ends before or after this client came.
   */
  async watchToEnd(): Promise<CompletedEvent> {
    if (this.nextSeq === null) await this.subscribe({ fromSeq: 0 });
    const status = await this.status();
    const end: CompletedEvent = isFinal(status.status)
      ? { status: status.status, reason: status.reason, iteration: status.iteration, seq: status.seq }
      : await this.waitForEvent('completed');
    await this.waitFor(`output up to ${end.seq}`, () => (this.nextSeq ?? 0) >= end.seq);
    return end;
  }

  close(): void {
    this.peer.close('test done');
  }

  private changed(): void {
    for (const l of [...this.listeners]) l();
  }
}

export interface StartedLoop {
  row: LoopRow;
  /** The runner's pid. */
  pid: number;
  repo: TaskRepo;
}

/** One test's world: a temp RALPH_HOME with its DB, task repos, runners; cleanup() removes all. */
export class LoopHarness {
  readonly home: TempHome;
  readonly paths: HomePaths;
  readonly db: Db;
  readonly store: LoopStore;
  private readonly repos: TaskRepo[] = [];
  private readonly pids: number[] = [];
  private readonly clients: LoopClient[] = [];

  constructor(label = 'ralph-loop') {
    this.home = makeTempHome(label);
    this.paths = homePaths(this.home.home);
    this.db = openDb(this.paths.db);
    this.store = new LoopStore(this.db);
  }

  repo(opts: TaskRepoOptions = {}): TaskRepo {
    const r = makeTaskRepo(opts);
    this.repos.push(r);
    return r;
  }

  /** Prepares and launches a loop whose agent is the fixture with these steps. */
  async start(opts: {
    steps?: string;
    repo?: TaskRepo;
    stories?: number;
    maxIterations?: number;
    env?: Record<string, string>;
    prepare?: Partial<PrepareRequest>;
  } = {}): Promise<StartedLoop> {
    const repo = opts.repo ?? this.repo({ stories: opts.stories ?? 3 });
    const row = prepareLoop(this.store, this.paths, {
      dir: repo.dir,
      agentCmd: fixtureAgentCmd(opts.steps ?? 'work'),
      maxIterations: opts.maxIterations ?? 10,
      ...opts.prepare,
    });
    const { pid } = await launchRunner(this.paths, row.id, { env: { ...this.home.env, ...opts.env } });
    this.pids.push(pid);
    return { row, pid, repo };
  }

  async connect(loop: { row: LoopRow }): Promise<LoopClient> {
    const c = await LoopClient.connect(loop.row.socketPath!);
    this.clients.push(c);
    return c;
  }

  row(id: string): LoopRow {
    return this.store.get(id)!;
  }

  /** Waits for a runner process to be gone (it exits by itself after its loop ends). */
  async exited(pid: number): Promise<void> {
    await waitUntil(() => !alive(pid), { what: `runner ${pid} to exit`, timeoutMs: 15_000 });
  }

  async cleanup(): Promise<void> {
    for (const c of this.clients) c.close();
    for (const pid of this.pids) {
      if (alive(pid)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    for (const pid of this.pids) await this.exited(pid);
    this.db.close();
    for (const r of this.repos) r.cleanup();
    rmSync(this.home.home, { recursive: true, force: true });
  }
}
