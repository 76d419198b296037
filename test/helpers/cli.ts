// A world for tests that drive the real `ralph` CLI: a temp RALPH_HOME, task repos, loops started
// with `ralph run` over the fixture agent, and a cleanup that leaves no runner behind.

import { readFileSync } from 'node:fs';
import type { StatusEntry } from '../../client/status-view.js';
import { alive, makeTempHome, ralph, waitUntil, type RunResult, type TempHome } from './env.js';
import { fixtureAgentCmd } from './loop.js';
import { makeTaskRepo, type TaskRepo, type TaskRepoOptions } from './task.js';

/** One object of `ralph status --json` (the type the CLI's own readers use). */
export type StatusJsonEntry = StatusEntry;

export class CliWorld {
  readonly home: TempHome;
  private readonly repos: TaskRepo[] = [];
  private readonly pids = new Set<number>();

  constructor(label = 'ralph-cli') {
    this.home = makeTempHome(label);
  }

  get env(): NodeJS.ProcessEnv {
    return this.home.env;
  }

  repo(opts: TaskRepoOptions = {}): TaskRepo {
    const r = makeTaskRepo(opts);
    this.repos.push(r);
    return r;
  }

  /** Runs `ralph <args>` in this world (extra environment on top of it). */
  ralph(args: string[], opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<RunResult> {
    return ralph(args, { env: { ...this.env, ...opts.env }, ...(opts.cwd ? { cwd: opts.cwd } : {}), timeoutMs: opts.timeoutMs ?? 30_000 });
  }

  /** `ralph run` over the fixture agent with these steps; returns the loop id it printed. */
  async startLoop(opts: { steps?: string; repo?: TaskRepo; stories?: number; args?: string[]; env?: Record<string, string> } = {}): Promise<string> {
    const repo = opts.repo ?? this.repo({ stories: opts.stories ?? 3 });
    const r = await this.ralph(['run', repo.dir, '--agent-cmd', fixtureAgentCmd(opts.steps ?? 'work'), ...(opts.args ?? [])], {
      ...(opts.env ? { env: opts.env } : {}),
    });
    if (r.code !== 0) throw new Error(`ralph run failed (${r.code}): ${r.stderr}`);
    const id = r.stdout.trim();
    const entry = (await this.status()).find((e) => e.id === id);
    if (entry?.pid) this.pids.add(entry.pid);
    return id;
  }

  async status(): Promise<StatusJsonEntry[]> {
    const r = await this.ralph(['status', '--json']);
    if (r.code !== 0) throw new Error(`ralph status --json failed (${r.code}): ${r.stderr}`);
    return JSON.parse(r.stdout) as StatusJsonEntry[];
  }

  async entry(id: string): Promise<StatusJsonEntry> {
    const e = (await this.status()).find((x) => x.id === id);
    if (!e) throw new Error(`no loop ${id} in ralph status`);
    return e;
  }

  /** Polls `ralph status` (the CLI is the thing under test) until the loop satisfies `check`. */
  waitForLoop(id: string, what: string, check: (e: StatusJsonEntry) => boolean, timeoutMs = 30_000): Promise<StatusJsonEntry> {
    return waitUntil(
      async () => {
        const e = await this.entry(id);
        return check(e) ? e : undefined;
      },
      { what: `loop ${id} ${what}`, timeoutMs, intervalMs: 100 },
    );
  }

  /** The loop's log file (complete: seq == byte offset). */
  log(id: string): string {
    try {
      return readFileSync(`${this.home.home}/logs/${id}.log`, 'utf8');
    } catch {
      return '';
    }
  }

  /** Kills every runner this world started that is still alive and waits for them to be gone. */
  async cleanup(): Promise<void> {
    for (const e of await this.status().catch(() => [])) if (e.pid) this.pids.add(e.pid);
    for (const pid of this.pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone already */
      }
    }
    await waitUntil(() => [...this.pids].every((pid) => !alive(pid)), { what: 'runners to exit', timeoutMs: 10_000 });
    for (const r of this.repos) r.cleanup();
    this.home.cleanup();
  }
}
