// Measurements shared by the benchmarks: keystroke echo round trip and output throughput over any
// RpcPeer that speaks loop/protocol.ts (a local socket, the daemon over tcp, the Ziti overlay).

import { readFileSync } from 'node:fs';
import { LOOP_PROTOCOL, type CompletedEvent, type OutputEvent, type SubscribeResult } from '../loop/protocol.js';
import type { RpcPeer } from '../rpc/peer.js';

export interface Percentiles {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

export function percentiles(samples: number[]): Percentiles {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number) => s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
  return {
    n: s.length,
    p50: at(0.5),
    p95: at(0.95),
    p99: at(0.99),
    max: s[s.length - 1]!,
    mean: s.reduce((a, b) => a + b, 0) / s.length,
  };
}

export function fmtMs(p: Percentiles): string {
  return `p50 ${p.p50.toFixed(3)} ms  p95 ${p.p95.toFixed(3)} ms  p99 ${p.p99.toFixed(3)} ms  max ${p.max.toFixed(2)} ms  (n=${p.n})`;
}

/** A flood line (each holds it) and the fixture's last line after its flood (demo/agent.mjs). */
export const FLOOD_LINE = Buffer.from('flöod');
export const FLOOD_END = Buffer.from('flood done:');

/**
 * The window every flood figure is timed over, on every path (node-pty alone, the bench's RPC client,
 * `ralph attach`'s stdout): from the arrival of the first chunk holding a flood line to the arrival of
 * the chunk that completes the fixture's end marker ("flood done:"), counting the raw bytes of those
 * chunks. Spawning, the echo step before the flood and anything after the marker (the loop's end,
 * exits) are outside it on all paths alike.
 */
export class FloodWindow {
  private t0 = 0n;
  private bytes = 0;
  private tail = Buffer.alloc(0);
  result: { mb: number; seconds: number; mbPerS: number } | null = null;
  private resolveDone!: (r: { mb: number; seconds: number; mbPerS: number }) => void;
  readonly done = new Promise<{ mb: number; seconds: number; mbPerS: number }>((r) => (this.resolveDone = r));

  /** Feed every chunk as it arrives (raw bytes, no decoding); true once the end marker has arrived. */
  add(chunk: Buffer): boolean {
    if (this.result) return true;
    if (this.t0 === 0n) {
      if (!chunk.includes(FLOOD_LINE)) return false;
      this.t0 = process.hrtime.bigint();
    }
    this.bytes += chunk.length;
    // The marker may straddle two chunks: look at the previous chunk's last bytes with this one's first.
    const seam = Buffer.concat([this.tail, chunk.subarray(0, FLOOD_END.length)]);
    if (chunk.includes(FLOOD_END) || seam.includes(FLOOD_END)) {
      const seconds = Number(process.hrtime.bigint() - this.t0) / 1e9;
      const mb = this.bytes / (1024 * 1024);
      this.result = { mb, seconds, mbPerS: mb / seconds };
      this.resolveDone(this.result);
      return true;
    }
    this.tail = Buffer.from(chunk.subarray(Math.max(0, chunk.length - FLOOD_END.length)));
    return false;
  }
}

/**
 * A subscription that collects output text and lets a caller await a substring (ASCII: the text is
 * the output's bytes read as latin1, which costs no UTF-8 decoding of a flood).
 * Expects the loop to run the fixture agent's `echo,flood` steps (test/fixtures/agent.mjs).
 */
export class OutputWatch {
  text = '';
  bytes = 0;
  events = 0;
  /** Offset just past the last output received. */
  endSeq = 0;
  private waiters: Array<{ needle: string; from: number; resolve: () => void }> = [];
  private completedEvent: CompletedEvent | null = null;
  private completedResolve!: () => void;
  /** While a flood is measured: the window its payloads are fed to. */
  flood: FloodWindow | null = null;
  /** Resolves once the loop has completed and all its output has arrived. */
  readonly completed = new Promise<void>((r) => (this.completedResolve = r));

  constructor(readonly peer: RpcPeer) {
    peer.onNotification('output', (p, _peer, payload) => {
      const e = p as OutputEvent;
      if (!payload) return;
      this.flood?.add(payload);
      // Matching only needs the tail: don't make the client pay for copying floods around.
      this.text += (payload.length > 8192 ? payload.subarray(payload.length - 8192) : payload).toString('latin1');
      const n = payload.length;
      this.events++;
      this.bytes += n;
      this.endSeq = e.seq + n;
      if (this.completedEvent && this.endSeq >= this.completedEvent.seq) this.completedResolve();
      // keep memory flat during a flood: only the tail matters for matching
      if (this.text.length > 1 << 16) this.text = this.text.slice(-4096);
      this.check();
    });
    peer.onNotification('completed', (p) => {
      this.completedEvent = p as CompletedEvent;
      if (this.endSeq >= this.completedEvent.seq) this.completedResolve();
    });
  }

