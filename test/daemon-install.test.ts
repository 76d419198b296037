// loop.start when the agent CLI is missing: the daemon installs it (npm, from a local tarball of the
// fixture agent package), the caller sees progress lines and so does the loop's log; a failed install
// fails that loop with npm's reason, and the next start tries again.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ErrorCodes, type RpcError } from '../rpc/index.js';
import { FIXTURES, makeTempHome, runCommand } from './helpers/env.js';
import { killRunners, startDaemon, type DaemonHandle } from './helpers/daemon.js';

const t = makeTempHome('ralph-di');
let tarball: string;
let d: DaemonHandle | undefined;

// No real agent CLI may be found: PATH holds node and git only.
const PATH = [dirname(process.execPath), '/usr/bin', '/bin'].join(':');
const npmEnv = {
  PATH,
  // The fixture is installed as `claude`, whose root check ralph applies (these tests may run as root).
  IS_SANDBOX: '1',
  npm_config_offline: 'true',
  npm_config_cache: join(t.home, 'npm-cache'),
  npm_config_update_notifier: 'false',
};

async function git(args: string[], cwd: string): Promise<string> {
  const r = await runCommand('git', args, { env: t.env, cwd, timeoutMs: 30_000 });
  if (r.code !== 0) throw new Error(`git ${args.join(' ')}: ${r.stderr}`);
  return r.stdout.trim();
}

test.before(async () => {
  const pack = join(t.home, 'pack');
  mkdirSync(pack);
  const packed = await runCommand('npm', ['pack', '--silent', '--pack-destination', pack, join(FIXTURES, 'agent-package')], {
    env: { ...process.env, ...npmEnv, PATH: process.env.PATH },
    timeoutMs: 60_000,
  });
  assert.is(packed.code, 0, packed.stderr);
  tarball = join(pack, packed.stdout.trim().split('\n').pop()!);
  writeFileSync(join(t.home, 'config.json'), JSON.stringify({ remotes: {}, agentPackages: { claude: tarball } }));

  const bare = join(t.home, 'repos', 'x.git');
  mkdirSync(join(t.home, 'repos'));
  await git(['init', '--quiet', '--bare', bare], t.home);
  const work = join(t.home, 'work');
  mkdirSync(work);
  await git(['init', '--quiet', '-b', 'main'], work);
  writeFileSync(join(work, 'prd.json'), JSON.stringify({ project: 'x', userStories: [{ id: 'US-1', title: 'one', passes: false }] }));
  await git(['add', 'prd.json'], work);
  await git(['commit', '--quiet', '-m', 'task'], work);
  await git(['push', '--quiet', `file://${bare}`, 'main'], work);
});

test.after(async () => {
  await d?.stop();
  killRunners(t.home);
  t.cleanup();
});

async function startWithProgress(daemon: DaemonHandle) {
  const control = await daemon.control();
  const progress: string[] = [];
  control.onNotification('loop.progress', (p: any) => progress.push(p.line));
  const result = await control
    .request<any>('loop.start', { repo: 'x', branch: 'main', agent: 'claude', maxIterations: 3 }, { timeoutMs: 120_000 })
    .then((r) => ({ ok: r }), (err: RpcError) => ({ err }));
  return { control, progress, result };
}

test('a failed install fails that loop with the reason; after it, a start installs the agent and runs', async () => {
  d = await startDaemon(t, { env: { ...npmEnv, RALPH_TEST_INSTALL_FAIL: '1' } });
  const first = await startWithProgress(d);
  assert.ok('err' in first.result, 'the start fails');
  const err = (first.result as { err: RpcError }).err;
  assert.is.not(err.code, ErrorCodes.Busy);
  const failedId = (err.data as any).loopId as string;
  assert.match(err.message, new RegExp(`loop ${failedId} failed to start: .*claude`));
  assert.ok(first.progress.some((l) => /installing claude/.test(l)), first.progress.join('\n'));
  const failed = ((await first.control.request('loop.list', {})) as any[]).find((l) => l.loopId === failedId);
  assert.is(failed.status, 'failed');
  assert.match(failed.reason, /claude/);
  assert.not.ok(existsSync(join(t.home, 'worktrees', failedId)), 'its worktree is removed');
  const failedLog: any = await first.control.request('loop.logs', { loopId: failedId });
  assert.match(failedLog.data, /installing claude/);
  assert.match(failedLog.data, /failed to start/);
  await d.stop();

  d = await startDaemon(t, { env: npmEnv });
  const sub = await d.subscribe();
  const second = await startWithProgress(d);
  assert.ok('ok' in second.result, JSON.stringify(second.result));
  const loopId = (second.result as { ok: any }).ok.loopId as string;
  assert.ok(second.progress.some((l) => /installing claude/.test(l)), second.progress.join('\n'));
  assert.ok(second.progress.every((l) => !l.startsWith('ralph: ')), 'no doubled prefix for the hook');
  const done = await sub.next('loop.completed', loopId, 60_000);
  assert.is(done.status, 'completed');
  const logs: any = await second.control.request('loop.logs', { loopId });
  // ralph's install lines come first in the loop's output, then the agent's.
  assert.ok(logs.data.indexOf('installing claude') < logs.data.indexOf('fixture agent: story US-1 done'), logs.data);
  const info: any = await second.control.request('daemon.info', {});
  assert.is(info.agents.claude.available, true);
  assert.match(info.agents.claude.path, /agents\/node_modules\/\.bin\/claude$/);
});

test.run();
