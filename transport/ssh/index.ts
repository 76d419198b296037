// SSH transport: `ssh://[user@]host[:port]` addresses. A dial runs the user's ssh client with a
// command for the box (the caller names it: for ralph, `ralph bridge`, which joins its stdio to the
// daemon's unix socket there), and ssh's stdin/stdout are the byte stream — as git does over ssh.
// ssh authenticates both ends (host key, user key); nothing listens on the network but sshd.
//
// The ssh program is `ssh`, or $RALPH_SSH_COMMAND split into words like a shell would (never run by
// one). After those words come ralph's own options; ssh keeps the first value it is given for an
// option, so the user's words override every one of them (`-o ControlPath=none` turns sharing off):
//   -T -x -a, BatchMode=yes (no prompt ever waits on a terminal ralph is drawing on), ConnectTimeout,
//   ServerAliveInterval, ClearAllForwardings, and connection sharing: ControlMaster=auto with
//   ControlPath in a private directory ($RALPH_SSH_CONTROL_DIR, else $XDG_RUNTIME_DIR/ralph-ssh, else
//   /tmp/ralph-ssh-<uid>; 0700) and ControlPersist, so only the first connection pays for the
//   handshake and later ones open a channel on it.

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { formatAddress, type Address } from '../address.js';
import { DialError, type SshDialOptions } from '../index.js';
import { privateRuntimeDir } from '../private-dir.js';
import { CommandLineError, quoteForRemoteShell, splitCommandLine } from './command.js';
import { explainSshExit } from './errors.js';
import { SshStream } from './stream.js';

export { sshByHand } from './errors.js';

export type SshAddress = Address & { kind: 'ssh' };

export const SSH_COMMAND_ENV = 'RALPH_SSH_COMMAND';
export const SSH_CONTROL_DIR_ENV = 'RALPH_SSH_CONTROL_DIR';
/** How long a shared connection stays open after its last use. */
export const CONTROL_PERSIST_S = 60;

/** The ssh program and the user's own options: $RALPH_SSH_COMMAND's words, or `ssh`. */
export function sshProgram(env: NodeJS.ProcessEnv = process.env): string[] {
  const text = env[SSH_COMMAND_ENV];
  if (text === undefined || text.trim() === '') return ['ssh'];
  return splitCommandLine(text, SSH_COMMAND_ENV);
}

export function controlDir(env: NodeJS.ProcessEnv = process.env): string {
  // /tmp, not $TMPDIR: a socket path holds at most ~104 bytes, and ssh adds 40 (%C) and 17 more while it binds.
  return privateRuntimeDir('ralph-ssh', SSH_CONTROL_DIR_ENV, "ssh's shared connections", env, '/tmp');
}

/** Options every ssh of ralph's gets, the control socket's included, then the destination. */
function destination(a: SshAddress, env: NodeJS.ProcessEnv): string[] {
  return [
    '-o', 'ControlMaster=auto',
    '-o', `ControlPath=${join(controlDir(env), '%C')}`,
    '-o', `ControlPersist=${CONTROL_PERSIST_S}`,
    ...(a.port === undefined ? [] : ['-p', String(a.port)]),
    ...(a.user === undefined ? [] : ['-l', a.user]),
    '--',
    a.host,
  ];
}

/** The whole argv of a connection that runs `remoteCommand` on the box. */
export function sshConnectArgv(a: SshAddress, opts: SshDialOptions, timeoutMs: number, env: NodeJS.ProcessEnv = process.env): string[] {
  if (opts.remoteCommand.length === 0) throw new Error('no command to run on the box');
  return [
    ...sshProgram(env),
    '-T', '-x', '-a',
    '-o', 'BatchMode=yes',
    '-o', `ConnectTimeout=${Math.max(1, Math.ceil(timeoutMs / 1000))}`,
    '-o', 'ServerAliveInterval=15',
    '-o', 'ServerAliveCountMax=4',
    '-o', 'ClearAllForwardings=yes',
    ...destination(a, env),
    opts.remoteCommand.map(quoteForRemoteShell).join(' '),
  ];
}

/**
 * Dials the box over ssh. The Duplex comes back at once (what is written waits in ssh's stdin until
 * the session is up, so a first message costs no extra round trip); a failure — ssh's own, or the
 * box's shell not finding the command — destroys it with a one-line DialError, which the reader of
 * the first reply gets. Nothing back within timeoutMs ends it with "no connection within".
 */
export function dialSsh(a: SshAddress, opts: SshDialOptions, timeoutMs: number, env: NodeJS.ProcessEnv = process.env): Duplex {
  const label = formatAddress(a);
  let argv: string[];
  try {
    argv = sshConnectArgv(a, opts, timeoutMs, env);
  } catch (err) {
    throw new DialError(`cannot connect to ${label}: ${(err as Error).message}`, label, err instanceof CommandLineError ? 'SSH_COMMAND' : 'SSH');
  }
  const [program, ...args] = argv as [string, ...string[]];
  const child = spawn(program, args, { stdio: ['pipe', 'pipe', 'pipe'], env });
  const stream = new SshStream(
    child,
    (exit, answered) => explainSshExit(a, label, opts.remoteCommand[0]!, exit, answered),
    (err) =>
      new DialError(
        `cannot connect to ${label}: cannot run ${program} (${err.code === 'ENOENT' ? 'not found' : err.message}): install OpenSSH's client, or name it in ${SSH_COMMAND_ENV}`,
        label,
        'SSH_COMMAND',
      ),
  );
  const timer = setTimeout(() => {
    if (stream.answered || stream.destroyed) return;
    stream.destroy(new DialError(`${label}: no connection within ${timeoutMs} ms`, label, 'ETIMEDOUT'));
  }, timeoutMs);
  timer.unref();
  stream.once('close', () => clearTimeout(timer));
  return stream;
}

/** Runs ssh's control command (`-O check|exit`) on the shared connection to `a`; resolves its exit code and stderr. */
function control(a: SshAddress, command: 'check' | 'exit', env: NodeJS.ProcessEnv): Promise<{ code: number | null; stderr: string }> {
  const [program, ...args] = [...sshProgram(env), '-O', command, ...destination(a, env)] as [string, ...string[]];
  return new Promise((resolve) => {
    const child = spawn(program, args, { stdio: ['ignore', 'ignore', 'pipe'], env });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString('utf8')));
    child.once('error', (err) => resolve({ code: null, stderr: err.message }));
    child.once('close', (code) => resolve({ code, stderr }));
  });
}

/** The pid of the shared connection's master to `a`, if one runs. */
export async function sharedConnection(a: SshAddress, env: NodeJS.ProcessEnv = process.env): Promise<number | null> {
  const r = await control(a, 'check', env);
  const pid = /Master running \(pid=(\d+)\)/.exec(r.stderr)?.[1];
  return r.code === 0 && pid ? Number(pid) : null;
}

/** Ends the shared connection to `a` now (it would end by itself CONTROL_PERSIST_S after its last use). */
export async function closeSharedConnection(a: SshAddress, env: NodeJS.ProcessEnv = process.env): Promise<number | null> {
  const pid = await sharedConnection(a, env);
  if (pid === null) return null;
  await control(a, 'exit', env);
  return pid;
}
