// Shared test helper: a real OpenSSH server (Debian's openssh-server) on 127.0.0.1, started by the
// test itself on a free port, with throwaway host and user keys in a temp dir, letting the current
// user in with that key only. The box's side of ssh remotes runs in its sessions. The environment a
// session gets is set with sshd's own SetEnv (as an admin would), e.g. PATH with `ralph` on it and
// RALPH_HOME; a login shell's rc files may add to PATH, as on any box.
//
//   const sshd = await sshdOrSkip({ PATH: `${bin}:/usr/bin:/bin`, RALPH_HOME: box.home });  // null: no sshd here
//   env = { ...laptop.env, ...sshd.clientEnv };   // RALPH_SSH_COMMAND with the key + known_hosts, a private control dir
//   ralph remote add box --ssh ${sshd.target}
//   ...
//   await sshd.stop();                           // ends the shared connections, then sshd
//
// Without sshd the suite skips with one line — unless RALPH_REQUIRE_SSH=1 (CI), then it fails.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { exited } from './env.js';

const SSHD = '/usr/sbin/sshd';
const PRIVSEP_DIR = '/run/sshd';

export interface Sshd {
  dir: string;
  port: number;
  user: string;
  /** `user@127.0.0.1:port`, as `ralph remote add --ssh` takes it. */
  target: string;
  /** The user's key (accepted), and another one (not in authorized_keys). Their directory has a space in its name. */
  userKey: string;
  strangerKey: string;
  /** known_hosts holding this server's host key. */
  knownHosts: string;
  /** The laptop's environment for ralph: RALPH_SSH_COMMAND (key, known_hosts, no user config) and RALPH_SSH_CONTROL_DIR. */
  clientEnv: { RALPH_SSH_COMMAND: string; RALPH_SSH_CONTROL_DIR: string };
  /** A RALPH_SSH_COMMAND with another key and/or known_hosts file, and more options. */
  sshCommand(opts?: { key?: string; knownHosts?: string; extra?: string }): string;
  /** Logins sshd accepted so far (each is a new ssh connection; a shared one counts once). */
  logins(): number;
  log(): string;
  /** Ends every shared connection in the control dir, then sshd; removes the dir. */
  stop(): Promise<void>;
}

/** sshd, or why not; throws when RALPH_REQUIRE_SSH=1 and it cannot run here. */
export function findSshd(): { ok: true } | { skip: string } {
  const why = (() => {
    try {
      accessSync(SSHD, constants.X_OK);
    } catch {
      return `${SSHD} is not installed (apt-get install openssh-server)`;
    }
    if (spawnSync('ssh-keygen', ['-?'], { stdio: 'ignore' }).error) return 'ssh-keygen is not installed';
    if (spawnSync('ssh', ['-V'], { stdio: 'ignore' }).error) return 'ssh is not installed';
    if (!existsSync(PRIVSEP_DIR) && process.getuid?.() !== 0) return `${PRIVSEP_DIR} is missing and only root can make it`;
    return null;
  })();
  if (why === null) return { ok: true };
  if (process.env.RALPH_REQUIRE_SSH === '1') throw new Error(`RALPH_REQUIRE_SSH=1 but sshd cannot run here: ${why}`);
  return { skip: `skipping the ssh suite: ${why}` };
}

