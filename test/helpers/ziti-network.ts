// Shared test helper: a real OpenZiti network on loopback (controller + edge router, identities
// daemon/client/intruder, one service) from install/ziti-dev-network.sh. It costs ~10–25 s, so a
// test FILE starts one in `before` and stops it in `after`:
//
//   const net = await zitiNetworkOrSkip('ziti-e2e');   // null: no ziti CLI here (skip, one line said why)
//   ...
//   await net.stop();                                  // also done at exit, and by a watchdog if we are killed
//
// Without a ziti CLI the suite skips with one line — unless RALPH_REQUIRE_ZITI=1 (CI), then it fails;
// likewise the SDK suites without ralph's SDK build (zitiSdkOrSkip, RALPH_REQUIRE_ZITI_SDK=1).

import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { zitiBinary, zitiWorks } from '../../transport/ziti/tunnel-process.js';
import { ROOT } from './env.js';

const SCRIPT = join(ROOT, 'install', 'ziti-dev-network.sh');

export interface ZitiNetwork {
  /** The ziti CLI the network runs with (give it to ralph as RALPH_ZITI_BIN). */
  ziti: string;
  /** The network's directory (logs, identities, CLI login). */
  home: string;
  controller: string;
  identities: { daemon: string; client: string; intruder: string };
  service: string;
  /** The port the service's host.v1 config forwards to on 127.0.0.1 (the daemon's RALPH_ZITI_HOST_PORT). */
  hostPort: number;
  /** Environment that points ralph at this network's ziti CLI. */
  env: Record<string, string>;
  /** Runs `ziti ARGS...` logged in as the network's admin (e.g. edge create service X); throws on failure. */
  admin(args: string[]): Promise<string>;
  /** Live ziti processes that use this network's identities (tunnelers, zcat), and tunneler watchdogs. */
  zitiProcesses(): Array<{ pid: number; cmdline: string }>;
  /** SIGKILLs the controller and the edge router (a crash of the whole overlay). */
  killOverlay(): void;
  /** Starts the controller and the edge router again from their saved config and state. */
  restartOverlay(): void;
  /** Stops the controller and router (TERM, KILL after 10 s) and removes the directory. */
  stop(): Promise<void>;
}

/** The ziti CLI, or null with the reason; throws when RALPH_REQUIRE_ZITI=1 and there is none. */
export function findZiti(): { bin: string } | { skip: string } {
  let bin: string | undefined;
  let why = '';
  try {
    bin = zitiBinary('ziti:tests');
    if (!zitiWorks(bin)) {
      why = `${bin} does not run \`ziti version\``;
      bin = undefined;
    }
  } catch (err) {
    why = (err as Error).message.replace(/^ziti:tests: /, '');
  }
  if (bin) return { bin };
  if (process.env.RALPH_REQUIRE_ZITI === '1') {
    throw new Error(`RALPH_REQUIRE_ZITI=1 but there is no usable ziti CLI: ${why} (run install/get-ziti.sh)`);
  }
  return { skip: `skipping the OpenZiti suite: ${why} (install/get-ziti.sh gets one)` };
}

/**
 * Is the OpenZiti Node SDK (ralph's build, install/build-ziti-sdk.sh) usable here? Prints why not and
 * returns false (skip) — unless RALPH_REQUIRE_ZITI_SDK=1 (CI), then it throws.
 */
export async function zitiSdkOrSkip(): Promise<boolean> {
  const { sdkChoice } = await import('../../transport/ziti/sdk.js');
  const choice = sdkChoice();
  if (choice.use) return true;
  const why = choice.refused ?? 'the OpenZiti Node SDK is not built here (install/build-ziti-sdk.sh builds it)';
  if (process.env.RALPH_REQUIRE_ZITI_SDK === '1') throw new Error(`RALPH_REQUIRE_ZITI_SDK=1 but ${why}`);
  console.log(`skipping the OpenZiti SDK suite: ${why}`);
  return false;
}

/** Starts a dev network (service `service`), or returns null after printing why it is skipped. */
export async function zitiNetworkOrSkip(service: string): Promise<ZitiNetwork | null> {
  const found = findZiti();
  if ('skip' in found) {
    console.log(found.skip);
    return null;
  }
  return startZitiNetwork(found.bin, service);
}

