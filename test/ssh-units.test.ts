// The ssh transport's parts that need no sshd: ssh:// addresses, RALPH_SSH_COMMAND's word split,
// quoting for the box's shell (checked against a real sh), the argv ralph gives ssh, ssh's failures
// in the user's terms, and the bridge's half-close over a real unix socket.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { formatAddress, parseAddress, type Address } from '../transport/index.js';
import { bridgeToSocket } from '../transport/ssh/bridge.js';
import { quoteForRemoteShell, splitCommandLine } from '../transport/ssh/command.js';
import { explainSshExit } from '../transport/ssh/errors.js';
import { sshConnectArgv } from '../transport/ssh/index.js';

test('ssh:// addresses: user, host, port, IPv6; names that could pass for options are refused', () => {
  const ok: Array<[string, Address]> = [
    ['ssh://box', { kind: 'ssh', host: 'box' }],
    ['ssh://me@box.example.org:2222', { kind: 'ssh', user: 'me', host: 'box.example.org', port: 2222 }],
    ['ssh://[::1]:22', { kind: 'ssh', host: '::1', port: 22 }],
    ['ssh://deploy@[fe80::1]', { kind: 'ssh', user: 'deploy', host: 'fe80::1' }],
    ['ssh://10.0.0.7', { kind: 'ssh', host: '10.0.0.7' }],
  ];
  for (const [text, want] of ok) {
    assert.equal(parseAddress(text), want, text);
    assert.is(formatAddress(parseAddress(text)), text, `${text} round trip`);
  }
  for (const bad of ['ssh://', 'ssh://-oProxyCommand=x', 'ssh://-box', 'ssh://me@-box', 'ssh://-me@box', 'ssh://box:0', 'ssh://box:70000', 'ssh://a b', 'ssh://box;rm', 'ssh://me@', 'ssh://box/path', 'ssh://::1']) {
    assert.throws(() => parseAddress(bad), /bad ssh address|bad port/, bad);
  }
});

