// `ralph remote add|list|remove|test`: the remote daemons this machine knows, and the git remotes
// (`ralph://<name>/<repo>`) that push to them.

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { bridgeCommand, daemonInfo, findRemote, identityFor, zitiServiceOf } from '../../client/daemon.js';
import {
  addGitRemote,
  gitRemoteUrl,
  gitRemotesWithUrlPrefix,
  ralphUrl,
  removeGitRemote,
  repoTop,
} from '../../client/local-repo.js';
import type { DaemonInfo } from '../../daemon/protocol.js';
import { readConfig, writeConfig, type RemoteConfig } from '../../store/config.js';
import { checkRepoName } from '../../store/names.js';
import { configPath } from '../../store/paths.js';
import { readTokenFile } from '../../client/token-file.js';
import { parseAddress, type Address } from '../../transport/index.js';
import { UserError } from '../output.js';

const CHECK_TIMEOUT_MS = 5000;
const REMOTE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface AddOptions {
  address?: string;
  tokenFile?: string;
  ssh?: string;
  remoteRalph?: string;
  zitiService?: string;
  zitiIdentity?: string;
  gitRemote: string;
  repo?: string;
  check: boolean;
}

function checkName(name: string): void {
  if (!REMOTE_NAME.test(name)) {
    throw new UserError(`bad remote name ${JSON.stringify(name)}: use letters, digits, '.', '_' and '-' (at most 64, not starting with a punctuation mark)`);
  }
}

/** The remote as the config will hold it, from the flags; every problem is one line. */
function remoteFromFlags(name: string, opts: AddOptions): RemoteConfig {
  const ways = [opts.address && '--address', opts.ssh && '--ssh', opts.zitiService && '--ziti-service'].filter(Boolean);
  if (ways.length > 1) throw new UserError(`give one of --address, --ssh and --ziti-service, not ${ways.join(' and ')}`);
  let address: string;
  if (opts.zitiService) {
    address = `ziti:${opts.zitiService}`;
  } else if (opts.ssh) {
    address = `ssh://${opts.ssh}`;
  } else if (opts.address) {
    address = opts.address;
  } else {
    throw new UserError(`how is remote ${name} reached? give --ssh [USER@]HOST[:PORT], --address tcp://HOST:PORT --token-file FILE, or --ziti-service NAME --ziti-identity FILE`);
  }
  let kind: string;
  try {
    kind = parseAddress(address).kind;
  } catch (err) {
    throw new UserError((err as Error).message);
  }
  if (kind === 'unix') throw new UserError(`a remote is reached over the network: use --ssh, tcp://HOST:PORT or --ziti-service, not ${address}`);
  const remote: RemoteConfig = { name, address, gitRemote: opts.gitRemote };
  if (kind === 'ziti') {
    const identity = opts.zitiIdentity ?? process.env.RALPH_ZITI_IDENTITY;
    if (!identity) throw new UserError(`remote ${name} is reached over OpenZiti: give --ziti-identity FILE (or set RALPH_ZITI_IDENTITY)`);
    if (!existsSync(identity)) throw new UserError(`no identity file at ${identity}; enroll one first (ziti edge enroll) or fix the path`);
    if (opts.zitiIdentity) remote.zitiIdentity = resolve(opts.zitiIdentity);
  } else if (opts.zitiIdentity) {
    throw new UserError(`--ziti-identity goes with --ziti-service; a ${kind} remote needs none`);
  }
  if (opts.tokenFile !== undefined) {
    if (kind !== 'tcp') throw new UserError(`--token-file goes with a tcp:// address; a ${kind} remote needs no token`);
    try {
      remote.token = readTokenFile(opts.tokenFile);
    } catch (err) {
      throw new UserError((err as Error).message);
    }
  }
  if (opts.remoteRalph !== undefined) {
    if (kind !== 'ssh') throw new UserError(`--remote-ralph goes with --ssh; a ${kind} remote runs nothing on the box`);
    if (opts.remoteRalph === '' || /[\0\n\r]/.test(opts.remoteRalph) || opts.remoteRalph.length > 1024) {
      throw new UserError(`bad --remote-ralph ${JSON.stringify(opts.remoteRalph)}: give the path of ralph on the box`);
    }
    remote.remoteRalph = opts.remoteRalph;
  }
  return remote;
}

