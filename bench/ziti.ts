// `npm run bench:ziti`: what the OpenZiti overlay costs, on a real network on loopback
// (install/ziti-dev-network.sh: controller + edge router), over both of ralph's backends: the `ziti`
// CLI tunnelers, then the Node SDK in-process on both sides (ralph's build, install/build-ziti-sdk.sh;
// that part is skipped with one line when it is not built).
//  1. keystroke echo round trip (`write` → agent PTY → `output`), p50/p95/p99 over BENCH_KEYSTROKES
//     (default 1000) keystrokes: the loop's unix socket, the daemon's loop channel over loopback tcp,
//     the same channel over Ziti — through the laptop's shared `ziti tunnel proxy` (the default),
//     through a `ziti demo zcat` (RALPH_ZITI_CLIENT=zcat), and through the SDK;
//  2. output throughput from the agent's PTY (BENCH_FLOOD_MB, default 32 MB) over each;
//  3. a fresh connection + `daemon.info` (what every `ralph status`/`attach` pays once): tcp, Ziti
//     through a running proxy, Ziti with the proxy started first, Ziti through zcat, Ziti through the
//     SDK already signed in; and a whole `ralph remote test` command (Node's start-up included)
//     through a running proxy, starting the proxy, and through the SDK (which signs in each time);
//  4. `git push` of a ~BENCH_PUSH_MB (50) MB repo of random files: through `ralph://` over Ziti (each
//     backend) vs a plain file:// remote (all with no loop started: -o ralph.no-start).
// Targets on loopback: Ziti echo p50 <= 2 ms and p99 <= 5 ms; >= 20 MB/s; push ratio <= 2x.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { daemonInfo } from '../client/daemon.js';
import { openChannel } from '../daemon/hello.js';
import { homePaths } from '../store/paths.js';
import { dial } from '../transport/index.js';
import { dialProxy, stopProxy } from '../transport/ziti/proxy.js';
import { sdkChoice } from '../transport/ziti/sdk.js';
import { Tunneler } from '../transport/ziti/tunnel.js';
import { killRunners, startDaemon, type DaemonHandle } from '../test/helpers/daemon.js';
import { ROOT, RALPH_BIN, makeTempHome, type TempHome } from '../test/helpers/env.js';
import { findZiti, startZitiNetwork, type ZitiNetwork } from '../test/helpers/ziti-network.js';
import { rawOverlay } from './baselines.js';
import { loadAverageText, measureLoopPath, type PathRow } from './loop-path.js';
import { percentiles, type Percentiles } from './measure.js';

const KEYSTROKES = Number(process.env.BENCH_KEYSTROKES || 1000);
const FLOOD_MB = Number(process.env.BENCH_FLOOD_MB || 32);
const PUSH_MB = Number(process.env.BENCH_PUSH_MB || 50);

const load = loadAverageText;

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): void {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
}

