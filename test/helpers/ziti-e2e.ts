// Shared test helper: a laptop and a box on a real OpenZiti network, for the end-to-end files
// (test/ziti-e2e.test.ts over the `ziti` CLI tunneler, test/ziti-sdk-e2e.test.ts over the Node SDK).
// The box runs `ralph daemon --ziti-service S --ziti-backend BACKEND`; the laptop has a git checkout
// `app` (branch `feature`, a prd.json with two stories) and reaches the box with the same backend.
//
//   const z = await zitiE2eOrSkip({ service: 'ralph-e2e', backend: 'tunnel' });   // null: skipped
//   await z.laptop.cli(['remote', 'add', 'box', ...]);  await z.laptop.gitResult(['push', ...]);
//   await z.stop();

import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { killRunners, startDaemon, type DaemonHandle } from './daemon.js';
import { ROOT, makeTempHome, type TempHome } from './env.js';
import { Laptop } from './laptop.js';
import { zitiNetworkOrSkip, zitiSdkOrSkip, type ZitiNetwork } from './ziti-network.js';

export interface ZitiE2e {
  net: ZitiNetwork;
  /** The laptop's RALPH_HOME. */
  laptopHome: TempHome;
  box: TempHome;
  /** The laptop's commands in its checkout (git, ralph, status), with its environment: its
   * RALPH_HOME, the ziti CLI, the backend, its own proxy directory, git-remote-ralph on PATH. */
  laptop: Laptop;
  daemon: DaemonHandle;
  /** Points the laptop's remote `box` at another identity file (what a stranger's laptop would hold). */
  useIdentity(file: string): void;
  stop(): Promise<void>;
}

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
  const checkout = await Laptop.withTwoStoryTask(env, work);
  return {
    net,
    laptopHome: laptop,
    box,
    laptop: checkout,
    daemon,
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