export async function add(name: string, opts: AddOptions): Promise<void> {
  checkName(name);
  const config = readConfig();
  if (config.remotes[name]) {
    throw new UserError(`remote ${name} already exists (${config.remotes[name]!.address}); remove it first: ralph remote remove ${name}`);
  }
  const remote = remoteFromFlags(name, opts);

  // The git remote: decided (and any conflict refused) before anything is saved.
  const top = await repoTop();
  const repo = opts.repo ?? (top ? top.split('/').pop()! : undefined);
  if (repo !== undefined) {
    try {
      checkRepoName(repo);
    } catch (err) {
      throw new UserError(`${(err as Error).message}; name it with --repo NAME`);
    }
    remote.repo = repo;
  }
  let addGit = false;
  if (top && repo) {
    const url = ralphUrl(name, repo);
    const existing = await gitRemoteUrl(top, opts.gitRemote);
    if (existing !== null && existing !== url) {
      throw new UserError(
        `git remote ${opts.gitRemote} already exists with URL ${existing}; choose another with --git-remote NAME, or remove it (git remote remove ${opts.gitRemote}); nothing saved`,
      );
    }
    addGit = existing === null;
  } else {
    delete remote.gitRemote; // there is no git remote to remember
  }

  let info: DaemonInfo | undefined;
  if (opts.check) {
    try {
      info = (await daemonInfo(remote, { timeoutMs: CHECK_TIMEOUT_MS })).info;
    } catch (err) {
      throw new UserError(`${(err as Error).message.replace(/; is its daemon running\? \(ralph remote test \S+\)$/, '')}; nothing saved (--no-check adds it anyway)`);
    }
  }

  if (addGit) await addGitRemote(top!, opts.gitRemote, ralphUrl(name, repo!));
  try {
    writeConfig({ ...config, remotes: { ...config.remotes, [name]: remote } });
  } catch (err) {
    if (addGit) await removeGitRemote(top!, opts.gitRemote);
    throw new UserError(`cannot save ${configPath()}: ${(err as Error).message}`);
  }

  const about = info ? `: daemon on ${info.host}, ralph ${info.version}` : ' (not checked)';
  process.stdout.write(`added remote ${name} (${remote.address})${about}\n`);
  if (top && repo) {
    process.stdout.write(`git remote ${opts.gitRemote} → ${ralphUrl(name, repo)}; start a loop with: git push ${opts.gitRemote} <branch>\n`);
  } else {
    process.stdout.write(`not in a git repository: no git remote added (run ralph remote add in your repo, or use --repo with ralph start)\n`);
  }
}

