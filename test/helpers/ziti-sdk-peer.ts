// A process on a real OpenZiti network (test/helpers/ziti-network.ts) using the SDK backend, driven by
// the SDK-backend tests: two processes must really talk, and the SDK holds one identity per process.
// Identity from $RALPH_ZITI_IDENTITY; backend sdk unless $RALPH_ZITI_BACKEND says otherwise.
//
//   node ziti-sdk-peer.js host SERVICE          hosts SERVICE; prints "listening", then one line per
//                                               closed connection: "closed <mode> <reason>"
//   node ziti-sdk-peer.js dial SERVICE [MS]     prints {"ok":true,"ms"} or {"ok":false,"error","name","ms"}
//   node ziti-sdk-peer.js listen SERVICE        same, for hosting
//   node ziti-sdk-peer.js choice                prints what `--ziti-backend auto` makes of the SDK here
//
// A hosted connection starts with one JSON line choosing its mode:
//   {"mode":"rpc"}                 an RpcPeer: echo(params) → params; bye() → "bye", then ends the stream
//   {"mode":"sink","bytes":N}      reads N bytes, answers {"bytes","sha256"} and ends
//   {"mode":"source","bytes":N[,"end":true]}  writes pattern(N) with backpressure, then waits (or ends)
//   {"mode":"drain"}               reads until the dialer ends its side, then answers {"bytes","sha256"} and ends
//   {"mode":"echo"}                writes back everything it reads, and ends when the dialer does
//   {"mode":"stall"}               never reads again (a reader that hangs); on close: "closed stall <why>"

import { createHash } from 'node:crypto';
import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import { RpcPeer } from '../../rpc/peer.js';
import { readFirstLine } from '../../rpc/reader.js';
import { dial, listen } from '../../transport/index.js';
import { sdkChoice } from '../../transport/ziti/sdk.js';
import { pattern } from './ziti-network.js';

const [mode, service, ms] = process.argv.slice(2);
const address = `ziti:${service}`;
// backend sdk unless the test sets RALPH_ZITI_BACKEND (then the dispatcher reads it)
const ziti = process.env.RALPH_ZITI_BACKEND ? {} : { backend: 'sdk' as const };

function out(line: unknown): void {
  process.stdout.write((typeof line === 'string' ? line : JSON.stringify(line)) + '\n');
}

/** Resolves on 'drain', or on 'close': a dialer that closes mid-way (or is cut off) never drains us. */
function drainOrClose(conn: Duplex): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      conn.off('drain', done);
      conn.off('close', done);
      resolve();
    };
    conn.on('drain', done);
    conn.on('close', done);
  });
}

async function serve(conn: Duplex): Promise<void> {
  let kind = 'unknown';
  try {
    const first = JSON.parse((await readFirstLine(conn, { maxBytes: 4096, timeoutMs: 10_000 })).toString());
    kind = first.mode;
    if (kind === 'rpc') {
      const peer = new RpcPeer(conn);
      peer.onRequest('echo', (p) => p);
      peer.onRequest('bye', () => {
        setImmediate(() => conn.end());
        return 'bye';
      });
      out(`closed rpc ${await peer.whenClosed()}`);
      return;
    }
    if (kind === 'sink') {
      const hash = createHash('sha256');
      let got = 0;
      conn.on('data', (d: Buffer) => {
        hash.update(d);
        got += d.length;
        if (got >= first.bytes) conn.end(JSON.stringify({ bytes: got, sha256: hash.digest('hex') }) + '\n');
      });
      conn.resume();
    } else if (kind === 'source') {
      const data = pattern(first.bytes);
      let drains = 0;
      for (let i = 0; i < data.length && !conn.destroyed; i += 64 * 1024) {
        if (!conn.write(data.subarray(i, i + 64 * 1024))) {
          drains++;
          await drainOrClose(conn);
        }
      }
      out(`source-done ${drains}`);
      if (first.end) conn.end();
      conn.resume();
    } else if (kind === 'drain') {
      // The dialer half-closes after its bytes; the answer goes out after that.
      (conn as Duplex & { allowHalfOpen: boolean }).allowHalfOpen = true;
      const hash = createHash('sha256');
      let got = 0;
      conn.on('data', (d: Buffer) => {
        hash.update(d);
        got += d.length;
      });
      conn.resume(); // readFirstLine leaves it paused
      await once(conn, 'end');
      conn.end(JSON.stringify({ bytes: got, sha256: hash.digest('hex') }) + '\n');
    } else if (kind === 'echo') {
      conn.pipe(conn);
    }
    // 'stall': readFirstLine left the connection paused, and nothing resumes it.
    if (!conn.closed) await once(conn, 'close');
    out(`closed ${kind} ${conn.errored?.message ?? 'ok'}`);
  } catch (err) {
    out(`closed ${kind} ${(err as Error).message}`);
  }
}

async function main(): Promise<void> {
  const started = Date.now();
  try {
    if (mode === 'host') {
      const l = await listen(address, { ziti });
      l.onConnection((c) => void serve(c));
      out('listening');
      return; // runs until killed (the SDK keeps the process alive)
    }
    if (mode === 'choice') {
      out(sdkChoice());
      process.exit(0);
    }
    if (mode === 'dial') {
      const c = await dial(address, { ziti, timeoutMs: Number(ms ?? 3000) });
      c.destroy();
    } else if (mode === 'listen') {
      const l = await listen(address, { ziti });
      await l.close();
    } else {
      throw new Error(`unknown mode ${mode}`);
    }
    out({ ok: true, ms: Date.now() - started });
  } catch (err) {
    out({ ok: false, error: (err as Error).message, name: (err as Error).name, ms: Date.now() - started });
  }
  process.exit(0); // the SDK keeps the event loop alive after init
}

void main();