function timed(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv }): number {
  const t0 = process.hrtime.bigint();
  run(cmd, args, opts);
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** A repo of PUSH_MB MB of random (incompressible) 1 MB files, one commit. */
function bigRepo(dir: string, env: NodeJS.ProcessEnv): void {
  mkdirSync(dir, { recursive: true });
  run('git', ['init', '--quiet', '-b', 'big', dir], { env });
  writeFileSync(join(dir, 'prd.json'), JSON.stringify({ project: 'big', userStories: [{ id: 'US-1', title: 'x', passes: false }] }));
  for (let i = 0; i < PUSH_MB; i++) writeFileSync(join(dir, `blob-${i}.bin`), randomBytes(1 << 20));
  run('git', ['add', '.'], { cwd: dir, env });
  run('git', ['commit', '--quiet', '-m', 'big'], { cwd: dir, env });
}

async function main(): Promise<void> {
  console.log(`ralph OpenZiti benchmark — ${new Date().toISOString()}, node ${process.version}, load average ${load()}`);
  const found = findZiti();
  if ('skip' in found) {
    console.log(found.skip);
    return;
  }
  let net: ZitiNetwork | undefined;
  let box: TempHome | undefined;
  let laptop: TempHome | undefined;
  let d: DaemonHandle | undefined;
  try {
    net = await startZitiNetwork(found.bin, 'ralph-bench');
    box = makeTempHome('ralph-bzb');
    laptop = makeTempHome('ralph-bzl');
    process.env.RALPH_ZITI_PROXY_DIR = join(laptop.home, 'zp');
    // The tunnel backend first (`auto` would take the SDK when it is built here); the SDK's turn comes last.
    process.env.RALPH_ZITI_BACKEND = 'tunnel';

    // Baseline: the overlay alone (plain tcp echo/source behind the tunnelers, no ralph protocol).
    console.log(`\nbaseline, the overlay alone (${KEYSTROKES} one-byte echoes, ${FLOOD_MB} MB one way):`);
    const quiet = () => {};
    const host = new Tunneler(found.bin, net.service, net.identities.daemon, 'host', quiet);
    const proxy = new Tunneler(found.bin, net.service, net.identities.client, 'proxy', quiet);
    await host.start(30_000);
    await proxy.start(30_000);
    const baselines: Record<string, { echo: Percentiles; mbPerS: number }> = {};
    const tcpTo = (port: number) => () => dial(`tcp://127.0.0.1:${port}`, { timeoutMs: 20_000 });
    try {
      for (const [label, open] of [
        ['tunnel proxy port', tcpTo(proxy.port)],
        ['ralph proxy lease', () => dialProxy(net!.service, net!.identities.client, 20_000)],
      ] as const) {
        const b = await rawOverlay({ hostPort: net.hostPort, floodMb: FLOOD_MB, count: KEYSTROKES, open });
        baselines[label] = b;
        console.log(`  ${label.padEnd(22)} echo p50 ${b.echo.p50.toFixed(2)} p95 ${b.echo.p95.toFixed(2)} p99 ${b.echo.p99.toFixed(2)} ms; ${b.mbPerS.toFixed(1)} MB/s   [load ${load()}]`);
      }
    } finally {
      await proxy.close();
      await host.close();
    }
    d = await startDaemon(box, {
      listen: ['tcp://127.0.0.1:0'],
      args: ['--ziti-service', net.service, '--ziti-identity', net.identities.daemon, '--ziti-backend', 'tunnel'],
      env: { ...net.env, RALPH_ZITI_HOST_PORT: String(net.hostPort) },
      readyTimeoutMs: 40_000,
    });
    // The task the loops run, pushed straight into the box's repo.
    const bare = join(box.home, 'repos', 'app.git');
    run('git', ['init', '--quiet', '--bare', bare]);
    const task = join(laptop.home, 'task');
    mkdirSync(task);
    run('git', ['init', '--quiet', '-b', 'bench', task], { env: laptop.env });
    writeFileSync(join(task, 'prd.json'), JSON.stringify({ project: 'app', userStories: [{ id: 'US-1', title: 'x', passes: false }] }));
    run('git', ['add', '.'], { cwd: task, env: laptop.env });
    run('git', ['commit', '--quiet', '-m', 'task'], { cwd: task, env: laptop.env });
    run('git', ['push', '--quiet', `file://${bare}`, 'bench'], { cwd: task, env: laptop.env });

    const zitiOpts = { ziti: { identityFile: net.identities.client, backend: 'tunnel' as const }, timeoutMs: 20_000 };
    // tcp carries the daemon's token; over Ziti the identities decide.
    const loopChannel = (address: string, opts = {}) => async (loop: string) =>
      (await openChannel(address, { channel: 'loop', loop, client: 'bench', ...(address.startsWith('tcp://') ? { token: d!.token } : {}) }, opts)).stream;
    console.log(`\nkeystroke echo (${KEYSTROKES} keystrokes) and output throughput (${FLOOD_MB} MB flood):`);
    const rows: PathRow[] = [];
    const measurePath = (path: string, daemon: DaemonHandle, open: (loopId: string) => Promise<Duplex>) =>
      measureLoopPath(path, daemon, open, { keystrokes: KEYSTROKES, floodMb: FLOOD_MB });
    rows.push(await measurePath('unix socket (runner)', d, (loop) => dial(`unix:${homePaths(box!.home).socketFor(loop)}`)));
    rows.push(await measurePath('tcp loopback (daemon)', d, loopChannel(d.tcp!)));
    const client = (mode: 'proxy' | 'zcat') => (process.env.RALPH_ZITI_CLIENT = mode);
    client('proxy');
    rows.push(await measurePath('ziti via proxy', d, loopChannel(`ziti:${net.service}`, zitiOpts)));
    client('zcat');
    rows.push(await measurePath('ziti via zcat', d, loopChannel(`ziti:${net.service}`, zitiOpts)));

    // A new connection and one request, as every `ralph status` / `attach` / push pays once.
    console.log('\nnew connection + daemon.info (10 each):');
    const connect: Record<string, Percentiles> = {};
    const viaZiti = { name: 'box', address: `ziti:${net.service}`, zitiIdentity: net.identities.client };
    const cases: Array<[string, { name: string; address: string; zitiIdentity?: string; token?: string }, () => Promise<unknown>]> = [
      ['tcp loopback', { name: 'box', address: d.tcp!, token: d.token }, async () => {}],
      ['ziti, proxy running', viaZiti, async () => client('proxy')],
      ['ziti, proxy started', viaZiti, async () => (client('proxy'), stopProxy(net!.service, net!.identities.client))],
      ['ziti via zcat', viaZiti, async () => client('zcat')],
    ];
    for (const [label, remote, before] of cases) {
      const samples: number[] = [];
      for (let i = 0; i < 10; i++) {
        await before();
        const t0 = process.hrtime.bigint();
        await daemonInfo(remote, { timeoutMs: 20_000 });
        samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      connect[label] = percentiles(samples);
      console.log(`  ${label.padEnd(20)} p50 ${connect[label]!.p50.toFixed(0)} ms  max ${connect[label]!.max.toFixed(0)} ms   [load ${load()}]`);
    }
    client('proxy');

    // git push, ~PUSH_MB MB: file:// vs ralph:// over Ziti (git-remote-ralph → proxy → router → host).
    console.log(`\ngit push of a ${PUSH_MB} MB repo (random files):`);
    const bin = join(laptop.home, 'bin');
    mkdirSync(bin);
    symlinkSync(join(ROOT, 'dist', 'cli', 'git-remote-ralph.js'), join(bin, 'git-remote-ralph'));
    // The same proxy directory as this process's, so stopProxy here stops what the commands use.
    const env = { ...laptop.env, ...net.env, PATH: `${bin}:${process.env.PATH}`, RALPH_ZITI_PROXY_DIR: process.env.RALPH_ZITI_PROXY_DIR, RALPH_ZITI_BACKEND: 'tunnel' };
    const big = join(laptop.home, 'big');
    bigRepo(big, env);
    run(process.execPath, [RALPH_BIN, 'remote', 'add', 'box', '--ziti-service', net.service, '--ziti-identity', net.identities.client, '--repo', 'big'], { cwd: big, env });
    const pushes: Array<{ file: number; ziti: number }> = [];
    for (let i = 0; i < 3; i++) {
      const plain = join(laptop.home, `plain-${i}.git`);
      run('git', ['init', '--quiet', '--bare', plain]);
      const file = timed('git', ['push', '--quiet', `file://${plain}`, `big:b${i}`], { cwd: big, env });
      // A new repo on the box each time, so every push carries all of its objects.
      const ziti = timed('git', ['push', '--quiet', '-o', 'ralph.no-start', `ralph://box/big-${i}`, `big:b${i}`], { cwd: big, env });
      pushes.push({ file, ziti });
      console.log(`  run ${i + 1}: file:// ${file.toFixed(0)} ms, ralph:// over Ziti ${ziti.toFixed(0)} ms, ratio ${(ziti / file).toFixed(2)}x   [load ${load()}]`);
    }
    // A whole command, as a user runs it: `ralph remote test` (Node's start-up, sign-in, one request).
    const remoteTest = (label: string, remote: string, backend: 'tunnel' | 'sdk', before: () => Promise<unknown>) => async () => {
      const samples: number[] = [];
      for (let i = 0; i < 5; i++) {
        await before();
        samples.push(timed(process.execPath, [RALPH_BIN, 'remote', 'test', remote], { cwd: big, env: { ...env, RALPH_ZITI_BACKEND: backend } }));
      }
      commands[label] = percentiles(samples);
      console.log(`  ${label.padEnd(26)} p50 ${commands[label]!.p50.toFixed(0)} ms  max ${commands[label]!.max.toFixed(0)} ms   [load ${load()}]`);
    };
    const commands: Record<string, Percentiles> = {};
    console.log('\n`ralph remote test` (whole command, 5 each):');
    await remoteTest('tunnel, proxy running', 'box', 'tunnel', async () => {})();
    await remoteTest('tunnel, proxy started', 'box', 'tunnel', () => stopProxy(net!.service, net!.identities.client))();

    // The same over the Node SDK on both sides: the box's daemon (the same home, the tunnel daemon
    // stopped first) binds a service of its own in-process, and so does every dial here.
    const sdk = sdkChoice();
    const sdkPushes: Array<{ file: number; sdk: number }> = [];
    if (!sdk.use) {
      console.log(`\nthe Node SDK backend: skipped (${sdk.refused ?? 'not built here: install/build-ziti-sdk.sh builds it'})`);
    } else {
      await stopProxy(net.service, net.identities.client).catch(() => null);
      await d.stop();
      const service = `${net.service}-sdk`;
      await net.admin(['edge', 'create', 'service', service]);
      await net.admin(['edge', 'create', 'service-policy', `${service}-bind`, 'Bind', '--service-roles', `@${service}`, '--identity-roles', '@daemon']);
      await net.admin(['edge', 'create', 'service-policy', `${service}-dial`, 'Dial', '--service-roles', `@${service}`, '--identity-roles', '@client']);
      d = await startDaemon(box, {
        listen: ['tcp://127.0.0.1:0'],
        args: ['--ziti-service', service, '--ziti-identity', net.identities.daemon, '--ziti-backend', 'sdk'],
        env: net.env,
        readyTimeoutMs: 40_000,
      });
      run(process.execPath, [RALPH_BIN, 'remote', 'add', 'boxsdk', '--ziti-service', service, '--ziti-identity', net.identities.client, '--repo', 'big', '--git-remote', 'ralph-sdk', '--no-check'], { cwd: big, env });
      console.log(`\nthe Node SDK on both sides (${KEYSTROKES} keystrokes, ${FLOOD_MB} MB flood):`);
      const sdkOpts = { ziti: { identityFile: net.identities.client, backend: 'sdk' as const }, timeoutMs: 20_000 };
      rows.push(await measurePath('ziti via SDK', d, loopChannel(`ziti:${service}`, sdkOpts)));
      const samples: number[] = [];
      process.env.RALPH_ZITI_BACKEND = 'sdk';
      for (let i = 0; i < 10; i++) {
        const t0 = process.hrtime.bigint();
        await daemonInfo({ ...viaZiti, address: `ziti:${service}` }, { timeoutMs: 20_000 });
        samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
      connect['ziti via SDK'] = percentiles(samples);
      console.log(`  new connection + daemon.info, SDK signed in: p50 ${connect['ziti via SDK']!.p50.toFixed(0)} ms  max ${connect['ziti via SDK']!.max.toFixed(0)} ms`);
      await remoteTest('SDK (signs in each time)', 'boxsdk', 'sdk', async () => {})();
      // Each beside a file:// push timed right before it, as the tunnel's pushes are (not the ones
      // measured minutes earlier, under whatever load there was then).
      for (let i = 0; i < 3; i++) {
        const plain = join(laptop.home, `plain-sdk-${i}.git`);
        run('git', ['init', '--quiet', '--bare', plain]);
        const file = timed('git', ['push', '--quiet', `file://${plain}`, `big:b${i}`], { cwd: big, env });
        const ms = timed('git', ['push', '--quiet', '-o', 'ralph.no-start', `ralph://boxsdk/big-sdk-${i}`, `big:b${i}`], { cwd: big, env: { ...env, RALPH_ZITI_BACKEND: 'sdk' } });
        sdkPushes.push({ file, sdk: ms });
        console.log(`  push run ${i + 1}: file:// ${file.toFixed(0)} ms, ralph:// over the SDK ${ms.toFixed(0)} ms, ratio ${(ms / file).toFixed(2)}x   [load ${load()}]`);
      }
    }

    const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
    const file = med(pushes.map((p) => p.file));
    const ziti = med(pushes.map((p) => p.ziti));

    const z = rows[2]!;
    const zc = rows[3]!;
    console.log(`\nsummary (median push of 3; load average now ${load()}):`);
    console.log(`  | path                   | echo p50 | echo p95 | echo p99 | throughput | CPUs busy |`);
    console.log(`  |------------------------|----------|----------|----------|------------|-----------|`);
    for (const r of rows) {
      console.log(`  | ${r.path.padEnd(22)} | ${r.echo.p50.toFixed(2).padStart(5)} ms | ${r.echo.p95.toFixed(2).padStart(5)} ms | ${r.echo.p99.toFixed(2).padStart(5)} ms | ${r.mbPerS.toFixed(1).padStart(5)} MB/s | ${(r.cpuBusy * 100).toFixed(0).padStart(7)} % |`);
    }
    const p50 = (k: string) => `${connect[k]!.p50.toFixed(0)} ms`;
    console.log(
      `  new connection + daemon.info (p50): tcp ${p50('tcp loopback')}; Ziti through a running proxy ${p50('ziti, proxy running')}, ` +
        `starting the proxy ${p50('ziti, proxy started')}, through zcat ${p50('ziti via zcat')}` +
        (connect['ziti via SDK'] ? `, through the SDK (signed in) ${p50('ziti via SDK')}` : ''),
    );
    console.log(
      `  \`ralph remote test\` (p50): proxy running ${commands['tunnel, proxy running']!.p50.toFixed(0)} ms, starting the proxy ` +
        `${commands['tunnel, proxy started']!.p50.toFixed(0)} ms` +
        (commands['SDK (signs in each time)'] ? `, SDK ${commands['SDK (signs in each time)']!.p50.toFixed(0)} ms` : ''),
    );
    for (const [label, b] of Object.entries(baselines)) {
      console.log(`  | overlay alone          | ${b.echo.p50.toFixed(2).padStart(5)} ms | ${b.echo.p95.toFixed(2).padStart(5)} ms | ${b.echo.p99.toFixed(2).padStart(5)} ms | ${b.mbPerS.toFixed(1).padStart(5)} MB/s |           |  (${label})`);
    }
    console.log(`  git push ${PUSH_MB} MB: file:// ${file.toFixed(0)} ms, ralph:// over Ziti ${ziti.toFixed(0)} ms → ${(ziti / file).toFixed(2)}x`);
    if (sdkPushes.length > 0) {
      const sdkMs = med(sdkPushes.map((p) => p.sdk));
      console.log(`  git push ${PUSH_MB} MB over the SDK: ${sdkMs.toFixed(0)} ms → ${(sdkMs / med(sdkPushes.map((p) => p.file))).toFixed(2)}x (file:// pushes timed beside them)`);
    }
    const verdict = (ok: boolean) => (ok ? 'met' : 'MISSED');
    const viaSdk = rows.find((r) => r.path === 'ziti via SDK');
    for (const [label, r] of [['proxy', z], ['zcat', zc], ...(viaSdk ? [['SDK', viaSdk] as const] : [])] as const) {
      console.log(
        `  targets via ${label}: Ziti echo p50 <= 2 ms ${verdict(r.echo.p50 <= 2)}, p99 <= 5 ms ${verdict(r.echo.p99 <= 5)}; ` +
          `throughput >= 20 MB/s ${verdict(r.mbPerS >= 20)}`,
      );
    }
    console.log(`  push ratio <= 2x ${verdict(ziti / file <= 2)}`);
  } finally {
    if (net) await stopProxy(net.service, net.identities.client).catch(() => null);
    await d?.stop();
    if (box) killRunners(box.home);
    await net?.stop();
    box?.cleanup();
    laptop?.cleanup();
  }
  process.exit(0);
}

await main();
