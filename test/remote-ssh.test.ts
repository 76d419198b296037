// Remote loops over SSH, against a real sshd (Debian's openssh-server) that this file starts on
// 127.0.0.1 with throwaway keys (test/helpers/sshd.ts). The box is a real `ralph daemon` in its own
// RALPH_HOME that listens on its unix socket only; every laptop command runs the real ssh client,
// which runs `ralph bridge` on the box (found on the PATH that sshd's SetEnv gives the session, as an
// admin would set it, or named with --remote-ralph). Push, fetch, status, attach with keystrokes
// (and the shared ssh connection killed mid-attach), logs, stop; ssh's own failures as one line
// each; the shared connection reused, and not when RALPH_SSH_COMMAND turns sharing off.
// Without sshd it skips with one line; with RALPH_REQUIRE_SSH=1 (CI) that is a failure.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { FIXTURES, ROOT, RALPH_BIN, exited, makeTempHome, ralph, waitUntil, within, skipped, type TempHome } from './helpers/env.js';
import { killRunners, startDaemon, type DaemonHandle } from './helpers/daemon.js';
import { sshdOrSkip, type Sshd } from './helpers/sshd.js';
import { Laptop, startedIds } from './helpers/laptop.js';
import { attachProcess } from './helpers/attach.js';

const AGENT = join(FIXTURES, 'agent.mjs');
let sshd: Sshd | null = null;
let laptop: TempHome;
let box: TempHome;
let env: NodeJS.ProcessEnv;
let work: string;
let d: DaemonHandle;
/** A directory on the box that is not on its PATH, with a space in its name. */
let boxTools: string;

let laptopShell: Laptop;
const git = (args: string[]) => laptopShell.git(args);
const cli = (args: string[], extraEnv: Record<string, string> = {}) => laptopShell.cli(args, extraEnv);
const status = () => laptopShell.status();
const config = () => JSON.parse(readFileSync(env.RALPH_CONFIG!, 'utf8')) as { remotes: Record<string, Record<string, unknown>> };
/** An executable script on the box. */
const script = (path: string, body: string) => {
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
};
/** The pid of the ssh master process of the shared connection in the laptop's control dir. */
const masterPid = (): number | null => {
  const dir = env.RALPH_SSH_CONTROL_DIR!;
  const socket = readdirSync(dir)[0];
  if (!socket) return null;
  const r = spawnSync('ssh', ['-F', '/dev/null', '-o', `ControlPath=${join(dir, socket)}`, '-O', 'check', 'x'], { encoding: 'utf8' });
  const pid = /Master running \(pid=(\d+)\)/.exec(r.stderr)?.[1];
  return pid ? Number(pid) : null;
};

test.before(async () => {
  box = makeTempHome('ralph-sb');
  laptop = makeTempHome('ralph-sl');
  // The box's PATH holds `ralph` (a wrapper for this checkout's CLI, as `npm install -g` would
  // leave one in /usr/local/bin); sshd's SetEnv gives every session that PATH and the daemon's home.
  const boxBin = join(box.home, 'path-bin');
  mkdirSync(boxBin);
  script(join(boxBin, 'ralph'), `exec '${process.execPath}' '${RALPH_BIN}' "$@"`);
  boxTools = join(box.home, 'box tools');
  mkdirSync(boxTools);
  sshd = await sshdOrSkip({ PATH: `${boxBin}:/usr/local/bin:/usr/bin:/bin`, RALPH_HOME: box.home });
  if (!sshd) return;
  const bin = join(laptop.home, 'bin');
  mkdirSync(bin);
  symlinkSync(join(ROOT, 'dist', 'cli', 'git-remote-ralph.js'), join(bin, 'git-remote-ralph'));
  env = { ...laptop.env, ...sshd.clientEnv, PATH: `${bin}:${process.env.PATH}` };
  d = await startDaemon(box);
  work = join(laptop.home, 'app');
  laptopShell = await Laptop.withTwoStoryTask(env, work);
});

test.after(async () => {
  try {
    await d?.stop();
    killRunners(box.home);
  } finally {
    await sshd?.stop();
    laptop?.cleanup();
    box?.cleanup();
  }
});