  async subscribe(params: { fromSeq?: number; replay?: 'none' | 'screen' } = { replay: 'none' }): Promise<SubscribeResult> {
    return this.peer.request<SubscribeResult>('subscribe', { protocol: LOOP_PROTOCOL, ...params });
  }

  /** Resolves when `needle` appears in output arriving after this call. */
  next(needle: string): Promise<void> {
    return new Promise((resolve) => {
      this.waiters.push({ needle, from: this.text.length, resolve });
    });
  }

  /** Resolves when `needle` has appeared anywhere in the (recent) output. */
  seen(needle: string): Promise<void> {
    if (this.text.includes(needle)) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ needle, from: 0, resolve }));
  }

  private check(): void {
    this.waiters = this.waiters.filter((w) => {
      if (this.text.indexOf(w.needle, Math.max(0, Math.min(w.from, this.text.length - 1) - w.needle.length)) !== -1) {
        w.resolve();
        return false;
      }
      return true;
    });
  }
}

/** Keystroke echo: write one character, time until the agent's echo of it arrives as output. */
export async function measureEcho(watch: OutputWatch, count: number): Promise<Percentiles> {
  await watch.seen('ECHO READY');
  await watch.peer.request('interactive', { on: true });
  const samples: number[] = [];
  const alphabet = 'abcdefghijklmnopqrstuvwxyz';
  for (let i = 0; i < count + 50; i++) {
    const ch = alphabet[i % alphabet.length]!;
    watch.text = '';
    const echoed = watch.next(ch);
    const t0 = process.hrtime.bigint();
    watch.peer.notify('write', { data: ch }); // as `ralph attach` sends keys: unanswered
    await echoed;
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (i >= 50) samples.push(ms); // the first 50 warm the JIT and the path
  }
  return percentiles(samples);
}

/**
 * Output throughput: ends the echo step ("q" line) so the fixture floods its PTY, and times the
 * bytes arriving at this client over the FloodWindow (first flood chunk to the end marker), as the
 * baselines are timed. Then waits for the loop to complete (outside the window).
 */
export async function measureFlood(
  watch: OutputWatch,
  rssOf?: () => number,
): Promise<{ mb: number; seconds: number; mbPerS: number; maxRssMb: number; events: number }> {
  watch.text = '';
  const startBytes = watch.bytes;
  const startEvents = watch.events;
  const window = (watch.flood = new FloodWindow());
  let maxRss = 0;
  const sampler = rssOf ? setInterval(() => (maxRss = Math.max(maxRss, rssOf())), 50) : undefined;
  await watch.peer.request('write', { data: '\rq\r' }); // a line of its own: "q" ends the echo step
  await watch.peer.request('interactive', { on: false });
  // The runner lingers only ~2 s after the end for a client still behind; a client further behind
  // (a big flood over a slow path) is cut off, and `ralph attach` would fetch the tail from the log.
  // A benchmark must say so rather than wait forever.
  const closed = watch.peer.whenClosed().then((why) => {
    throw new Error(`the connection closed before all output arrived (${((watch.bytes - startBytes) / (1 << 20)).toFixed(1)} MB received): ${why}; use a smaller BENCH_FLOOD_MB`);
  });
  try {
    await Promise.race([window.done, closed]);
    await Promise.race([watch.completed, closed]);
  } finally {
    clearInterval(sampler);
    watch.flood = null;
  }
  closed.catch(() => {});
  const { mb, seconds, mbPerS } = window.result!;
  return { mb, seconds, mbPerS, maxRssMb: maxRss / 1024, events: watch.events - startEvents };
}

/** CPU time (user + system) a process has used so far, in seconds (Linux). */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks (USER_HZ = 100)
  } catch {
    return 0;
  }
}

/** Resident memory of a process in KiB (Linux). */
export function rssKiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

export interface Memory {
  /** Resident set (KiB): what `ps` shows, shared pages (node's own code) counted in full. */
  rss: number;
  /** Proportional set (KiB): shared pages divided among the processes that share them. */
  pss: number;
  /** Private pages (KiB): what this process alone costs; gone when it exits. */
  private: number;
}

/** A process's memory from /proc/PID/smaps_rollup (Linux), in KiB. */
export function memoryOf(pid: number): Memory {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(text)?.[1] ?? 0);
  return { rss: field('Rss'), pss: field('Pss'), private: field('Private_Clean') + field('Private_Dirty') };
}
