// The loop channel: after hello {channel: loop}, the client's bytes go to that loop runner's unix
// socket and back, untouched (the client speaks loop/protocol.ts end to end).

import type { Duplex } from 'node:stream';
import { ErrorCodes, RpcError } from '../rpc/messages.js';
import { isFinal, type LoopRow } from '../store/loops.js';
import { dial } from '../transport/index.js';
import type { DaemonContext } from './context.js';
import { findLoop } from './control.js';
import type { Supervisor } from './supervisor.js';

const RUNNER_DIAL_TIMEOUT_MS = 5000;
/** After one side closed with the other still flushing its half-close, give up after this long. */
const LINGER_MS = 10_000;

function endedError(row: LoopRow): RpcError {
  return new RpcError(
    ErrorCodes.Refused,
    `loop ${row.id} is not running: it ${row.status === 'stopped' ? 'was stopped' : row.status}${row.reason ? ` (${row.reason})` : ''}; its output is still there (loop.logs, ralph logs ${row.id})`,
    { loopId: row.id, status: row.status, reason: row.reason },
  );
}

/** Dials the runner of a loop; an ended or vanished loop is an RpcError saying its final status. */
export async function dialRunner(ctx: DaemonContext, supervisor: Supervisor, loop: string): Promise<{ row: LoopRow; runner: Duplex }> {
  const row = findLoop(ctx, loop);
  if (isFinal(row.status)) throw endedError(row);
  if (!row.socketPath) throw new RpcError(ErrorCodes.Refused, `loop ${row.id} is still starting; try again in a moment`, { loopId: row.id, status: row.status });
  try {
    return { row, runner: await dial({ kind: 'unix', path: row.socketPath }, { timeoutMs: RUNNER_DIAL_TIMEOUT_MS }) };
  } catch (err) {
    const now = supervisor.check(row.id) ?? row;
    if (isFinal(now.status)) throw endedError(now);
    throw new RpcError(ErrorCodes.InternalError, `loop ${row.id}: its runner does not answer (${(err as Error).message})`, {
      loopId: row.id,
      status: now.status,
    });
  }
}

/**
 * Pipes two streams both ways. An end on one side half-closes the other; a side that goes away
 * without ending (reset, error) takes the other down with it.
 */
export function splice(a: Duplex, b: Duplex): void {
  // A net.Socket ends its own writing side when its reading side ends unless told otherwise; the
  // other direction must stay open until its own end arrives.
  for (const s of [a, b]) if ('allowHalfOpen' in s) (s as Duplex & { allowHalfOpen: boolean }).allowHalfOpen = true;
  a.pipe(b);
  b.pipe(a);
  const onGone = (from: Duplex, to: Duplex) => () => {
    if (to.destroyed) return;
    if (!to.writableEnded) {
      to.destroy();
      return;
    }
    // `to` got the half-close and is finishing its own side: leave it a moment, then end it.
    const t = setTimeout(() => to.destroy(), LINGER_MS);
    t.unref();
    to.once('close', () => clearTimeout(t));
  };
  a.once('close', onGone(a, b));
  b.once('close', onGone(b, a));
  a.on('error', () => a.destroy());
  b.on('error', () => b.destroy());
}