export async function startZitiNetwork(ziti: string, service: string): Promise<ZitiNetwork> {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'ralph-zn-')));
  // The watchdog: if this process dies before stop() (a failed `before`, the runner's SIGKILL on a
  // timeout), the pipe on its fd 3 closes and it stops the network. The network's processes run in
  // their own sessions, so nothing else would.
  const watchdog = spawn(
    '/bin/sh',
    ['-c', 'while read -r _ <&3; do :; done; bash "$0" stop "$1" >/dev/null 2>&1; rm -rf -- "$1"', SCRIPT, dir],
    { detached: true, stdio: ['ignore', 'ignore', 'ignore', 'pipe'] },
  );
  watchdog.unref();
  (watchdog.stdio[3] as unknown as { unref?: () => void } | null)?.unref?.();

  let stopped = false;
  const stopSync = () => {
    if (stopped) return;
    stopped = true;
    spawnSync('bash', [SCRIPT, 'stop', dir], { stdio: 'ignore', timeout: 20_000 });
    rmSync(dir, { recursive: true, force: true });
  };
  process.once('exit', stopSync);

  const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn('bash', [SCRIPT, 'start', dir, '--service', service, '--ziti', ziti, '--timeout', '120'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  if (r.code !== 0) {
    stopSync();
    throw new Error(`the OpenZiti dev network did not start (exit ${r.code}):\n${r.stderr}`);
  }
  const info = JSON.parse(r.stdout.trim().split('\n').pop()!) as {
    controller: string;
    identities: ZitiNetwork['identities'];
    service: string;
    hostPort: number;
    cliConfigDir: string;
  };
  const ids = Object.values(info.identities);
  return {
    ziti,
    home: dir,
    controller: info.controller,
    identities: info.identities,
    service: info.service,
    hostPort: info.hostPort,
    env: { RALPH_ZITI_BIN: ziti },
    admin: (args) =>
      new Promise((resolve, reject) => {
        const child = spawn(ziti, args, { env: { ...process.env, ZITI_CONFIG_DIR: info.cliConfigDir, ZITI_CHECK_VERSION: 'false' }, stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        child.stdout.on('data', (d) => (out += d));
        child.stderr.on('data', (d) => (out += d));
        child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`ziti ${args.join(' ')} failed (${code}): ${out}`))));
      }),
    zitiProcesses: () => zitiProcessesUsing(ziti, [dir, ...ids]),
    killOverlay: () => {
      for (const line of readFileSync(join(dir, 'pids'), 'utf8').split('\n')) {
        const pid = Number(line.split(' ')[1]);
        if (!Number.isInteger(pid) || pid <= 0) continue;
        for (const target of [-pid, pid]) {
          try {
            process.kill(target, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      }
    },
    restartOverlay: () => {
      // The same environment the script gives them: loopback only, state and CLI login inside dir.
      const env: NodeJS.ProcessEnv = { ...process.env, ZITI_CONFIG_DIR: join(dir, 'cli'), ZITI_CHECK_VERSION: 'false' };
      for (const v of ['CTRL_BIND_ADDRESS', 'CTRL_EDGE_BIND_ADDRESS', 'CTRL_ADVERTISED_ADDRESS', 'CTRL_EDGE_ADVERTISED_ADDRESS', 'ROUTER_ADVERTISED_ADDRESS']) {
        env[`ZITI_${v}`] = '127.0.0.1';
      }
      const pids: string[] = [];
      for (const [name, args] of [
        ['quickstart', ['controller', 'run', join(dir, 'quickstart-home', 'ctrl.yaml')]],
        ['router', ['router', 'run', join(dir, 'router', 'router.yaml'), '--cliagent=false']],
      ] as const) {
        const child = spawn(ziti, [...args], { env, detached: true, stdio: ['ignore', 'ignore', 'ignore'] });
        child.unref();
        pids.push(`${name} ${child.pid}`);
      }
      // stop() ends what pids names.
      writeFileSync(join(dir, 'pids'), pids.join('\n') + '\n');
    },
    async stop() {
      await new Promise<void>((resolve) => {
        if (stopped) return resolve();
        stopped = true;
        const child = spawn('bash', [SCRIPT, 'stop', dir], { stdio: 'ignore' });
        child.on('close', () => resolve());
      });
      rmSync(dir, { recursive: true, force: true });
      process.off('exit', stopSync);
      if (watchdog.exitCode === null) watchdog.kill('SIGKILL');
    },
  };
}

/** Live processes running `ziti` whose command line names one of `needles`. */
function zitiProcessesUsing(ziti: string, needles: string[]): Array<{ pid: number; cmdline: string }> {
  const out: Array<{ pid: number; cmdline: string }> = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const exe = readlinkSync(`/proc/${name}/exe`);
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0').join(' ').trim();
      // ziti itself, or the sh that guards a tunneler (transport/ziti/tunnel-process.ts)
      if (exe !== ziti && !exe.endsWith('/ziti') && !cmdline.includes('ralph-ziti-watchdog')) continue;
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      if (needles.some((n) => cmdline.includes(n))) out.push({ pid: Number(name), cmdline });
    } catch {
      /* gone, or not ours to read */
    }
  }
  return out;
}

/** `bytes` deterministic pseudo-random bytes (the same on both ends of a transfer test). */
export function pattern(bytes: number): Buffer {
  const out = Buffer.alloc(bytes);
  let x = 0x9e3779b9;
  for (let i = 0; i + 4 <= bytes; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out.writeUInt32LE(x >>> 0, i);
  }
  return out;
}

/** What the laptop's shared proxy owners in `dir` (RALPH_ZITI_PROXY_DIR) say of themselves. */
export function proxyOwners(dir: string | undefined): Array<{ pid: number; tunnelerPid: number; port: number; identity: string }> {
  if (!dir || !existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(readFileSync(join(dir, f), 'utf8')));
}

/** Ends the laptop's shared proxy owners now (they would end on their idle timer, after the test file). */
export function endProxyOwners(dir: string | undefined): void {
  for (const p of proxyOwners(dir)) {
    try {
      process.kill(p.pid, 'SIGTERM');
    } catch {
      /* gone already */
    }
  }
}
