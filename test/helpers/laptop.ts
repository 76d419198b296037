// Shared test helper for end-to-end suites of remote loops: the laptop's commands in its checkout
// (git, the ralph CLI, `ralph status --json`), and the loop ids a push started.

import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ralph, ROOT, runCommand, type RunResult } from './env.js';
import type { StatusJsonEntry } from './cli.js';

export class Laptop {
  constructor(
    readonly env: NodeJS.ProcessEnv,
    /** The checkout commands run in. */
    readonly work: string,
  ) {}

  /**
   * A new checkout at `work` on branch `feature`, holding one commit: a prd.json of two stories
   * (US-1, US-2) that the fixture agent's `work` step completes in two iterations.
   */
  static async withTwoStoryTask(env: NodeJS.ProcessEnv, work: string): Promise<Laptop> {
    const laptop = new Laptop(env, work);
    mkdirSync(work, { recursive: true });
    await laptop.git(['init', '--quiet', '-b', 'feature']);
    const prd = {
      project: 'app',
      branchName: 'feature',
      userStories: [
        { id: 'US-1', title: 'first', passes: false, priority: 1 },
        { id: 'US-2', title: 'second', passes: false, priority: 2 },
      ],
    };
    writeFileSync(join(work, 'prd.json'), JSON.stringify(prd, null, 2) + '\n');
    await laptop.git(['add', 'prd.json']);
    await laptop.git(['commit', '--quiet', '-m', 'task: two stories']);
    return laptop;
  }

  /** git in the checkout; its stdout, trimmed; throws with git's stderr if it fails. */
  async git(args: string[]): Promise<string> {
    const r = await runCommand('git', args, { env: this.env, cwd: this.work, timeoutMs: 90_000 });
    if (r.code !== 0) throw new Error(`git ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
    return r.stdout.trim();
  }

  /** git in the checkout, whatever it exits with (a push's `remote:` lines are on its stderr). */
  gitResult(args: string[]): Promise<RunResult> {
    return runCommand('git', args, { env: this.env, cwd: this.work, timeoutMs: 90_000 });
  }

  /** `ralph ARGS` in the checkout, with more environment on top. */
  cli(args: string[], extraEnv: Record<string, string> = {}): Promise<RunResult> {
    return ralph(args, { env: { ...this.env, ...extraEnv }, cwd: this.work, timeoutMs: 60_000 });
  }

  async status(): Promise<StatusJsonEntry[]> {
    const r = await this.cli(['status', '--json']);
    if (r.code !== 0) throw new Error(`ralph status --json failed (${r.code}): ${r.stderr}`);
    return JSON.parse(r.stdout) as StatusJsonEntry[];
  }
}

/** `env` with a bin directory under `home` on PATH that holds git-remote-ralph, as an install would. */
export function withGitRemoteHelper(home: string, env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const bin = join(home, 'bin');
  mkdirSync(bin, { recursive: true });
  symlinkSync(join(ROOT, 'dist', 'cli', 'git-remote-ralph.js'), join(bin, 'git-remote-ralph'));
  return { ...env, PATH: `${bin}:${env.PATH ?? process.env.PATH ?? ''}` };
}

/** Loop ids from a push's `remote: ralph: started loop <id> (...)` lines. */
export function startedIds(r: RunResult): string[] {
  return [...r.stderr.matchAll(/^remote: ralph: started loop (\S+) /gm)].map((m) => m[1]!);
}
