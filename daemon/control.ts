// The control channel: daemon methods over one JSON-RPC connection (daemon/protocol.ts).

import { closeSync, openSync, readSync, fstatSync } from 'node:fs';
import { LoopMethods } from '../loop/protocol.js';
import { ErrorCodes, RpcError } from '../rpc/messages.js';
import { optionalInteger, paramsObject, requireOneOf, requireString } from '../rpc/params.js';
import { RpcPeer, type RequestHandler } from '../rpc/peer.js';
import { MAX_ITERATIONS } from '../store/iteration-limit.js';
import { isFinal, type LoopRow } from '../store/loops.js';
import { dial } from '../transport/index.js';
import type { DaemonContext } from './context.js';
import { answeringDbBusy } from './db-busy.js';
import { toDaemonLoop } from './loops.js';
import {
  ControlMethods,
  type DaemonInfo,
  type DaemonLoop,
  type LoopLogsResult,
} from './protocol.js';
import { checkPushId, checkStartParams } from './start-loop.js';
import type { Supervisor } from './supervisor.js';

/** Most bytes one loop.logs answer carries. */
export const MAX_LOGS_BYTES = 1024 * 1024;
const DEFAULT_LOGS_BYTES = 256 * 1024;
const RUNNER_TIMEOUT_MS = 5000;

export interface ControlServices {
  ctx: DaemonContext;
  supervisor: Supervisor;
  info(): DaemonInfo;
  /** Registers a subscriber for loop events until its connection closes. */
  addSubscriber(peer: RpcPeer): void;
  /** Where loop.start's progress lines go for this caller (loop.progress notifications). */
  progressTo(peer: RpcPeer): (line: string) => void;
}

/** Finds a loop by id or name, or answers NotFound. */
export function findLoop(ctx: DaemonContext, loopId: string): LoopRow {
  const row = ctx.store.find(loopId);
  if (!row || row.location !== 'local') {
    throw new RpcError(ErrorCodes.NotFound, `no loop ${loopId} on ${ctx.host}; see loop.list (ralph status)`);
  }
  return row;
}

export function serveControl(peer: RpcPeer, s: ControlServices): void {
  const { ctx, supervisor } = s;
  // Every method reads or writes the session DB: one locked by another process is answered, not waited out.
  const methods = { onRequest: (method: string, handler: RequestHandler) => peer.onRequest(method, answeringDbBusy(handler)) };

  methods.onRequest(ControlMethods.daemonInfo, () => s.info());

  methods.onRequest(ControlMethods.loopList, (): DaemonLoop[] =>
    ctx.store.list().filter((r) => r.location === 'local').map(toDaemonLoop),
  );

  methods.onRequest(ControlMethods.pushResult, (raw): DaemonLoop[] => {
    const pushId = checkPushId(requireString(paramsObject(raw), 'pushId', { maxLength: 128 }));
    return ctx.store.listByPush(pushId).filter((r) => r.location === 'local').map(toDaemonLoop);
  });

  methods.onRequest(ControlMethods.loopStart, async (raw) => {
    const params = checkStartParams(raw);
    return ctx.startLoop(params, s.progressTo(peer));
  });

  methods.onRequest(ControlMethods.loopResume, async (raw) => {
    const p = paramsObject(raw);
    const loopId = requireString(p, 'loopId', { maxLength: 256 });
    const maxIterations = optionalInteger(p, 'maxIterations', { min: 1, max: MAX_ITERATIONS });
    return ctx.resumeLoop({ loopId, ...(maxIterations !== undefined ? { maxIterations } : {}) }, s.progressTo(peer));
  });

  methods.onRequest(ControlMethods.loopStop, async (raw): Promise<DaemonLoop> => {
    const p = paramsObject(raw);
    const row = findLoop(ctx, requireString(p, 'loopId', { maxLength: 256 }));
    const when = p.when === undefined || p.when === null ? 'now' : requireOneOf(p, 'when', ['now', 'after-iteration'] as const);
    if (isFinal(row.status)) return toDaemonLoop(row);
    // No runner yet (worktree, agent install): the start is called off, and what it made removed.
    if (row.pid === null && ctx.stopStarting(row.id)) return toDaemonLoop(ctx.store.get(row.id) ?? row);
    const stillStarting = () => new RpcError(ErrorCodes.Refused, `loop ${row.id} is still starting; try again in a moment`);
    if (!row.socketPath) throw stillStarting();
    let runner: RpcPeer | undefined;
    try {
      runner = new RpcPeer(await dial({ kind: 'unix', path: row.socketPath }, { timeoutMs: RUNNER_TIMEOUT_MS }));
      await runner.request(LoopMethods.stop, { when }, { timeoutMs: RUNNER_TIMEOUT_MS });
      ctx.log.info(`loop ${row.id}: stop (${when}) requested`);
    } catch (err) {
      const now = supervisor.check(row.id);
      if (now && isFinal(now.status)) return toDaemonLoop(now);
      if (now?.status === 'starting' && now.pid === null) throw stillStarting(); // its runner is being launched
      throw new RpcError(ErrorCodes.InternalError, `loop ${row.id}: its runner did not take the stop: ${(err as Error).message}`);
    } finally {
      runner?.close('done');
    }
    return toDaemonLoop(ctx.store.get(row.id) ?? row);
  });

  methods.onRequest(ControlMethods.loopLogs, (raw): LoopLogsResult => {
    const p = paramsObject(raw);
    const row = findLoop(ctx, requireString(p, 'loopId', { maxLength: 256 }));
    const fromSeq = optionalInteger(p, 'fromSeq', { min: 0 }) ?? 0;
    const maxBytes = Math.min(optionalInteger(p, 'maxBytes', { min: 1 }) ?? DEFAULT_LOGS_BYTES, MAX_LOGS_BYTES);
    return readLog(row, fromSeq, maxBytes);
  });

  methods.onRequest(ControlMethods.subscribe, () => {
    s.addSubscriber(peer);
    return { loops: ctx.store.listOpen().filter((r) => r.location === 'local').map(toDaemonLoop) };
  });
}

/** Bytes [fromSeq, fromSeq + maxBytes) of the loop's log, cut back to whole UTF-8 characters. */
export function readLog(row: LoopRow, fromSeq: number, maxBytes: number): LoopLogsResult {
  if (!row.logPath) return { seq: fromSeq, data: '', endSeq: 0, status: row.status };
  let fd: number;
  try {
    fd = openSync(row.logPath, 'r');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { seq: fromSeq, data: '', endSeq: 0, status: row.status };
    throw err;
  }
  try {
    const size = fstatSync(fd).size;
    const start = Math.min(fromSeq, size);
    const want = Math.min(maxBytes, size - start);
    const buf = Buffer.alloc(want);
    const got = want > 0 ? readSync(fd, buf, 0, want, start) : 0;
    let end = got;
    // Do not split a character: the next call starts where this answer's data ends.
    if (start + got < size) end = wholeUtf8(buf, got);
    return { seq: start, data: buf.subarray(0, end).toString('utf8'), endSeq: size, status: row.status };
  } finally {
    closeSync(fd);
  }
}

/** Length of the longest prefix of buf[0, len) that ends on a UTF-8 character boundary. */
function wholeUtf8(buf: Buffer, len: number): number {
  let i = len - 1;
  let back = 0;
  while (i >= 0 && back < 4 && (buf[i]! & 0xc0) === 0x80) {
    i -= 1;
    back += 1;
  }
  if (i < 0) return len;
  const lead = buf[i]!;
  const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return len - i >= need ? len : i;
}
