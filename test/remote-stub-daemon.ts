// A stand-in daemon for the laptop-side tests, in the test process: it speaks the real wire protocol
// (hello, control methods and events, the loop channel) over real tcp, and lets a test decide what
// its loops do. The real `ralph daemon` (test/helpers/daemon.ts) replaces it where a test needs real
// runners; this one is for what a real daemon cannot be made to do on cue (never answer, finish a
// loop at a chosen moment, count calls).

import net from 'node:net';
import type { Duplex } from 'node:stream';
import { ControlEvents, ControlMethods, PROTOCOL_VERSION, type DaemonInfo, type DaemonLoop, type LoopStartParams } from '../daemon/protocol.js';
import { LOOP_PROTOCOL, LoopEvents, LoopMethods } from '../loop/protocol.js';
import { ErrorCodes, RpcError } from '../rpc/messages.js';
import { RpcPeer } from '../rpc/peer.js';
import { readFirstLine } from '../rpc/reader.js';
import { NO_USAGE, type LoopStatus } from '../store/loops.js';
import { listen, type Listener } from '../transport/index.js';

export interface StubDaemon {
  address: string;
  host: string;
  loops: Map<string, DaemonLoop>;
  startCalls: LoopStartParams[];
  /** Moves a loop to a final status and tells subscribers, as a runner finishing would. */
  finish(loopId: string, status: Extract<LoopStatus, 'completed' | 'failed' | 'stopped'>, reason: string | null): void;
  /** Bytes written into each loop (by `write` on the loop channel). */
  written(loopId: string): string;
  close(): Promise<void>;
}