test('RALPH_SSH_COMMAND is split into words like a shell would, and never run by one', () => {
  const ok: Array<[string, string[]]> = [
    ['ssh', ['ssh']],
    ['  ssh   -v  ', ['ssh', '-v']],
    [`ssh -i '/keys dir/id' -o "ProxyJump=jump host"`, ['ssh', '-i', '/keys dir/id', '-o', 'ProxyJump=jump host']],
    ['ssh -i /keys\\ dir/id', ['ssh', '-i', '/keys dir/id']],
    [`"a\\"b" 'c"d' "e\\\\f" "g\\h"`, ['a"b', 'c"d', 'e\\f', 'g\\h']],
    [`x''y "" ''`, ['xy', '', '']],
    ['/usr/bin/ssh -o ControlPath=none -p 2222', ['/usr/bin/ssh', '-o', 'ControlPath=none', '-p', '2222']],
    ["ssh -o 'ControlPath=~/.ssh/cm-%C'", ['ssh', '-o', 'ControlPath=~/.ssh/cm-%C']],
  ];
  for (const [text, words] of ok) assert.equal(splitCommandLine(text, 'RALPH_SSH_COMMAND'), words, text);
  const bad: Array<[string, RegExp]> = [
    ['ssh -i $HOME/key', /quote \$ or leave it out/],
    ['ssh -i "$HOME/key"', /\$ is not expanded/],
    ['ssh `which key`', /quote ` or leave it out/],
    ['ssh | tee log', /quote \| or leave it out/],
    ['ssh; rm -rf /', /quote ; or leave it out/],
    ['ssh > log', /quote > or leave it out/],
    ["ssh -i 'open", /a single quote is not closed/],
    ['ssh -i "open', /a double quote is not closed/],
    ['ssh \\', /ends with a backslash/],
    ['   ', /names no program/],
  ];
  for (const [text, re] of bad) assert.throws(() => splitCommandLine(text, 'RALPH_SSH_COMMAND'), re, text);
  // what a shell would take literally inside quotes stays literal
  assert.equal(splitCommandLine(`ssh -o 'X=$HOME|;'`, 'X'), ['ssh', '-o', 'X=$HOME|;']);
});

test('words for the box are quoted so that its shell gives them back unchanged, and ~/ still means home', () => {
  const words = ['ralph', '/usr/local/bin/ralph', '/opt/my tools/ralph', "it's", 'a"b', '$(reboot)', '`id`', 'x;y', 'tab\there', 'new\nline', '*', ''];
  for (const w of words) {
    const quoted = quoteForRemoteShell(w);
    const r = spawnSync('/bin/sh', ['-c', `printf '%s' ${quoted}`], { encoding: 'utf8' });
    assert.is(r.stdout, w, `${JSON.stringify(w)} quoted as ${quoted}`);
    assert.equal(splitCommandLine(`x ${quoted}`, 'w'), ['x', w], `${JSON.stringify(w)}: our split agrees`);
  }
  assert.is(quoteForRemoteShell('ralph'), 'ralph');
  assert.is(quoteForRemoteShell('/opt/my tools/ralph'), "'/opt/my tools/ralph'");
  assert.is(quoteForRemoteShell('~/.npm-global/bin/ralph'), '~/.npm-global/bin/ralph');
  assert.is(quoteForRemoteShell('~/my bin/ralph'), "~/'my bin/ralph'");
  const home = spawnSync('/bin/sh', ['-c', `printf '%s' ${quoteForRemoteShell('~/my bin/ralph')}`], { encoding: 'utf8', env: { ...process.env, HOME: '/home/u' } });
  assert.is(home.stdout, '/home/u/my bin/ralph');
});

test("ssh's argv: the user's words first (ssh keeps the first value of an option), then ralph's, then the destination and the command", () => {
  const dir = mkdtempSync(join(tmpdir(), 'ralph-sshu-'));
  try {
    const env = { RALPH_SSH_COMMAND: "ssh -i '/k d/id' -o ControlPath=none", RALPH_SSH_CONTROL_DIR: join(dir, 'cm') };
    const a = parseAddress('ssh://me@box:2222') as Address & { kind: 'ssh' };
    const argv = sshConnectArgv(a, { remoteCommand: ['/opt/my tools/ralph', 'bridge'] }, 4500, env);
    assert.equal(argv.slice(0, 5), ['ssh', '-i', '/k d/id', '-o', 'ControlPath=none']);
    const at = (opt: string) => argv.indexOf(opt);
    assert.ok(at('BatchMode=yes') > 4);
    assert.ok(argv.includes('ConnectTimeout=5'), 'the dial timeout, in whole seconds');
    assert.ok(argv.includes('ControlMaster=auto'));
    assert.ok(argv.includes(`ControlPath=${join(dir, 'cm')}/%C`));
    assert.ok(argv.includes('ControlPersist=60'));
    assert.ok(at('-T') > 0 && at('-a') > 0 && at('-x') > 0);
    assert.equal(argv.slice(-7), ['-p', '2222', '-l', 'me', '--', 'box', "'/opt/my tools/ralph' bridge"]);
    const plain = sshConnectArgv(parseAddress('ssh://box') as Address & { kind: 'ssh' }, { remoteCommand: ['ralph', 'bridge'] }, 10_000, { RALPH_SSH_CONTROL_DIR: join(dir, 'cm') });
    assert.is(plain[0], 'ssh');
    assert.equal(plain.slice(-3), ['--', 'box', 'ralph bridge']);
    assert.not.ok(plain.includes('-p') || plain.includes('-l'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("ssh's failures that a loopback sshd cannot produce, in the user's terms", () => {
  const a = parseAddress('ssh://me@box:2222') as Address & { kind: 'ssh' };
  const why = (stderr: string, code: number | null = 255, answered = false) => explainSshExit(a, 'ssh://me@box:2222', 'ralph', { code, signal: null, stderr }, answered);
  const cases: Array<[ReturnType<typeof why>, string, RegExp]> = [
    [why('ssh: Could not resolve hostname box: Name or service not known\r\n'), 'ENOTFOUND', /^cannot connect to ssh:\/\/me@box:2222: cannot resolve the host name box \(Name or service not known\)$/],
    [why('ssh: connect to host box port 2222: Connection timed out\r\n'), 'ETIMEDOUT', /: no answer from box port 2222 \(connection timed out\)$/],
    [why('ssh: connect to host box port 2222: No route to host\r\n'), 'EHOSTUNREACH', /: no route to box port 2222$/],
    [why('kex_exchange_identification: Connection closed by remote host\r\nConnection closed by 10.0.0.7 port 2222\r\n'), 'ECONNRESET', /: box closed the ssh connection \(kex_exchange_identification: Connection closed by remote host\)$/],
    [why('Timeout, server box not responding.\r\n', 255, true), 'ETIMEDOUT', /^connection to ssh:\/\/me@box:2222 lost: box stopped answering \(Timeout, server box not responding\.\)$/],
    [why('Received disconnect from 10.0.0.7 port 2222:2: Too many authentication failures\r\n'), 'SSH_AUTH', /: box refused the login of me: put your public key/],
    [why('zsh:1: permission denied: /opt/ralph\n', 126), 'SSH_NO_COMMAND', /: box cannot run ralph \(zsh:1: permission denied: \/opt\/ralph\)$/],
    [why("error: unknown command 'bridge'\n(run with --help for usage)\n", 1), 'SSH_REMOTE', /: on box: unknown command 'bridge' \(run with --help for usage\)$/],
    [why("ControlPath too long ('/tmp/xxxx/7ac092d2e0299bea49c791dd4e09a855e8fe8f39' >= 108 bytes)\r\n"), 'SSH', /: the directory for ssh's shared connections makes too long a socket path for ssh: set RALPH_SSH_CONTROL_DIR to a shorter one/],
    [why('', 3), 'SSH_REMOTE', /: ralph on box failed \(exit 3\) and said nothing$/],
    [why('Warning: Permanently added box\r\n** WARNING: connection is not using a post-quantum key exchange algorithm.\r\nssh: something new\r\n'), 'SSH', /: something new$/],
  ];
  for (const [err, code, re] of cases) {
    assert.is(err.code, code, err.message);
    assert.match(err.message, re);
    assert.not.match(err.message, /\n/);
  }
});

test('the bridge joins stdin/stdout to a unix socket: a half-close lets the server answer after it, and the socket ends it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ralph-bru-'));
  const path = join(dir, 'd.sock');
  const server = createServer({ allowHalfOpen: true }, (sock: Socket) => {
    let got = '';
    sock.on('data', (d) => (got += d));
    // answers only once the client has finished sending, as git-receive-pack does after a pack
    sock.on('end', () => sock.end(`got ${got.length} bytes: ${got}`));
  });
  await new Promise<void>((r) => server.listen(path, r));
  try {
    const input = new PassThrough();
    const output = new PassThrough();
    let out = '';
    output.on('data', (d) => (out += d));
    const done = bridgeToSocket(path, 2000, { input, output });
    input.write('hello ');
    input.end('box');
    await done;
    assert.is(out, 'got 9 bytes: hello box');
    let refused: Error | undefined;
    await bridgeToSocket(join(dir, 'none.sock'), 2000, { input: new PassThrough(), output: new PassThrough() }).catch((e: Error) => (refused = e));
    assert.match(refused?.message ?? '', /^cannot connect to unix:\S+none\.sock: nothing is listening there$/);
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the bridge ends quietly when its stdin fails (EIO, a reset): the socket is closed, nothing is thrown', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ralph-bru-'));
  const path = join(dir, 'd.sock');
  let gotData!: () => void;
  const dataIn = new Promise<void>((r) => (gotData = r));
  let closed!: () => void;
  const serverSaw = new Promise<void>((r) => (closed = r));
  const server = createServer((sock: Socket) => {
    sock.once('data', () => gotData());
    sock.once('close', () => closed());
    sock.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(path, r));
  try {
    const input = new PassThrough();
    const output = new PassThrough();
    const done = bridgeToSocket(path, 2000, { input, output });
    input.write('half a request');
    await dataIn; // the bridge is piping
    input.destroy(Object.assign(new Error('read EIO'), { code: 'EIO' }));
    await done;
    await serverSaw;
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