test('remote add --ssh checks the daemon through sshd; the connection is shared from a private directory', async () => {
  if (!sshd) return skipped('no sshd');
  assert.equal(d.addresses, [d.unix], 'the box listens on nothing but its unix socket');
  const add = await cli(['remote', 'add', 'box', '--ssh', sshd.target, '--repo', 'app']);
  assert.is(add.code, 0, add.stderr);
  assert.match(add.stdout, new RegExp(`^added remote box \\(ssh://${sshd.user}@127\\.0\\.0\\.1:${sshd.port}\\): daemon on \\S+, ralph \\d+\\.\\d+\\.\\d+$`, 'm'));
  assert.equal(config().remotes.box, { name: 'box', address: `ssh://${sshd.target}`, gitRemote: 'ralph-remote', repo: 'app' });
  assert.match(await git(['remote', 'get-url', 'ralph-remote']), /^ralph:\/\/box\/app$/);

  // one login so far, and its master's socket in a 0700 directory
  assert.is(sshd.logins(), 1);
  const dir = env.RALPH_SSH_CONTROL_DIR!;
  assert.is(statSync(dir).mode & 0o777, 0o700);
  const sockets = readdirSync(dir);
  assert.is(sockets.length, 1, sockets.join(' '));
  assert.ok(statSync(join(dir, sockets[0]!)).isSocket());
  assert.is(statSync(join(dir, sockets[0]!)).mode & 0o077, 0);

  const tested = await cli(['remote', 'test', 'box']);
  assert.is(tested.code, 0, tested.stderr);
  assert.match(tested.stdout, /^ {2}loops {7}0 running/m);
  assert.match(tested.stdout, new RegExp(`^ {2}via {9}ssh, \`ralph bridge\` on the box, over a shared connection \\(pid ${masterPid()}, socket in ${dir}\\); it ends after 60 s unused$`, 'm'));
  assert.is(sshd.logins(), 1, 'remote test went through the shared connection');
  const listed = await cli(['remote', 'list']);
  assert.match(listed.stdout, new RegExp(`^box\\s+ssh://${sshd.user}@127\\.0\\.0\\.1:${sshd.port}\\s+app\\s+ralph-remote\\s+ssh keys$`, 'm'));
});

let firstLoop = '';

test('git push over ssh starts a loop that completes; status, logs and git fetch work over the same connection', async () => {
  if (!sshd) return skipped('no sshd');
  const loginsBefore = sshd.logins();
  const pushed = await git(['rev-parse', 'HEAD']);
  const r = await laptopShell.gitResult(['push', '-o', `ralph.agent-cmd=node ${AGENT} work`, '-o', 'ralph.iterations=3', 'ralph-remote', 'feature']);
  assert.is(r.code, 0, r.stderr);
  const ids = startedIds(r);
  assert.is(ids.length, 1, r.stderr);
  firstLoop = ids[0]!;
  const row = (await status()).find((e) => e.id === firstLoop)!;
  assert.ok(row, 'the laptop has a row for the loop');
  assert.is(row.location, 'remote');
  assert.is(row.remote, 'box');

  const done = await waitUntil(async () => {
    const e = (await status()).find((x) => x.id === firstLoop)!;
    return e.status === 'completed' ? e : null;
  }, { timeoutMs: 90_000, intervalMs: 300, what: `loop ${firstLoop} completed, seen through ralph status over ssh` });
  assert.is(done.iteration, 2);
  assert.match(String(done.reason), /stories pass/);

  const logs = await cli(['logs', firstLoop]);
  assert.is(logs.code, 0, logs.stderr);
  assert.match(logs.stdout, /working on .*US-2/);
  assert.match(logs.stdout, /<promise>COMPLETE<\/promise>/);

  await git(['fetch', '--quiet', 'ralph-remote']);
  assert.is(await git(['rev-parse', `ralph-remote/ralph/${firstLoop}~2`]), pushed, 'two agent commits on top of the pushed commit');
  assert.match(await git(['log', '-1', '--format=%s', `ralph-remote/ralph/${firstLoop}`]), /US-2/);
  assert.is(sshd.logins(), loginsBefore, 'push, status, logs and fetch all reused the shared connection');
});

