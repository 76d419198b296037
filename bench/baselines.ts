// Baselines for the local benchmark, measured the same way as ralph's figures so a reader can tell
// ralph's cost from the machine's:
//  - the raw PTY ceiling: node-pty alone reading the fixture agent's flood (no ralph in between);
//  - a bare node echo over a unix socket: one JSON line out, one JSON line back, no PTY, no ralph.
// When the bare echo's p99 is as spiky as ralph's, the spikes come from the machine (load, the
// scheduler), not from ralph. (Echo through a terminal client in a PTY, and its floor: terminals.ts.)

import { spawn } from 'node:child_process';
import { createConnection } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pty from 'node-pty';
import { AGENT_FIXTURE } from '../test/helpers/loop.js';
import { FloodWindow, percentiles, type Percentiles } from './measure.js';

/**
 * node-pty reading FIXTURE_FLOOD_MB of the fixture's flood, as fast as it can: MB/s. Raw Buffers
 * (encoding null), as ralph's runner reads its PTY, and timed over the same FloodWindow as every
 * ralph path (first flood chunk to the end marker: the fixture's start-up is outside it).
 */
export function rawPtyFlood(floodMb: number): Promise<{ mbPerS: number; chunks: number; mb: number }> {
  return new Promise((resolve, reject) => {
    const window = new FloodWindow();
    let chunks = 0;
    const term = pty.spawn(process.execPath, [AGENT_FIXTURE, 'flood'], {
      name: 'xterm-256color',
      cols: 120,
      rows: 40,
      env: { ...process.env, FIXTURE_FLOOD_MB: String(floodMb) } as Record<string, string>,
      encoding: null,
    });
    term.onData((d: string | Buffer) => {
      if (window.result) return;
      chunks++;
      window.add(d as Buffer);
    });
    void window.done.then((r) => resolve({ mbPerS: r.mbPerS, chunks, mb: r.mb }));
    // node-pty may report the exit before the last reads: give those a moment before giving up.
    term.onExit(() => {
      setTimeout(() => window.result ?? reject(new Error('the flood fixture exited without its end marker')), 5000).unref();
    });
  });
}

// The echo server, in a process of its own as a runner is: parses each request line, answers with an
// `output`-shaped event carrying the key.
const ECHO_SERVER = `
const net = require('node:net');
const server = net.createServer((s) => {
  s.setEncoding('utf8');
  let buf = '';
  s.on('data', (d) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\\n')) !== -1) {
      const req = JSON.parse(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
      s.write(JSON.stringify({ jsonrpc: '2.0', method: 'output', params: { seq: req.id, data: req.params.data } }) + '\\n');
    }
  });
});
server.listen(process.argv[1], () => process.stdout.write('ready\\n'));
`;

async function timeRoundTrips(count: number, send: (ch: string) => void, onReply: (cb: () => void) => void): Promise<Percentiles> {
  let waiter: (() => void) | null = null;
  onReply(() => {
    const w = waiter;
    waiter = null;
    w?.();
  });
  const samples: number[] = [];
  for (let i = 0; i < count + 50; i++) {
    const got = new Promise<void>((r) => (waiter = r));
    const t0 = process.hrtime.bigint();
    send(String.fromCharCode(97 + (i % 26)));
    await got;
    if (i >= 50) samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  return percentiles(samples);
}

/** Round trips of one small JSON line to a bare node echo server in another process, over a unix socket. */
export async function bareSocketEcho(count: number): Promise<Percentiles> {
  const dir = mkdtempSync(join(tmpdir(), 'ralph-bench-echo-'));
  const path = join(dir, 'echo.sock');
  const server = spawn(process.execPath, ['-e', ECHO_SERVER, path], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((r) => server.stdout!.once('data', () => r()));
    const client = createConnection(path);
    await new Promise<void>((r) => client.once('connect', r));
    let id = 0;
    const p = await timeRoundTrips(
      count,
      (ch) => client.write(JSON.stringify({ jsonrpc: '2.0', id: id++, method: 'write', params: { data: ch } }) + '\n'),
      (cb) => client.on('data', cb),
    );
    client.destroy();
    return p;
  } finally {
    server.kill();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The OpenZiti overlay alone, without ralph's protocol or a PTY: a plain tcp server on the service's
 * host port (echo for latency, a source of `floodMb` MB for throughput) behind `ziti tunnel host`,
 * dialed through `ziti tunnel proxy` — its port directly, and through the laptop-side unix relay
 * ralph uses (`dialViaRelay`). Tells what any ralph path over Ziti cannot go below on this machine.
 */
export async function rawOverlay(opts: {
  hostPort: number;
  floodMb: number;
  count: number;
  /** Opens a fresh byte stream to the service (the caller chooses the path). */
  open: () => Promise<import('node:stream').Duplex>;
}): Promise<{ echo: Percentiles; mbPerS: number }> {
  const net = await import('node:net');
  const server = net.createServer((sock) => {
    sock.setNoDelay(true);
    sock.once('data', (first: Buffer) => {
      if (first[0] === 0x46 /* F: flood */) {
        const chunk = Buffer.alloc(64 * 1024, 0x61);
        let left = opts.floodMb * 1024 * 1024;
        const pump = () => {
          while (left > 0) {
            left -= chunk.length;
            if (!sock.write(chunk)) return void sock.once('drain', pump);
          }
          sock.end();
        };
        pump();
        return;
      }
      sock.write(first);
      sock.on('data', (d: Buffer) => sock.write(d));
    });
    sock.on('error', () => sock.destroy());
  });
  await new Promise<void>((resolve) => server.listen(opts.hostPort, '127.0.0.1', resolve));
  try {
    const echoSock = await opts.open();
    const samples: number[] = [];
    for (let i = 0; i < opts.count; i++) {
      const t0 = process.hrtime.bigint();
      const got = new Promise<void>((resolve) => echoSock.once('data', () => resolve()));
      echoSock.write('e');
      await got;
      samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    echoSock.destroy();
    const floodSock = await opts.open();
    let bytes = 0;
    const t0 = process.hrtime.bigint();
    floodSock.write('F');
    await new Promise<void>((resolve) => {
      floodSock.on('data', (d: Buffer) => (bytes += d.length));
      floodSock.once('end', resolve);
      floodSock.once('close', resolve);
    });
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    floodSock.destroy();
    return { echo: percentiles(samples), mbPerS: bytes / (1024 * 1024) / secs };
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