export async function list(opts: { json?: boolean }): Promise<void> {
  const remotes = Object.values(readConfig().remotes);
  if (opts.json) {
    // The token is a secret: say that there is one, never what it is.
    const shown = remotes.map(({ token, ...r }) => (token === undefined ? r : { ...r, token: '(set)' }));
    process.stdout.write(JSON.stringify(shown, null, 2) + '\n');
    return;
  }
  if (remotes.length === 0) {
    process.stdout.write('no remotes; add one with: ralph remote add NAME --ssh [USER@]HOST (or --address tcp://HOST:PORT --token-file FILE, or --ziti-service)\n');
    return;
  }
  const rows = [['NAME', 'ADDRESS', 'REPO', 'GIT REMOTE', 'IDENTITY']];
  for (const r of remotes) rows.push([r.name, r.address, r.repo ?? '-', r.gitRemote ?? '-', r.zitiIdentity ?? (r.token ? 'daemon token' : r.address.startsWith('ssh://') ? 'ssh keys' : '')]);
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  process.stdout.write(rows.map((r) => r.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n') + '\n');
}

/** The shared OpenZiti proxy a remote is dialed through (tunnel backend), as its service and identity. */
function zitiProxyOf(remote: RemoteConfig): { service: string; identity: string } | null {
  const service = zitiServiceOf(remote);
  const identity = identityFor(remote);
  return service && identity ? { service, identity: resolve(identity) } : null;
}

/** The ssh destination of a remote reached over ssh. */
function sshOf(remote: RemoteConfig): (Address & { kind: 'ssh' }) | null {
  try {
    const a = parseAddress(remote.address);
    return a.kind === 'ssh' ? a : null;
  } catch {
    return null;
  }
}

/** Ends a remote's shared connection (ziti proxy or ssh master), if it has one running; says what it ended. */
async function closeShared(remote: RemoteConfig): Promise<string | null> {
  const via = zitiProxyOf(remote);
  if (via) {
    const state = await (await import('../../transport/ziti/proxy.js')).stopProxy(via.service, via.identity);
    return state ? `stopped the OpenZiti proxy of remote ${remote.name} (pid ${state.pid})` : null;
  }
  const ssh = sshOf(remote);
  if (ssh) {
    const pid = await (await import('../../transport/ssh/index.js')).closeSharedConnection(ssh);
    return pid === null ? null : `closed the shared ssh connection of remote ${remote.name} (pid ${pid})`;
  }
  return null;
}

function knownRemote(name: string): RemoteConfig {
  try {
    return findRemote(readConfig(), name);
  } catch (err) {
    throw new UserError((err as Error).message.replace(/; add it with: .*$/, ''));
  }
}

/** `ralph remote disconnect NAME`: ends the remote's shared connection now, not when it has been unused a while. */
export async function disconnect(name: string): Promise<void> {
  const remote = knownRemote(name);
  if (!zitiProxyOf(remote) && !sshOf(remote)) throw new UserError(`remote ${name} is reached over tcp: it has no shared connection to close`);
  const done = await closeShared(remote);
  process.stdout.write(`${done ?? `remote ${name} has no shared connection open`}\n`);
}

export async function remove(name: string): Promise<void> {
  const config = readConfig();
  // Best effort: a shared connection that cannot be closed now ends by itself when unused.
  await closeShared(knownRemote(name)).catch(() => null);
  const { [name]: _gone, ...rest } = config.remotes;
  writeConfig({ ...config, remotes: rest });
  process.stdout.write(`removed remote ${name}\n`);
  // The remote is gone already: git not running here is a note, not a failure.
  const top = await repoTop().catch((err: Error) => {
    process.stderr.write(`ralph: ${err.message}; git remotes pointing at ${name} were left as they are\n`);
    return null;
  });
  if (top) {
    for (const gitRemote of await gitRemotesWithUrlPrefix(top, `ralph://${name}/`)) {
      await removeGitRemote(top, gitRemote);
      process.stdout.write(`removed git remote ${gitRemote}\n`);
    }
  }
}

function describeAgents(agents: DaemonInfo['agents']): string {
  const entries = Object.entries(agents);
  if (entries.length === 0) return '-';
  const have = entries.filter(([, a]) => a.available).map(([n]) => n);
  const missing = entries.filter(([, a]) => !a.available).map(([n]) => n);
  return [have.length ? have.join(', ') : 'none installed', missing.length ? `(installed on first use: ${missing.join(', ')})` : '']
    .filter(Boolean)
    .join(' ');
}

export async function test(name: string): Promise<void> {
  const remote = findRemote(readConfig(), name);
  let result: Awaited<ReturnType<typeof daemonInfo>>;
  try {
    result = await daemonInfo(remote, { timeoutMs: CHECK_TIMEOUT_MS });
  } catch (err) {
    throw new UserError((err as Error).message.replace(/ \(ralph remote test \S+\)$/, ''));
  }
  const { info, roundTripMs } = result;
  const lines = [
    `remote ${name} (${remote.address}) answers`,
    `  host        ${info.host}`,
    `  version     ralph ${info.version} (protocol ${info.protocol})`,
    `  agents      ${describeAgents(info.agents)}`,
    `  loops       ${info.loopsRunning} running${info.maxLoops ? ` (at most ${info.maxLoops})` : ''}`,
    `  round trip  ${roundTripMs.toFixed(1)} ms`,
  ];
  const via = zitiProxyOf(remote);
  const proxy = via ? (await import('../../transport/ziti/proxy.js')).runningProxy(via.service, via.identity) : null;
  if (proxy) {
    const idle = proxy.idleMs >= 60_000 && proxy.idleMs % 60_000 === 0 ? `${proxy.idleMs / 60_000} min` : `${proxy.idleMs / 1000} s`;
    lines.push(`  via         ziti tunnel proxy (pid ${proxy.pid}, port ${proxy.port} on all interfaces, up since ${proxy.startedAt}), shared by ralph commands; it ends after ${idle} unused`);
  }
  const ssh = sshOf(remote);
  if (ssh) {
    const { sharedConnection, CONTROL_PERSIST_S, controlDir } = await import('../../transport/ssh/index.js');
    const pid = await sharedConnection(ssh);
    lines.push(
      pid === null
        ? `  via         ssh, \`${bridgeCommand(remote).join(' ')}\` on the box; no shared connection (sharing is off in RALPH_SSH_COMMAND, or ssh could not make one)`
        : `  via         ssh, \`${bridgeCommand(remote).join(' ')}\` on the box, over a shared connection (pid ${pid}, socket in ${controlDir()}); it ends after ${CONTROL_PERSIST_S} s unused`,
    );
  }
  process.stdout.write(lines.join('\n') + '\n');
}
