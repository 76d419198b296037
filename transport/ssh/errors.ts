// ssh's own failures, and the failures of the command it ran on the box, as one line each in the
// user's terms. ssh says what went wrong on stderr (exit 255); the box's shell says it could not
// find or run the command (exit 127 / 126); anything else is the command's own last word.

import { DialError } from '../index.js';
import type { Address } from '../address.js';

type SshAddress = Address & { kind: 'ssh' };

export interface SshExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** What ssh (and the command on the box) wrote on stderr, at most its last few KiB. */
  stderr: string;
}

/** How a user types this destination to ssh by hand. */
export function sshByHand(a: SshAddress): string {
  return `ssh ${a.port === undefined ? '' : `-p ${a.port} `}${a.user === undefined ? '' : `${a.user}@`}${a.host}`;
}

/** The name known_hosts files this host under. */
function knownHostsName(a: SshAddress): string {
  return a.port === undefined || a.port === 22 ? a.host : `[${a.host}]:${a.port}`;
}

/** The most of what the box's command said that goes into the one line. */
const SAID_MAX_CHARS = 400;

/** Lines ssh prints on the way that say nothing about a failure. */
const NOISE = /^(Warning: Permanently added|ControlSocket .* already exists|mux_client_|\*\* |@+$|$)/;

function lines(stderr: string): string[] {
  return stderr
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => !NOISE.test(l));
}

/**
 * The error for an ssh that ended without a clean exit. `remoteProgram` is the command it was to
 * run on the box; `answered` says whether bytes had come back (then the connection was lost, not
 * refused).
 */
export function explainSshExit(a: SshAddress, label: string, remoteProgram: string, exit: SshExit, answered: boolean): DialError {
  const all = lines(exit.stderr);
  const find = (re: RegExp) => all.find((l) => re.test(l));
  const where = `${a.host} port ${a.port ?? 22}`;
  const fail = (why: string, code: string) =>
    new DialError(answered ? `connection to ${label} lost: ${why}` : `cannot connect to ${label}: ${why}`, label, code);
  const last = all.at(-1);

  if (exit.code === 255 || exit.code === null) {
    if (find(/REMOTE HOST IDENTIFICATION HAS CHANGED|Host key for .* has changed/)) {
      return fail(
        `the host key of ${a.host} has CHANGED since it was saved in known_hosts: someone may be intercepting the connection, or the box was reinstalled; check with its owner, then remove the old key with: ssh-keygen -R '${knownHostsName(a)}'`,
        'SSH_HOST_KEY',
      );
    }
    if (find(/Host key verification failed|host key is known/)) {
      return fail(`the host key of ${a.host} is not known here yet: check it and accept it once by connecting by hand (${sshByHand(a)} true)`, 'SSH_HOST_KEY');
    }
    const denied = find(/Permission denied \(|Too many authentication failures/);
    if (denied) {
      const methods = /Permission denied \(([^)]*)\)/.exec(denied)?.[1];
      return fail(
        `${a.host} refused the login of ${a.user ?? 'your user'}${methods ? ` (${methods})` : ''}: put your public key in that user's ~/.ssh/authorized_keys there, or choose the key with RALPH_SSH_COMMAND='ssh -i KEY' (a key with a passphrase must be in ssh-agent)`,
        'SSH_AUTH',
      );
    }
    if (find(/Connection refused/)) return fail(`nothing accepts ssh connections on ${where} (connection refused): is sshd running there, and on that port?`, 'ECONNREFUSED');
    const unresolved = find(/Could not resolve hostname/);
    if (unresolved) return fail(`cannot resolve the host name ${a.host} (${unresolved.replace(/^ssh: Could not resolve hostname [^:]*: /, '')})`, 'ENOTFOUND');
    if (find(/Connection timed out|Operation timed out|timed out during banner exchange/)) return fail(`no answer from ${where} (connection timed out)`, 'ETIMEDOUT');
    if (find(/No route to host|Network is unreachable/)) return fail(`no route to ${where}`, 'EHOSTUNREACH');
    if (find(/ControlPath too long/)) {
      return fail(`the directory for ssh's shared connections makes too long a socket path for ssh: set RALPH_SSH_CONTROL_DIR to a shorter one (at most ~45 characters)`, 'SSH');
    }
    const silent = find(/Timeout, server .* not responding/);
    if (silent) return fail(`${a.host} stopped answering (${silent})`, 'ETIMEDOUT');
    const closed = find(/Connection closed by|Connection reset by|kex_exchange_identification|Broken pipe/);
    if (closed) return fail(`${a.host} closed the ssh connection (${closed.replace(/^ssh: /, '')})`, 'ECONNRESET');
    if (exit.code === null) return fail(`ssh was ended by ${exit.signal ?? 'a signal'}${last ? ` (${last})` : ''}`, 'SSH');
    return fail(last ? last.replace(/^ssh: /, '') : 'ssh failed (exit 255) and said nothing', 'SSH');
  }
  if (exit.code === 127) {
    return fail(`${a.host} has no command ${remoteProgram} for ssh to run${last ? ` (${last})` : ''}`, 'SSH_NO_COMMAND');
  }
  if (exit.code === 126) {
    return fail(`${a.host} cannot run ${remoteProgram}${last ? ` (${last})` : ''}`, 'SSH_NO_COMMAND');
  }
  // The command on the box failed and said why (less the `program: ` in front of its lines).
  const said = all
    .map((l) => l.replace(/^[A-Za-z0-9_.-]+: /, ''))
    .join(' ')
    .slice(-SAID_MAX_CHARS);
  return fail(said ? `on ${a.host}: ${said}` : `${remoteProgram} on ${a.host} failed (exit ${exit.code}) and said nothing`, 'SSH_REMOTE');
}