/** `loopProtocol`: the loop protocol its runners speak (1: as a runner an older ralph started). */
export async function startStubDaemon(opts: { host?: string; loopProtocol?: 1 | 2 } = {}): Promise<StubDaemon> {
  const host = opts.host ?? 'stub-box';
  const loopProtocol = opts.loopProtocol ?? LOOP_PROTOCOL;
  const listener: Listener = await listen('tcp://127.0.0.1:0');
  const loops = new Map<string, DaemonLoop>();
  const startCalls: LoopStartParams[] = [];
  const subscribers = new Set<RpcPeer>();
  const loopPeers = new Map<string, Set<RpcPeer>>();
  const writes = new Map<string, string>();
  const outputs = new Map<string, string>();
  const conns = new Set<Duplex>();
  let n = 0;

  const output = (loopId: string, data: string) => {
    const seq = Buffer.byteLength(outputs.get(loopId) ?? '');
    outputs.set(loopId, (outputs.get(loopId) ?? '') + data);
    for (const p of loopPeers.get(loopId) ?? []) {
      if (loopProtocol === 1) p.notify(LoopEvents.output, { seq, data });
      else p.notifyWithPayload(LoopEvents.output, { seq }, Buffer.from(data));
    }
  };

  const serveControl = (peer: RpcPeer) => {
    peer.onRequest(ControlMethods.daemonInfo, (): DaemonInfo => ({
      version: '0.1.0',
      protocol: PROTOCOL_VERSION,
      host,
      agents: { claude: { available: true, path: '/usr/bin/claude' }, opencode: { available: false, path: null } },
      loopsRunning: [...loops.values()].filter((l) => l.status === 'running').length,
      maxLoops: 4,
    }));
    peer.onRequest(ControlMethods.loopList, () => [...loops.values()]);
    peer.onRequest(ControlMethods.loopStart, (raw) => {
      const p = raw as LoopStartParams;
      if (p.branch === 'missing') throw new RpcError(ErrorCodes.NotFound, `no branch missing in repo ${p.repo}`);
      startCalls.push(p);
      const loopId = `${p.branch.replace(/[^A-Za-z0-9]/g, '-')}-${(++n).toString(16).padStart(4, '0')}`;
      const now = new Date().toISOString();
      const loop: DaemonLoop = {
        loopId,
        name: loopId,
        repo: p.repo,
        branch: p.branch,
        baseCommit: 'c0ffee',
        worktree: `/srv/ralph/worktrees/${loopId}`,
        agent: p.agentCmd ? 'custom' : (p.agent ?? 'claude'),
        status: 'running',
        iteration: 1,
        maxIterations: p.maxIterations ?? 10,
        currentStory: 'US-001',
        startedAt: now,
        updatedAt: now,
        endedAt: null,
        reason: null,
        pushId: p.pushId ?? null,
        pausedUntil: null,
        resumedFrom: null,
        usage: NO_USAGE,
      };
      loops.set(loopId, loop);
      for (const s of subscribers) s.notify(ControlEvents.started, loop);
      return { loopId, worktree: loop.worktree, agent: loop.agent, maxIterations: loop.maxIterations };
    });
    peer.onRequest(ControlMethods.subscribe, () => {
      subscribers.add(peer);
      peer.onClose(() => subscribers.delete(peer));
      return { loops: [...loops.values()].filter((l) => l.status === 'running') };
    });
  };

  // The loop channel: a tiny runner — screen replay, keystrokes echoed as output, completion.
  const serveLoop = (peer: RpcPeer, loopId: string) => {
    const peers = loopPeers.get(loopId) ?? new Set();
    loopPeers.set(loopId, peers);
    peers.add(peer);
    peer.onClose(() => peers.delete(peer));
    const loop = loops.get(loopId)!;
    peer.onRequest(LoopMethods.status, () => ({ ...loop, id: loopId, interactive: false, seq: Buffer.byteLength(outputs.get(loopId) ?? '') }));
    peer.onRequest(LoopMethods.subscribe, (raw) => {
      const end = Buffer.byteLength(outputs.get(loopId) ?? '');
      const result = { seq: end, endSeq: end, screen: outputs.get(loopId) ?? '', cols: 80, rows: 24, status: loop.status, interactive: false };
      if (loopProtocol === 1) return result;
      if (((raw as { protocol?: number }).protocol ?? 1) < loopProtocol) throw new RpcError(ErrorCodes.Refused, 'stub: an older client');
      return { protocol: loopProtocol, ...result };
    });
    const write = (raw: unknown) => {
      const data = (raw as { data: string }).data;
      writes.set(loopId, (writes.get(loopId) ?? '') + data);
      output(loopId, `echo:${data}`);
      return null;
    };
    peer.onRequest(LoopMethods.write, write);
    if (loopProtocol >= 2) peer.onNotification(LoopMethods.write, write);
    peer.onRequest(LoopMethods.interactive, () => null);
    peer.onRequest(LoopMethods.resize, () => null);
    peer.onRequest(LoopMethods.unsubscribe, () => null);
  };

  listener.onConnection(async (conn) => {
    conns.add(conn);
    conn.on('close', () => conns.delete(conn));
    conn.on('error', () => {});
    let hello: { id: number; params: { channel: string; loop?: string; version: number } };
    try {
      hello = JSON.parse((await readFirstLine(conn, { maxBytes: 16384, timeoutMs: 5000 })).toString());
    } catch {
      conn.destroy();
      return;
    }
    const reply = (body: object) => conn.write(JSON.stringify({ jsonrpc: '2.0', id: hello.id, ...body }) + '\n');
    if (hello.params.channel === 'loop' && !loops.has(hello.params.loop ?? '')) {
      reply({ error: { code: ErrorCodes.NotFound, message: `no loop ${hello.params.loop} on ${host}` } });
      conn.end();
      return;
    }
    reply({ result: { version: PROTOCOL_VERSION, channel: hello.params.channel, host } });
    const peer = new RpcPeer(conn);
    if (hello.params.channel === 'control') serveControl(peer);
    else if (hello.params.channel === 'loop') serveLoop(peer, hello.params.loop!);
    else peer.close('unsupported channel');
  });

  return {
    address: listener.address,
    host,
    loops,
    startCalls,
    written: (loopId) => writes.get(loopId) ?? '',
    finish(loopId, status, reason) {
      const loop = loops.get(loopId);
      if (!loop) throw new Error(`stub: no loop ${loopId}`);
      Object.assign(loop, { status, reason, endedAt: new Date().toISOString(), updatedAt: new Date().toISOString() });
      const event = status === 'completed' ? ControlEvents.completed : status === 'failed' ? ControlEvents.failed : ControlEvents.stopped;
      for (const s of subscribers) s.notify(event, loop);
      for (const p of loopPeers.get(loopId) ?? []) {
        p.notify(LoopEvents.state, { status, iteration: loop.iteration, maxIterations: loop.maxIterations, currentStory: null, interactive: false, reason });
        p.notify(LoopEvents.completed, { status, reason, iteration: loop.iteration, seq: Buffer.byteLength(outputs.get(loopId) ?? '') });
      }
    },
    async close() {
      for (const c of conns) c.destroy();
      await listener.close();
    },
  };
}

/** A tcp port that accepts connections and never says anything (a hung daemon, a black hole). */
export async function startSilentServer(): Promise<{ address: string; accepted: () => number; close(): Promise<void> }> {
  const socks = new Set<net.Socket>();
  let accepted = 0;
  const server = net.createServer((s) => {
    accepted += 1;
    socks.add(s);
    s.on('error', () => {});
    s.on('close', () => socks.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  return {
    address: `tcp://127.0.0.1:${port}`,
    accepted: () => accepted,
    close: () =>
      new Promise((resolve) => {
        for (const s of socks) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A tcp address where nothing listens (a port that was free a moment ago). */
export async function deadAddress(): Promise<string> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `tcp://127.0.0.1:${port}`;
}
