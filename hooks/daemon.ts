// The hooks' one way to the daemon: its local control socket (RALPH_DAEMON_SOCKET, set by the daemon
// for the receive-pack it runs), one request per connection.

import { openChannel } from '../daemon/hello.js';
import { LOOP_START_MAX_MS } from '../daemon/protocol.js';
import { RequestTimeoutError, RpcPeer } from '../rpc/peer.js';
import { formatDuration } from '../store/duration.js';

/** Notifications the daemon may send while it works on a hook's request (agent install lines...). */
const PROGRESS_EVENTS = ['progress', 'loop.progress'];

export interface HookEnv {
  socket: string;
  repo: string;
  pushId: string | undefined;
}

/** What the daemon told this push's hooks, or null when the push did not come through a daemon. */
export function hookEnv(env: NodeJS.ProcessEnv = process.env): HookEnv | null {
  if (!env.RALPH_DAEMON_SOCKET || !env.RALPH_REPO) return null;
  return { socket: env.RALPH_DAEMON_SOCKET, repo: env.RALPH_REPO, pushId: env.RALPH_PUSH_ID || undefined };
}

/** How long post-receive waits for loop.start: past the longest the daemon may take over it. */
export const LOOP_START_WAIT_MS = LOOP_START_MAX_MS + 60_000;

/** The daemon gave no answer in time; it may still be working on the request. */
export class NoAnswerError extends Error {
  constructor(
    readonly method: string,
    readonly waitedMs: number,
  ) {
    super(`no answer to ${method} within ${formatDuration(waitedMs)}`);
    this.name = 'NoAnswerError';
  }
}

/** post-receive's line when loop.start ran out of time: the loop may well start after the push ends. */
export function startNotAnsweredLine(branch: string, waitedMs: number): string {
  return `no answer yet about a loop for ${branch} after ${formatDuration(waitedMs)}; the daemon may still start it: see ralph status`;
}

export async function callDaemon<T>(
  socket: string,
  method: string,
  params: unknown,
  opts: { timeoutMs?: number; onNotification?: (method: string, params: unknown) => void } = {},
): Promise<T> {
  const { stream } = await openChannel(`unix:${socket}`, { channel: 'control', client: 'hook' }, { timeoutMs: 10_000 });
  // loop.list answers every loop the daemon ever ran, in one line: allow a long one.
  const peer = new RpcPeer(stream, { maxLineBytes: 256 * 1024 * 1024, maxBufferedBytes: 1024 * 1024 });
  const timeoutMs = opts.timeoutMs ?? 600_000;
  if (opts.onNotification) {
    const on = opts.onNotification;
    for (const m of PROGRESS_EVENTS) peer.onNotification(m, (p) => on(m, p));
  }
  try {
    return await peer.request<T>(method, params, { timeoutMs });
  } catch (err) {
    throw err instanceof RequestTimeoutError ? new NoAnswerError(method, timeoutMs) : err;
  } finally {
    peer.close('done');
  }
}