test('attach over ssh types into the agent; the shared ssh connection killed mid-attach: attach reconnects and resumes from seq, nothing lost or doubled', async () => {
  if (!sshd) return skipped('no sshd');
  const COUNT = 300;
  await git(['switch', '--quiet', '-c', 'typing']);
  const agentCmd = `FIXTURE_SLOW_MS=40 FIXTURE_SLOW_COUNT=${COUNT} node ${AGENT} echo,slow,work,work`;
  const r = await laptopShell.gitResult(['push', '-o', `ralph.agent-cmd=${agentCmd}`, '-o', 'ralph.iterations=2', 'ralph-remote', 'typing']);
  assert.is(r.code, 0, r.stderr);
  const id = startedIds(r)[0]!;
  assert.ok(id, r.stderr);

  const a = attachProcess(id, env, { cwd: work });
  try {
    await a.stdout('ECHO READY', 30_000);
    a.keys('i');
    await a.stderr('interactive —');
    a.keys('typed through ssh\rq\r\x1d');
    await a.stdout('typed through ssh');

    // Mid-stream, the shared connection's master dies: every channel on it ends at once; attach
    // dials again (a new master) and asks for output from the last seq it had.
    await a.stdout(/slow line 30\b/, 30_000);
    const master = masterPid();
    assert.ok(master, 'a shared connection runs');
    const logins = sshd.logins();
    process.kill(master!, 'SIGKILL');
    await a.stderr('reconnected', 30_000);
    const end = await within(exited(a.child), 120_000, 'attach to exit at the loop\'s end');
    assert.is(end.code, 0, a.errors());
    assert.match(a.errors(), /connection lost .*reconnecting/);
    assert.ok(sshd.logins() > logins, 'a new ssh connection was made');
    assert.is.not(masterPid(), master);

    const seen = [...a.output().matchAll(/slow line (\d+)\b/g)].map((m) => Number(m[1]));
    assert.equal(seen, Array.from({ length: COUNT }, (_, i) => i + 1), 'every slow line exactly once, in order');
    assert.match(a.output(), /<promise>COMPLETE<\/promise>/);
    assert.match(a.errors(), new RegExp(`ralph: loop ${id} completed`));
  } finally {
    if (a.child.exitCode === null) a.child.kill('SIGKILL');
  }
});

test('ralph stop over ssh stops the loop on the box and records it; status agrees', async () => {
  if (!sshd) return skipped('no sshd');
  const r = await laptopShell.gitResult(['push', '-o', 'ralph.agent-cmd=echo working; sleep 120', '-o', 'ralph.iterations=1', 'ralph-remote', 'feature:stopme']);
  assert.is(r.code, 0, r.stderr);
  const id = startedIds(r)[0]!;
  const stop = await cli(['stop', id]);
  assert.is(stop.code, 0, stop.stderr);
  assert.match(stop.stdout, new RegExp(`${id}.*stopped`));
  assert.is((await status()).find((e) => e.id === id)?.status, 'stopped');
  assert.is((await d.control().then((p) => p.request<Array<{ loopId: string; status: string }>>('loop.list', {}))).find((l) => l.loopId === id)?.status, 'stopped');
});

test('the shared connection: reused by every command, closed by remote disconnect, and off when RALPH_SSH_COMMAND says ControlPath=none', async () => {
  if (!sshd) return skipped('no sshd');
  await cli(['remote', 'test', 'box']);
  const before = sshd.logins();
  for (let i = 0; i < 3; i++) assert.is((await cli(['status'])).code, 0);
  assert.is((await cli(['remote', 'test', 'box'])).code, 0);
  assert.is(sshd.logins(), before, 'no new login while the shared connection is up');

  const master = masterPid();
  const disc = await cli(['remote', 'disconnect', 'box']);
  assert.is(disc.code, 0, disc.stderr);
  assert.is(disc.stdout, `closed the shared ssh connection of remote box (pid ${master})\n`);
  await waitUntil(() => readdirSync(env.RALPH_SSH_CONTROL_DIR!).length === 0, { what: 'the control socket gone' });
  const again = await cli(['remote', 'disconnect', 'box']);
  assert.is(again.stdout, 'remote box has no shared connection open\n');
  assert.is((await cli(['remote', 'test', 'box'])).code, 0);
  assert.is(sshd.logins(), before + 1, 'the next command made one new connection');

  const unshared = { RALPH_SSH_COMMAND: sshd.sshCommand({ extra: '-o ControlPath=none' }) };
  const n = sshd.logins();
  for (let i = 0; i < 2; i++) {
    const t = await cli(['remote', 'test', 'box'], unshared);
    assert.is(t.code, 0, t.stderr);
    assert.match(t.stdout, /via {9}ssh, `ralph bridge` on the box; no shared connection/);
  }
  assert.is(sshd.logins(), n + 2, 'one login per command');
});

