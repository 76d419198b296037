// The laptop side's way to a remote daemon: dial its address (tcp, or ziti with an identity), say
// hello on a channel, and hand back the stream right after the daemon's reply. Every failure is one
// line naming the remote and its address.

import type { Duplex } from 'node:stream';
import { ErrorCodes, RpcError, type ResponseError } from '../rpc/messages.js';
import { RequestTimeoutError, RpcPeer } from '../rpc/peer.js';
import { readFirstLine } from '../rpc/reader.js';
import type { Config, RemoteConfig } from '../store/config.js';
import { LOOP_STATUSES, NO_USAGE, type LoopStatus, type UsageTotals } from '../store/loops.js';
import { DialError, dial, parseAddress } from '../transport/index.js';
import {
  ControlMethods,
  MAX_HELLO_BYTES,
  PROTOCOL_VERSION,
  type DaemonInfo,
  type DaemonLoop,
  type HelloParams,
  type HelloResult,
} from '../daemon/protocol.js';

export const DEFAULT_DAEMON_TIMEOUT_MS = 10_000;
const CLIENT_LABEL = 'ralph-cli';

/** A remote daemon could not be reached or would not talk; the message is one line for the user. */
export class RemoteError extends Error {
  constructor(
    message: string,
    readonly remote: string,
    readonly kind: 'unreachable' | 'refused' | 'timeout' | 'bad-reply' | 'unknown-remote',
  ) {
    super(message);
    this.name = 'RemoteError';
  }
}

/** The remote of that name in the config, or a one-line error saying which ones there are. */
export function findRemote(config: Config, name: string): RemoteConfig {
  const r = config.remotes[name];
  if (r) return { ...r, name };
  const known = Object.keys(config.remotes);
  throw new RemoteError(
    `no remote named ${JSON.stringify(name)}${known.length ? ` (known: ${known.join(', ')})` : ''}; add it with: ralph remote add ${name} --ssh [USER@]HOST (or --address, --ziti-service)`,
    name,
    'unknown-remote',
  );
}

/** Which identity file dials a ziti remote: its own, else RALPH_ZITI_IDENTITY. */
export function identityFor(remote: RemoteConfig, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return remote.zitiIdentity ?? env.RALPH_ZITI_IDENTITY ?? undefined;
}

/** The Ziti service a remote is reached by, when it is reached over Ziti. */
export function zitiServiceOf(remote: RemoteConfig): string | null {
  try {
    const a = parseAddress(remote.address);
    return a.kind === 'ziti' ? a.service : null;
  } catch {
    return null;
  }
}

function label(remote: RemoteConfig): string {
  return `remote ${remote.name} (${remote.address})`;
}

/** What an ssh remote's connections run on the box: its ralph, joined to the daemon's unix socket. */
export function bridgeCommand(remote: RemoteConfig): string[] {
  return [remote.remoteRalph ?? 'ralph', 'bridge'];
}

function isSsh(remote: RemoteConfig): boolean {
  return remote.address.startsWith('ssh://');
}

/**
 * Dials the remote's daemon and opens a channel. The whole exchange (connect + hello reply) is
 * bounded by timeoutMs. Bytes the daemon sent after its reply stay in the stream for the channel.
 */
export async function dialDaemon(
  remote: RemoteConfig,
  hello: HelloParams,
  opts: { timeoutMs?: number } = {},
): Promise<{ stream: Duplex; result: HelloResult }> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_DAEMON_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  let stream: Duplex;
  try {
    const identityFile = identityFor(remote);
    stream = await dial(remote.address, {
      timeoutMs,
      ...(identityFile ? { ziti: { identityFile } } : {}),
      ssh: { remoteCommand: bridgeCommand(remote) },
    });
  } catch (err) {
    throw dialFailure(remote, err as Error);
  }
  try {
    const token = remote.token === undefined ? {} : { token: remote.token };
    stream.write(JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'hello', params: { client: CLIENT_LABEL, ...token, ...hello } }) + '\n');
    let line: Buffer;
    try {
      line = await readFirstLine(stream, { maxBytes: MAX_HELLO_BYTES, timeoutMs: Math.max(1, deadline - Date.now()) });
    } catch (err) {
      // A transport that connects lazily (ssh, the ziti tunnel backend's zcat) reports a failed dial here.
      if (err instanceof DialError) throw dialFailure(remote, err);
      const msg = (err as Error).message;
      if (/no message within/.test(msg)) {
        throw new RemoteError(`${label(remote)}: timed out waiting for the daemon's hello reply (${timeoutMs} ms)`, remote.name, 'timeout');
      }
      if (/closed before/.test(msg)) {
        throw new RemoteError(`${label(remote)}: the connection closed during hello; is a ralph daemon listening there?`, remote.name, 'bad-reply');
      }
      throw new RemoteError(`${label(remote)}: bad hello reply: ${msg}`, remote.name, 'bad-reply');
    }
    const result = parseHelloReply(line, remote);
    return { stream, result };
  } catch (err) {
    stream.destroy();
    throw err;
  }
}

