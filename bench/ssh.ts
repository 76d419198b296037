// `npm run bench:ssh`: what reaching a daemon over ssh costs, against a real sshd on loopback
// (test/helpers/sshd.ts: Debian's openssh-server, throwaway keys) and a real daemon that listens on
// its unix socket (for ssh) and on loopback tcp (the baseline, with its token), in the same run.
//  1. a new connection + `daemon.info` (what every `ralph status` / `attach` / push pays once),
//     BENCH_CONNECTS (default 10) each: tcp; ssh making its shared connection (the first command);
//     ssh through the running shared connection (every later command); ssh with sharing off
//     (RALPH_SSH_COMMAND='ssh -o ControlPath=none'). Baselines without ralph, measured the same way:
//     `ssh … true` through the shared connection and without it (ssh plus the box's login shell),
//     and `node ralph.js --version` (a ralph starting on the box, as `ralph bridge` does).
//  2. keystroke echo round trip (BENCH_KEYSTROKES, default 1000) and output throughput
//     (BENCH_FLOOD_MB, default 32) over the daemon's loop channel: tcp vs ssh.
// The box's login shell runs for every ssh session: a heavy rc file (pyenv, nvm …) shows up in
// every ssh figure and in the `true` baseline alike.

import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { daemonInfo, bridgeCommand } from '../client/daemon.js';
import { openChannel } from '../daemon/hello.js';
import type { RemoteConfig } from '../store/config.js';
import { parseAddress, type Address } from '../transport/index.js';
import { closeSharedConnection, sshConnectArgv } from '../transport/ssh/index.js';
import { killRunners, startDaemon, type DaemonHandle } from '../test/helpers/daemon.js';
import { RALPH_BIN, makeTempHome, type TempHome } from '../test/helpers/env.js';
import { findSshd, startSshd, type Sshd } from '../test/helpers/sshd.js';
import { loadAverageText as load, measureLoopPath, type PathRow } from './loop-path.js';
import { percentiles, type Percentiles } from './measure.js';

const KEYSTROKES = Number(process.env.BENCH_KEYSTROKES || 1000);
const FLOOD_MB = Number(process.env.BENCH_FLOOD_MB || 32);
const CONNECTS = Number(process.env.BENCH_CONNECTS || 10);

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): void {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
}

