// Agent CLI auto-install, for real: `npm install` of a tarball packed from test/fixtures/agent-package,
// run by ensureAgentInstalled in separate processes, as the daemon would before a loop starts.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ROOT, FIXTURES, makeTempHome, runCommand, type TempHome } from './helpers/env.js';

const AGENTS_MODULE = join(ROOT, 'dist', 'install', 'agents.js');
const STORE_MODULE = join(ROOT, 'dist', 'store', 'index.js');

let t: TempHome;
let tarball: string;

test.before(async () => {
  t = makeTempHome('ralph-install');
  const packDir = join(t.home, 'pack');
  mkdirSync(packDir);
  const packed = await runCommand('npm', ['pack', '--silent', '--pack-destination', packDir, join(FIXTURES, 'agent-package')], {
    env: npmEnv(),
    timeoutMs: 60_000,
  });
  assert.is(packed.code, 0, packed.stderr);
  tarball = join(packDir, packed.stdout.trim().split('\n').pop()!);
  assert.ok(existsSync(tarball), `npm pack made ${tarball}`);
});

test.after(() => t.cleanup());

/** npm without the network: a local tarball needs no registry, and a private cache keeps runs apart. */
function npmEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return {
    ...process.env,
    npm_config_offline: 'true',
    npm_config_cache: join(t?.home ?? ROOT, 'npm-cache'),
    npm_config_update_notifier: 'false',
    ...extra,
  };
}

interface Setup {
  home: string;
  config: Record<string, unknown>;
  installLog: string;
}

let n = 0;
function newSetup(agentPackages: Record<string, string>): Setup {
  const home = join(t.home, `home-${++n}`);
  mkdirSync(home);
  return { home, config: { remotes: {}, agentPackages }, installLog: join(home, 'install.log') };
}

/** Runs ensureAgentInstalled in its own process, as a daemon would; resolves with what it said. */
function ensureIn(
  s: Setup,
  agent: string,
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<{ code: number | null; progress: string[]; binDirs: string[]; error: string | null; stderr: string }> {
  const script = `
    import { ensureAgentInstalled } from ${JSON.stringify(AGENTS_MODULE)};
    import { homePaths } from ${JSON.stringify(STORE_MODULE)};
    const [agent, home, config] = [process.argv[1], process.argv[2], JSON.parse(process.argv[3])];
    const progress = [];
    try {
      const binDirs = await ensureAgentInstalled(agent, homePaths(home), config, (l) => progress.push(l));
      console.log(JSON.stringify({ progress, binDirs, error: null }));
    } catch (err) {
      console.log(JSON.stringify({ progress, binDirs: [], error: err.message }));
      process.exitCode = 3;
    }`;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script, agent, s.home, JSON.stringify(s.config)], {
      env: npmEnv({
        // the fixture's commands must come from the install, never from the machine
        PATH: [dirname(process.execPath), '/usr/local/bin', '/usr/bin', '/bin'].join(':'),
        RALPH_TEST_INSTALL_LOG: s.installLog,
        ...extraEnv,
      }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`ensureAgentInstalled did not finish within 120 s\n${out}\n${err}`));
    }, 120_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      try {
        resolve({ code, stderr: err, ...JSON.parse(out.trim().split('\n').pop() ?? '') });
      } catch {
        reject(new Error(`no result from the install process (exit ${code}):\n${out}\n${err}`));
      }
    });
  });
}

function installCount(s: Setup): number {
  return existsSync(s.installLog) ? readFileSync(s.installLog, 'utf8').trim().split('\n').length : 0;
}

test('a missing agent CLI is installed from its package once, with progress lines; then found', async () => {
  const s = newSetup({ 'ralph-test-agent': tarball });
  const first = await ensureIn(s, 'ralph-test-agent');
  assert.is(first.error, null, first.stderr);
  assert.is(first.progress[0], `ralph: installing ralph-test-agent (${tarball}) with npm…`);
  assert.match(first.progress[1]!, /^ralph: installed ralph-test-agent ralph-fixture-agent 1\.0\.0 in \d+\.\ds \(npm picked ralph-fixture-agent@1\.0\.0 for Node \d+\.\d+\.\d+\)$/);
  const binDir = join(s.home, 'agents', 'node_modules', '.bin');
  assert.equal(first.binDirs, [binDir]);
  const ran = await runCommand(join(binDir, 'ralph-test-agent'), ['--version']);
  assert.is(ran.stdout.trim(), 'ralph-fixture-agent 1.0.0');
  assert.is(installCount(s), 1);

  const again = await ensureIn(s, 'ralph-test-agent');
  assert.is(again.error, null);
  assert.equal(again.progress, [], 'nothing to do the second time');
  assert.equal(again.binDirs, [binDir]);
  assert.is(installCount(s), 1, 'npm did not run again');
});

test('an agent already on PATH, and a custom agent, need nothing', async () => {
  const s = newSetup({});
  const onPath = await ensureIn(s, 'sh'); // no package known for it, but the command exists
  assert.is(onPath.error, null);
  assert.equal(onPath.progress, []);
  assert.equal(onPath.binDirs, []);
  const custom = await ensureIn(s, 'custom');
  assert.is(custom.error, null);
  assert.equal(custom.progress, []);
  assert.not.ok(existsSync(join(s.home, 'agents')), 'nothing was created');
});