/** A failed dial as one line naming the remote (the transport names the address already). */
function dialFailure(remote: RemoteConfig, err: Error): RemoteError {
  const msg = err.message;
  const code = err instanceof DialError ? err.code : undefined;
  const timedOut = code === 'ETIMEDOUT' || /no connection within/.test(msg);
  const why = msg.replace(/^(cannot connect to|connection to) \S+( lost)?: /, '').replace(/^\S+: (?=no connection within)/, '');
  if (isSsh(remote)) return new RemoteError(`${label(remote)}: ${why}${sshHint(remote, code, why)}`, remote.name, timedOut ? 'timeout' : 'unreachable');
  return new RemoteError(
    `${label(remote)}: ${timedOut ? `timed out connecting (${why})` : `unreachable: ${why}`}; is its daemon running? (ralph remote test ${remote.name})`,
    remote.name,
    timedOut ? 'timeout' : 'unreachable',
  );
}

/** What to do about an ssh failure that only ralph knows how to fix. */
function sshHint(remote: RemoteConfig, code: string | undefined, why: string): string {
  if (code === 'SSH_NO_COMMAND') {
    return remote.remoteRalph
      ? `; install ralph there, or fix the path (ralph remote add … --remote-ralph PATH)`
      : `; install ralph on the box (on the PATH a non-interactive ssh session gets), or give its path: ralph remote add … --remote-ralph PATH`;
  }
  if (code === 'SSH_REMOTE' && /unknown command 'bridge'/.test(why)) return ' — the ralph there is too old to be reached over ssh: update it';
  return '';
}

function parseHelloReply(line: Buffer, remote: RemoteConfig): HelloResult {
  let reply: { result?: unknown; error?: ResponseError };
  try {
    reply = JSON.parse(line.toString('utf8'));
  } catch {
    throw new RemoteError(`${label(remote)}: bad hello reply (not JSON); is a ralph daemon listening there?`, remote.name, 'bad-reply');
  }
  if (typeof reply !== 'object' || reply === null) {
    throw new RemoteError(`${label(remote)}: bad hello reply; is a ralph daemon listening there?`, remote.name, 'bad-reply');
  }
  if (reply.error) {
    throw new RemoteError(`${label(remote)}: the daemon refused: ${String(reply.error.message)}`, remote.name, 'refused');
  }
  const r = reply.result as Partial<HelloResult> | undefined;
  if (!r || typeof r !== 'object' || typeof r.version !== 'number' || typeof r.host !== 'string') {
    throw new RemoteError(`${label(remote)}: bad hello reply (no version and host); is a ralph daemon listening there?`, remote.name, 'bad-reply');
  }
  return r as HelloResult;
}

export interface ControlConnection {
  peer: RpcPeer;
  hello: HelloResult;
  remote: RemoteConfig;
}

/** A JSON-RPC connection on the daemon's control channel. */
export async function controlConnection(remote: RemoteConfig, opts: { timeoutMs?: number } = {}): Promise<RpcPeer> {
  return (await openControl(remote, opts)).peer;
}

/** Like controlConnection, also giving the hello result (the daemon's host label). */
export async function openControl(remote: RemoteConfig, opts: { timeoutMs?: number } = {}): Promise<ControlConnection> {
  const { stream, result } = await dialDaemon(remote, { version: PROTOCOL_VERSION, channel: 'control' }, opts);
  return { peer: new RpcPeer(stream), hello: result, remote };
}

/** One control request, with its error turned into a one-line message naming the remote. */
export async function controlRequest<T>(
  conn: ControlConnection,
  method: string,
  params: unknown,
  opts: { timeoutMs?: number } = {},
): Promise<T> {
  try {
    return await conn.peer.request<T>(method, params, { timeoutMs: opts.timeoutMs ?? DEFAULT_DAEMON_TIMEOUT_MS });
  } catch (err) {
    const msg = (err as Error).message;
    if (err instanceof RequestTimeoutError) {
      throw new RemoteError(`${label(conn.remote)}: ${msg}`, conn.remote.name, 'timeout');
    }
    if (err instanceof RpcError) throw new RemoteError(`${label(conn.remote)}: ${msg}`, conn.remote.name, 'refused');
    throw new RemoteError(`${label(conn.remote)}: ${method} failed: ${msg}`, conn.remote.name, 'unreachable');
  }
}

// ---- validation of what a daemon says, at the edge ----

function bad(remote: RemoteConfig | string, what: string): RemoteError {
  const name = typeof remote === 'string' ? remote : remote.name;
  return new RemoteError(`remote ${name}: the daemon sent ${what}; are both sides the same ralph version?`, name, 'bad-reply');
}

const strOrNull = (v: unknown): v is string | null => v === null || typeof v === 'string';