/** Milliseconds of `samples` runs of `once`, each after `before`. */
async function sample(label: string, once: () => Promise<unknown> | void, before: () => Promise<unknown> | void = () => {}): Promise<Percentiles> {
  const ms: number[] = [];
  for (let i = 0; i < CONNECTS; i++) {
    await before();
    const t0 = process.hrtime.bigint();
    await once();
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const p = percentiles(ms);
  console.log(`  ${label.padEnd(34)} p50 ${p.p50.toFixed(0).padStart(4)} ms  max ${p.max.toFixed(0).padStart(4)} ms   [load ${load()}]`);
  return p;
}

async function main(): Promise<void> {
  console.log(`ralph ssh benchmark — ${new Date().toISOString()}, node ${process.version}, load average ${load()}`);
  const found = findSshd();
  if ('skip' in found) {
    console.log(found.skip);
    return;
  }
  let sshd: Sshd | undefined;
  let box: TempHome | undefined;
  let laptop: TempHome | undefined;
  let d: DaemonHandle | undefined;
  try {
    box = makeTempHome('ralph-bsb');
    laptop = makeTempHome('ralph-bsl');
    const boxBin = join(box.home, 'path-bin');
    mkdirSync(boxBin);
    writeFileSync(join(boxBin, 'ralph'), `#!/bin/sh\nexec '${process.execPath}' '${RALPH_BIN}' "$@"\n`);
    chmodSync(join(boxBin, 'ralph'), 0o755);
    sshd = await startSshd({ PATH: `${boxBin}:/usr/local/bin:/usr/bin:/bin`, RALPH_HOME: box.home });
    Object.assign(process.env, sshd.clientEnv);
    d = await startDaemon(box, { listen: ['tcp://127.0.0.1:0'] });

    const viaTcp: RemoteConfig = { name: 'box', address: d.tcp!, token: d.token };
    const viaSsh: RemoteConfig = { name: 'box', address: `ssh://${sshd.target}` };
    const target = parseAddress(viaSsh.address) as Address & { kind: 'ssh' };
    const shared = sshd.clientEnv.RALPH_SSH_COMMAND;
    const unshared = sshd.sshCommand({ extra: '-o ControlPath=none' });
    const sharing = (on: boolean) => (process.env.RALPH_SSH_COMMAND = on ? shared : unshared);
    const info = (remote: RemoteConfig) => () => daemonInfo(remote, { timeoutMs: 30_000 });
    const sshTrue = () => {
      const [program, ...args] = sshConnectArgv(target, { remoteCommand: ['true'] }, 30_000) as [string, ...string[]];
      run(program, args);
    };

    console.log(`\nnew connection + daemon.info (${CONNECTS} each), and the same ssh without ralph:`);
    const c: Record<string, Percentiles> = {};
    c.tcp = await sample('tcp loopback (with the token)', info(viaTcp));
    sharing(true);
    c.first = await sample('ssh, making the shared connection', info(viaSsh), () => closeSharedConnection(target));
    c.shared = await sample('ssh, through the shared connection', info(viaSsh));
    c.trueShared = await sample('  baseline: ssh … true, shared', sshTrue);
    sharing(false);
    c.unshared = await sample('ssh, sharing off', info(viaSsh));
    c.trueUnshared = await sample('  baseline: ssh … true, not shared', sshTrue);
    sharing(true);
    c.nodeStart = await sample('  baseline: node ralph.js --version', () => run(process.execPath, [RALPH_BIN, '--version']));

    // The loops the echo/flood measurements run: a task pushed straight into the box's repo.
    const bare = join(box.home, 'repos', 'app.git');
    run('git', ['init', '--quiet', '--bare', bare]);
    const task = join(laptop.home, 'task');
    mkdirSync(task);
    run('git', ['init', '--quiet', '-b', 'bench', task], { env: laptop.env });
    writeFileSync(join(task, 'prd.json'), JSON.stringify({ project: 'app', userStories: [{ id: 'US-1', title: 'x', passes: false }] }));
    run('git', ['add', '.'], { cwd: task, env: laptop.env });
    run('git', ['commit', '--quiet', '-m', 'task'], { cwd: task, env: laptop.env });
    run('git', ['push', '--quiet', `file://${bare}`, 'bench'], { cwd: task, env: laptop.env });

    console.log(`\nkeystroke echo (${KEYSTROKES} keystrokes) and output throughput (${FLOOD_MB} MB flood) over the loop channel:`);
    const opts = { keystrokes: KEYSTROKES, floodMb: FLOOD_MB };
    const rows: PathRow[] = [];
    rows.push(await measureLoopPath('tcp loopback', d, async (loop) => (await openChannel(d!.tcp!, { channel: 'loop', loop, client: 'bench', token: d!.token })).stream, opts));
    rows.push(
      await measureLoopPath(
        'ssh (shared connection)',
        d,
        async (loop) => (await openChannel(viaSsh.address, { channel: 'loop', loop, client: 'bench' }, { ssh: { remoteCommand: bridgeCommand(viaSsh) }, timeoutMs: 30_000 })).stream,
        opts,
      ),
    );

    const ms = (k: string) => `${c[k]!.p50.toFixed(0)} ms`;
    console.log(`\nsummary (p50; load average now ${load()}):`);
    console.log(`  new connection + daemon.info: tcp ${ms('tcp')}; ssh first ${ms('first')}, shared ${ms('shared')}, sharing off ${ms('unshared')}`);
    console.log(`  without ralph: ssh … true shared ${ms('trueShared')}, not shared ${ms('trueUnshared')}; node ralph.js --version ${ms('nodeStart')}`);
    console.log(`  sharing saves ${(c.unshared!.p50 - c.shared!.p50).toFixed(0)} ms per command; ralph's part of a shared ssh connection ≈ ${(c.shared!.p50 - c.trueShared!.p50).toFixed(0)} ms (bridge start + hello)`);
    console.log(`  | path                    | echo p50 | echo p95 | echo p99 | throughput | CPUs busy |`);
    console.log(`  |-------------------------|----------|----------|----------|------------|-----------|`);
    for (const r of rows) {
      console.log(`  | ${r.path.padEnd(23)} | ${r.echo.p50.toFixed(2).padStart(5)} ms | ${r.echo.p95.toFixed(2).padStart(5)} ms | ${r.echo.p99.toFixed(2).padStart(5)} ms | ${r.mbPerS.toFixed(1).padStart(5)} MB/s | ${(r.cpuBusy * 100).toFixed(0).padStart(7)} % |`);
    }
  } finally {
    await d?.stop();
    if (box) killRunners(box.home);
    await sshd?.stop();
    box?.cleanup();
    laptop?.cleanup();
  }
  process.exit(0);
}

await main();
