// Shared test helper: a laptop and a box on a real OpenZiti network, for the end-to-end files
// (test/ziti-e2e.test.ts over the `ziti` CLI tunneler, test/ziti-sdk-e2e.test.ts over the Node SDK).
// The box runs `ralph daemon --ziti-service S --ziti-backend BACKEND`; the laptop has a git checkout
// `app` (branch `feature`, a prd.json with two stories) and reaches the box with the same backend.
//
//   const z = await zitiE2eOrSkip({ service: 'ralph-e2e', backend: 'tunnel' });   // null: skipped
//   await z.cli(['remote', 'add', 'box', ...]);  await z.git(['push', ...]);  await z.status();
//   await z.stop();

import * as assert from 'uvu/assert';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { killRunners, startDaemon, type DaemonHandle } from './daemon.js';
import type { StatusJsonEntry } from './cli.js';
import { ROOT, makeTempHome, ralph, runCommand, type RunResult, type TempHome } from './env.js';
import { zitiNetworkOrSkip, zitiSdkOrSkip, type ZitiNetwork } from './ziti-network.js';

export interface ZitiE2e {
  net: ZitiNetwork;
  laptop: TempHome;
  box: TempHome;
  /** The laptop's environment (its RALPH_HOME, the ziti CLI, the backend, git-remote-ralph on PATH). */
  env: NodeJS.ProcessEnv;
  /** The laptop's checkout. */
  work: string;
  daemon: DaemonHandle;
  /** git in the checkout; throws on failure, returns stdout. */
  git(args: string[]): Promise<string>;
  /** git in the checkout, whatever its exit. */
  gitRun(args: string[], timeoutMs?: number): Promise<RunResult>;
  /** The ralph CLI on the laptop, in the checkout. */
  cli(args: string[], extraEnv?: NodeJS.ProcessEnv): Promise<RunResult>;
  /** `ralph status --json` on the laptop. */
  status(): Promise<StatusJsonEntry[]>;
  /** Points the laptop's remote `box` at another identity file (what a stranger's laptop would hold). */
  useIdentity(file: string): void;
  stop(): Promise<void>;
}

/** Loop ids from `remote: ralph: started loop <id> (...)`. */
export const startedIds = (r: RunResult): string[] => [...r.stderr.matchAll(/^remote: ralph: started loop (\S+) /gm)].map((m) => m[1]!);

export async function zitiE2eOrSkip(opts: { service: string; backend: 'sdk' | 'tunnel' }): Promise<ZitiE2e | null> {
  if (opts.backend === 'sdk' && !(await zitiSdkOrSkip())) return null;
  const net = await zitiNetworkOrSkip(opts.service);
  if (!net) return null;
  const laptop = makeTempHome('ralph-zl');
  const box = makeTempHome('ralph-zb');
  const bin = join(laptop.home, 'bin');
  mkdirSync(bin);
  symlinkSync(join(ROOT, 'dist', 'cli', 'git-remote-ralph.js'), join(bin, 'git-remote-ralph'));
  const env: NodeJS.ProcessEnv = {
    ...laptop.env,
    ...net.env,
    PATH: `${bin}:${process.env.PATH}`,
    RALPH_ZITI_PROXY_DIR: join(laptop.home, 'zp'),
    RALPH_ZITI_BACKEND: opts.backend,
  };
  let daemon: DaemonHandle;
  try {
    daemon = await startDaemon(box, {
      args: ['--ziti-service', net.service, '--ziti-identity', net.identities.daemon, '--ziti-backend', opts.backend],
      // The SDK binds in-process: no local port (and the service's host.v1 config goes unused).
      env: opts.backend === 'tunnel' ? { ...net.env, RALPH_ZITI_HOST_PORT: String(net.hostPort) } : net.env,
      readyTimeoutMs: 40_000,
    });
  } catch (err) {
    await net.stop();
    laptop.cleanup();
    box.cleanup();
    throw err;
  }
  const work = join(laptop.home, 'app');
  mkdirSync(work);
  const gitRun = (args: string[], timeoutMs = 90_000) => runCommand('git', args, { env, cwd: work, timeoutMs });
  const git = async (args: string[]): Promise<string> => {
    const r = await gitRun(args);
    if (r.code !== 0) throw new Error(`git ${args.join(' ')} failed (${r.code}):\n${r.stderr}`);
    return r.stdout.trim();
  };
  const cli = (args: string[], extraEnv: NodeJS.ProcessEnv = {}) => ralph(args, { env: { ...env, ...extraEnv }, cwd: work, timeoutMs: 60_000 });
  await git(['init', '--quiet', '-b', 'feature']);
  const prd = { project: 'app', branchName: 'feature', userStories: [{ id: 'US-1', title: 'first', passes: false, priority: 1 }, { id: 'US-2', title: 'second', passes: false, priority: 2 }] };
  writeFileSync(join(work, 'prd.json'), JSON.stringify(prd, null, 2) + '\n');
  await git(['add', 'prd.json']);
  await git(['commit', '--quiet', '-m', 'task: two stories']);
  return {
    net,
    laptop,
    box,
    env,
    work,
    daemon,
    git,
    gitRun,
    cli,
    async status() {
      const r = await cli(['status', '--json']);
      assert.is(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as StatusJsonEntry[];
    },
    useIdentity(file) {
      const path = env.RALPH_CONFIG!;
      const config = JSON.parse(readFileSync(path, 'utf8'));
      config.remotes.box.zitiIdentity = file;
      writeFileSync(path, JSON.stringify(config, null, 2));
    },
    async stop() {
      try {
        await daemon.stop();
        killRunners(box.home);
      } finally {
        await net.stop();
        laptop.cleanup();
        box.cleanup();
      }
    },
  };
}