test('--remote-ralph names ralph on the box (a path with a space, quoted for its shell)', async () => {
  if (!sshd) return skipped('no sshd');
  const path = join(boxTools, 'ralph');
  script(path, `exec '${process.execPath}' '${RALPH_BIN}' "$@"`);
  const add = await cli(['remote', 'add', 'tools', '--ssh', sshd.target, '--remote-ralph', path, '--no-check', '--git-remote', 'tools']);
  assert.is(add.code, 0, add.stderr);
  assert.is(config().remotes.tools!.remoteRalph, path);
  const t = await cli(['remote', 'test', 'tools']);
  assert.is(t.code, 0, t.stderr);
  assert.match(t.stdout, /^remote tools \(ssh:\/\/\S+\) answers$/m);
  assert.ok(t.stdout.includes(`via         ssh, \`${path} bridge\` on the box`), t.stdout);
  assert.is((await cli(['remote', 'remove', 'tools'])).code, 0);
});

test("ssh's own failures, and a box without ralph or without a daemon: one line each, nothing saved", async () => {
  if (!sshd) return skipped('no sshd');
  const emptyKnownHosts = join(laptop.home, 'known_hosts.empty');
  writeFileSync(emptyKnownHosts, '');
  const otherKnownHosts = join(laptop.home, 'known_hosts.other');
  writeFileSync(otherKnownHosts, `[127.0.0.1]:${sshd.port} ${readFileSync(`${sshd.strangerKey}.pub`, 'utf8')}`);
  const elsewhere = join(boxTools, 'ralph-elsewhere');
  script(elsewhere, `RALPH_HOME='${join(box.home, 'no-daemon-here')}' exec '${process.execPath}' '${RALPH_BIN}' "$@"`);
  const deadPort = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
  // Sharing off: a shared connection would let these through on the good key's login.
  const unshared = (o: { key?: string; knownHosts?: string } = {}) => ({ RALPH_SSH_COMMAND: sshd!.sshCommand({ ...o, extra: '-o ControlPath=none' }) });
  const target = sshd.target;
  const cases: Array<{ what: string; args: string[]; env: Record<string, string>; error: RegExp }> = [
    {
      what: 'unknown host key',
      args: ['--ssh', target],
      env: unshared({ knownHosts: emptyKnownHosts }),
      error: new RegExp(`: the host key of 127\\.0\\.0\\.1 is not known here yet: check it and accept it once by connecting by hand \\(ssh -p ${sshd.port} ${sshd.user}@127\\.0\\.0\\.1 true\\)`),
    },
    {
      what: 'changed host key',
      args: ['--ssh', target],
      env: unshared({ knownHosts: otherKnownHosts }),
      error: new RegExp(`: the host key of 127\\.0\\.0\\.1 has CHANGED since it was saved in known_hosts: .*ssh-keygen -R '\\[127\\.0\\.0\\.1\\]:${sshd.port}'`),
    },
    {
      what: 'key not authorized',
      args: ['--ssh', target],
      env: unshared({ key: sshd.strangerKey }),
      error: new RegExp(`: 127\\.0\\.0\\.1 refused the login of ${sshd.user} \\(publickey\\): put your public key in that user's ~/\\.ssh/authorized_keys there, or choose the key with RALPH_SSH_COMMAND='ssh -i KEY'`),
    },
    {
      what: 'no sshd on the port',
      args: ['--ssh', `${sshd.user}@127.0.0.1:${deadPort}`],
      env: unshared(),
      error: new RegExp(`: nothing accepts ssh connections on 127\\.0\\.0\\.1 port ${deadPort} \\(connection refused\\): is sshd running there, and on that port\\?`),
    },
    {
      what: 'no ralph on the PATH',
      args: ['--ssh', target, '--remote-ralph', 'ralph-not-installed'],
      env: unshared(),
      error: /: 127\.0\.0\.1 has no command ralph-not-installed for ssh to run \(.*ralph-not-installed: command not found\); install ralph there, or fix the path/,
    },
    {
      what: 'no ralph at that path',
      args: ['--ssh', target, '--remote-ralph', '/nonexistent/ralph'],
      env: unshared(),
      error: /: 127\.0\.0\.1 has no command \/nonexistent\/ralph for ssh to run \(.*No such file or directory\)/,
    },
    {
      what: 'no daemon on the box',
      args: ['--ssh', target, '--remote-ralph', elsewhere],
      env: unshared(),
      error: new RegExp(`: on 127\\.0\\.0\\.1: no daemon answers at ${join(box.home, 'no-daemon-here', 'daemon.sock')} \\(nothing is listening there\\): start it on this box with: ralph daemon`),
    },
    {
      what: 'RALPH_SSH_COMMAND with shell syntax',
      args: ['--ssh', target],
      env: { RALPH_SSH_COMMAND: 'ssh -i $HOME/key' },
      error: /: RALPH_SSH_COMMAND "ssh -i \$HOME\/key": it is split into words, not run by a shell: quote \$ or leave it out/,
    },
    {
      what: 'no ssh program',
      args: ['--ssh', target],
      env: { RALPH_SSH_COMMAND: '/nonexistent/ssh' },
      error: /: cannot run \/nonexistent\/ssh \(not found\): install OpenSSH's client, or name it in RALPH_SSH_COMMAND/,
    },
  ];
  for (const c of cases) {
    const r = await cli(['remote', 'add', 'bad', ...c.args, '--git-remote', 'bad'], c.env);
    assert.is(r.code, 1, `${c.what}: ${r.stderr}`);
    assert.is(r.stderr.split('\n').filter(Boolean).length, 1, `${c.what}: one line, got ${r.stderr}`);
    assert.match(r.stderr, /^ralph: remote bad \(ssh:\/\/\S+\): /, c.what);
    assert.match(r.stderr, c.error, `${c.what}: ${r.stderr}`);
    assert.match(r.stderr, /; nothing saved \(--no-check adds it anyway\)\n$/, c.what);
    assert.not.ok(config().remotes.bad, `${c.what}: nothing saved`);
  }
  const flags: Array<[string[], RegExp]> = [
    [['--ssh', '-oProxyCommand=x'], /bad ssh address "ssh:\/\/-oProxyCommand=x": expected \[USER@\]HOST\[:PORT\]/],
    [['--ssh', 'box;rm'], /bad ssh address/],
    [['--ssh', target, '--token-file', '/x'], /--token-file goes with a tcp:\/\/ address; a ssh remote needs no token/],
    [['--address', 'tcp://127.0.0.1:1', '--remote-ralph', 'x'], /--remote-ralph goes with --ssh/],
    [['--ssh', target, '--address', 'tcp://127.0.0.1:1'], /give one of --address, --ssh and --ziti-service, not --address and --ssh/],
  ];
  for (const [args, re] of flags) {
    const r = await cli(['remote', 'add', 'bad', ...args, '--no-check']);
    assert.is(r.code, 1, args.join(' '));
    assert.match(r.stderr, re);
    assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  }
});

test('a daemon refuses an ssh:// listen address with a pointer to remote add --ssh', async () => {
  if (!sshd) return skipped('no sshd');
  const other = makeTempHome('ralph-sd2');
  try {
    const r = await ralph(['daemon', '--home', other.home, '--listen', `ssh://${sshd.target}`], { env: other.env, timeoutMs: 20_000 });
    assert.is(r.code, 1);
    assert.is(
      r.stderr,
      `ralph: ssh://${sshd.target} is not for the daemon: over ssh, sshd runs \`ralph bridge\` on this box, which joins the daemon's unix socket; add the remote on the laptop with: ralph remote add NAME --ssh [USER@]HOST[:PORT]\n`,
    );
  } finally {
    other.cleanup();
  }
});

test.run();