test('an agent with no command and no known package: one clear line', async () => {
  const s = newSetup({});
  const r = await ensureIn(s, 'no-such-agent');
  assert.is(r.code, 3);
  assert.match(r.error!, /agent no-such-agent: no `no-such-agent` command on PATH and no npm package known for it/);
  assert.match(r.error!, /agentPackages\.no-such-agent/);
});

test('a name that is a key of every object (constructor, toString) is no known agent', async () => {
  const s = newSetup({});
  for (const agent of ['constructor', 'toString']) {
    const r = await ensureIn(s, agent);
    assert.is(r.code, 3);
    assert.match(r.error!, new RegExp(`^agent ${agent}: no \`${agent}\` command on PATH and no npm package known for it`));
  }
});

test('a failed install says why in a line or two, leaves nothing that looks installed, and the next attempt succeeds', async () => {
  const missing = join(t.home, 'pack', 'does-not-exist.tgz');
  const s = newSetup({ 'ralph-test-agent': missing });
  const binPath = join(s.home, 'agents', 'node_modules', '.bin', 'ralph-test-agent');

  const noTarball = await ensureIn(s, 'ralph-test-agent');
  assert.is(noTarball.code, 3);
  assert.match(noTarball.error!, /^installing ralph-test-agent \(.*does-not-exist\.tgz\) with npm failed: npm error code ENOENT: /);
  assert.ok(noTarball.error!.split('\n').length <= 2, noTarball.error!);
  assert.not.match(noTarball.error!, /complete log/);
  assert.not.ok(existsSync(binPath));

  // the package itself refuses to install (its install script exits 1)
  s.config.agentPackages = { 'ralph-test-agent': tarball };
  const refused = await ensureIn(s, 'ralph-test-agent', { RALPH_TEST_INSTALL_FAIL: '1' });
  assert.is(refused.code, 3);
  assert.match(refused.error!, /with npm failed: npm error code 1: command failed; /);
  assert.match(refused.error!, /install refused/, 'the script\'s own words come through');
  assert.ok(refused.error!.split('\n').length <= 2, refused.error!);
  assert.not.ok(existsSync(binPath), 'nothing half-installed');
  assert.is(installCount(s), 1);

  const fixed = await ensureIn(s, 'ralph-test-agent');
  assert.is(fixed.error, null, fixed.stderr);
  assert.is(fixed.progress.length, 2);
  assert.ok(existsSync(binPath));
  assert.is(installCount(s), 2, 'the next attempt really installed it');
});

test('a CLI that installs but does not run (its install script skipped) is not taken as installed', async () => {
  const s = newSetup({ 'ralph-test-agent': tarball });
  const stub = await ensureIn(s, 'ralph-test-agent', { RALPH_TEST_AGENT_STUB: '1' });
  assert.is(stub.code, 3);
  assert.match(stub.error!, /^npm installed .*, but `ralph-test-agent --version` fails: Error: claude native binary not installed\. .*install script may have been skipped/);
  assert.not.match(stub.error!, /\n/);
  // No marker was written: the next start checks again and, the CLI now running, takes it.
  const fixed = await ensureIn(s, 'ralph-test-agent');
  assert.is(fixed.error, null, fixed.stderr);
  assert.match(fixed.progress[1]!, /installed ralph-test-agent ralph-fixture-agent 1\.0\.0/);
});

test('two processes needing the same agent at once: npm runs once, both get it', async () => {
  const s = newSetup({ 'ralph-test-agent': tarball });
  const [a, b] = await Promise.all([ensureIn(s, 'ralph-test-agent'), ensureIn(s, 'ralph-test-agent')]);
  assert.is(a.error, null, a.stderr);
  assert.is(b.error, null, b.stderr);
  assert.equal(a.binDirs, b.binDirs);
  assert.is(installCount(s), 1, 'npm installed the package once');
  const installers = [a, b].filter((r) => r.progress.some((l) => l.startsWith('ralph: installing')));
  assert.is(installers.length, 1, 'one of them installed, the other found it installed');
  assert.not.ok(existsSync(join(s.home, 'locks', 'agents-install.lock')), 'the lock is released');
});

test('a lock left by a dead process is taken over', async () => {
  const s = newSetup({ 'ralph-test-agent': tarball });
  // a process that has exited: its pid names no one (or someone else, whose start time differs)
  const dead = await runCommand(process.execPath, ['-e', 'console.log(process.pid)']);
  const lock = join(s.home, 'locks', 'agents-install.lock');
  mkdirSync(lock, { recursive: true });
  writeFileSync(join(lock, 'owner'), JSON.stringify({ pid: Number(dead.stdout.trim()), host: (await import('node:os')).hostname(), start: '1' }));
  const r = await ensureIn(s, 'ralph-test-agent');
  assert.is(r.error, null, r.stderr);
  assert.is(installCount(s), 1);
  assert.not.ok(existsSync(lock));
});

test.run();