export async function sshdOrSkip(setEnv: Record<string, string>): Promise<Sshd | null> {
  const found = findSshd();
  if ('skip' in found) {
    console.log(found.skip);
    return null;
  }
  return startSshd(setEnv);
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

function keygen(file: string): void {
  const r = spawnSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', 'ralph-test', '-f', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ssh-keygen -f ${file} failed: ${r.stderr}`);
}

export async function startSshd(setEnv: Record<string, string>): Promise<Sshd> {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'ralph-sshd-')));
  const keys = join(dir, 'keys dir');
  mkdirSync(keys, { mode: 0o700 });
  const hostKey = join(dir, 'host_key');
  const userKey = join(keys, 'user_key');
  const strangerKey = join(keys, 'stranger_key');
  for (const k of [hostKey, userKey, strangerKey]) keygen(k);
  writeFileSync(join(dir, 'authorized_keys'), readFileSync(`${userKey}.pub`), { mode: 0o600 });
  const controlDir = join(dir, 'cm');
  const user = userInfo().username;
  const root = process.getuid?.() === 0;
  if (root) mkdirSync(PRIVSEP_DIR, { recursive: true, mode: 0o755 });
  const setEnvLine = Object.entries(setEnv)
    .map(([k, v]) => {
      if (/[\s"]/.test(v)) throw new Error(`SetEnv ${k}: test paths must hold no blanks or quotes (${v})`);
      return `${k}=${v}`;
    })
    .join(' ');

  let child: ChildProcess | undefined;
  let port = 0;
  let log = '';
  // The free port may be taken between finding and binding it: then try another.
  for (let attempt = 0; attempt < 5 && !child; attempt++) {
    port = await freePort();
    const config = join(dir, 'sshd_config');
    writeFileSync(
      config,
      [
        `ListenAddress 127.0.0.1:${port}`,
        `HostKey ${hostKey}`,
        `AuthorizedKeysFile ${join(dir, 'authorized_keys')}`,
        'PidFile none',
        // the temp dir's permissions are not what sshd wants of a home's .ssh; the keys are ours
        'StrictModes no',
        'UsePAM no',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        ...(root ? ['PermitRootLogin prohibit-password'] : []),
        `AllowUsers ${user}`,
        'LogLevel INFO',
        ...(setEnvLine ? [`SetEnv ${setEnvLine}`] : []),
      ].join('\n') + '\n',
    );
    log = '';
    const c = spawn(SSHD, ['-D', '-e', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
    const up = await new Promise<boolean>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`sshd did not start listening within 10 s:\n${log}`)), 10_000);
      c.stderr!.on('data', (d: Buffer) => {
        log += d.toString();
        if (/Server listening on 127\.0\.0\.1 port \d+/.test(log)) {
          clearTimeout(timer);
          resolve(true);
        }
      });
      c.once('exit', () => {
        clearTimeout(timer);
        if (/Address already in use/.test(log)) resolve(false);
        else reject(new Error(`sshd exited before listening:\n${log}`));
      });
    });
    if (up) child = c;
  }
  if (!child) throw new Error(`sshd found no free port in 5 attempts:\n${log}`);

  const knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, `[127.0.0.1]:${port} ${readFileSync(`${hostKey}.pub`, 'utf8')}`);
  const sshCommand = (opts: { key?: string; knownHosts?: string; extra?: string } = {}) =>
    [
      "ssh -F /dev/null",
      `-i '${opts.key ?? userKey}' -o IdentitiesOnly=yes`,
      `-o UserKnownHostsFile=${opts.knownHosts ?? knownHosts} -o GlobalKnownHostsFile=/dev/null`,
      ...(opts.extra ? [opts.extra] : []),
    ].join(' ');
  const server = child;
  return {
    dir,
    port,
    user,
    target: `${user}@127.0.0.1:${port}`,
    userKey,
    strangerKey,
    knownHosts,
    clientEnv: { RALPH_SSH_COMMAND: sshCommand(), RALPH_SSH_CONTROL_DIR: controlDir },
    sshCommand,
    logins: () => (log.match(/^Accepted publickey for /gm) ?? []).length,
    log: () => log,
    async stop() {
      const sockets = existsSync(controlDir) ? readdirSync(controlDir) : [];
      for (const s of sockets) {
        spawnSync('ssh', ['-F', '/dev/null', '-o', `ControlPath=${join(controlDir, s)}`, '-O', 'exit', 'ralph-test-master'], { stdio: 'ignore', timeout: 10_000 });
      }
      if (server.exitCode === null && server.signalCode === null) server.kill('SIGTERM');
      await exited(server);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