/** One DaemonLoop, checked; throws a RemoteError naming the remote for anything malformed. */
export function checkDaemonLoop(value: unknown, remote: RemoteConfig | string): DaemonLoop {
  const v = value as Record<string, unknown> | null;
  if (typeof v !== 'object' || v === null) throw bad(remote, 'a loop that is not an object');
  const ok =
    typeof v.loopId === 'string' &&
    v.loopId !== '' &&
    typeof v.agent === 'string' &&
    typeof v.status === 'string' &&
    LOOP_STATUSES.includes(v.status as LoopStatus) &&
    Number.isInteger(v.iteration) &&
    Number.isInteger(v.maxIterations) &&
    typeof v.startedAt === 'string';
  if (!ok) throw bad(remote, `a malformed loop ${JSON.stringify(v.loopId ?? null)}`);
  return {
    loopId: v.loopId as string,
    name: typeof v.name === 'string' ? v.name : (v.loopId as string),
    repo: strOrNull(v.repo) ? v.repo : null,
    branch: strOrNull(v.branch) ? v.branch : null,
    baseCommit: strOrNull(v.baseCommit) ? v.baseCommit : null,
    worktree: typeof v.worktree === 'string' ? v.worktree : '',
    agent: v.agent as string,
    status: v.status as LoopStatus,
    iteration: v.iteration as number,
    maxIterations: v.maxIterations as number,
    currentStory: strOrNull(v.currentStory) ? v.currentStory : null,
    startedAt: v.startedAt as string,
    updatedAt: typeof v.updatedAt === 'string' ? v.updatedAt : (v.startedAt as string),
    endedAt: strOrNull(v.endedAt) ? v.endedAt : null,
    reason: strOrNull(v.reason) ? v.reason : null,
    pushId: strOrNull(v.pushId) ? v.pushId : null,
    pausedUntil: strOrNull(v.pausedUntil) ? v.pausedUntil : null,
    resumedFrom: strOrNull(v.resumedFrom) ? v.resumedFrom : null,
    usage: checkUsage(v.usage),
  };
}

const numOrNull = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : null);

/** Usage totals from a daemon; anything missing or malformed counts as unknown (an older daemon sends none). */
function checkUsage(value: unknown): UsageTotals {
  if (typeof value !== 'object' || value === null) return NO_USAGE;
  const u = value as Record<string, unknown>;
  return {
    inputTokens: numOrNull(u.inputTokens),
    outputTokens: numOrNull(u.outputTokens),
    cacheReadTokens: numOrNull(u.cacheReadTokens),
    cacheWriteTokens: numOrNull(u.cacheWriteTokens),
    costUsd: numOrNull(u.costUsd),
  };
}

/** A list of loops (`loop.list`, `push.result`): a bare array or `{loops: [...]}`. */
export function checkDaemonLoops(value: unknown, remote: RemoteConfig | string): DaemonLoop[] {
  const list = Array.isArray(value) ? value : (value as { loops?: unknown } | null)?.loops;
  if (!Array.isArray(list)) throw bad(remote, 'a loop list that is not a list');
  return list.map((l) => checkDaemonLoop(l, remote));
}

export async function listLoops(conn: ControlConnection, opts: { timeoutMs?: number } = {}): Promise<DaemonLoop[]> {
  return checkDaemonLoops(await controlRequest(conn, ControlMethods.loopList, {}, opts), conn.remote);
}

export function checkDaemonInfo(value: unknown, remote: RemoteConfig): DaemonInfo {
  const v = value as Partial<DaemonInfo> | null;
  if (typeof v !== 'object' || v === null || typeof v.version !== 'string' || typeof v.host !== 'string' || typeof v.loopsRunning !== 'number') {
    throw bad(remote, 'a malformed daemon.info answer');
  }
  return {
    version: v.version,
    protocol: typeof v.protocol === 'number' ? v.protocol : PROTOCOL_VERSION,
    host: v.host,
    agents: typeof v.agents === 'object' && v.agents !== null ? v.agents : {},
    loopsRunning: v.loopsRunning,
    maxLoops: typeof v.maxLoops === 'number' ? v.maxLoops : 0,
  };
}

/** `daemon.info` on a fresh control connection, with the round trip of that request. */
export async function daemonInfo(
  remote: RemoteConfig,
  opts: { timeoutMs?: number } = {},
): Promise<{ info: DaemonInfo; roundTripMs: number }> {
  const conn = await openControl(remote, opts);
  try {
    const t0 = performance.now();
    const raw = await controlRequest(conn, ControlMethods.daemonInfo, {}, opts);
    const roundTripMs = performance.now() - t0;
    return { info: checkDaemonInfo(raw, remote), roundTripMs };
  } finally {
    conn.peer.close('done');
  }
}

/**
 * The remote a session-DB row runs on: the configured one of that name; failing that (the remote was
 * removed from the config since), what the row itself remembers of a Ziti remote.
 */
export function remoteForRow(row: { id: string; remote: string | null; zitiService: string | null; identityPath: string | null }, config: Config): RemoteConfig {
  const name = row.remote ?? '';
  const configured = config.remotes[name];
  if (configured) return { ...configured, name };
  if (row.zitiService) {
    return { name, address: `ziti:${row.zitiService}`, ...(row.identityPath ? { zitiIdentity: row.identityPath } : {}) };
  }
  throw new RemoteError(
    `loop ${row.id} runs on remote ${JSON.stringify(name)}, which is not in the config any more; add it again with: ralph remote add ${name || 'NAME'} --ssh [USER@]HOST (or --address, --ziti-service)`,
    name,
    'unknown-remote',
  );
}
