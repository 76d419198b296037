// One path to a daemon's loop, measured: keystroke echo round trip and output throughput of the
// fixture agent's `echo,flood` loop, over whatever stream `open` gives (tcp, ssh, the Ziti overlay).

import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import type { Duplex } from 'node:stream';
import type { LoopStartResult } from '../daemon/protocol.js';
import { RpcPeer } from '../rpc/peer.js';
import type { DaemonHandle } from '../test/helpers/daemon.js';
import { fixtureAgentCmd } from '../test/helpers/loop.js';
import { measureEcho, measureFlood, OutputWatch, type Percentiles } from './measure.js';

/** The machine's load average, for the side notes of a figure. */
export function loadAverageText(): string {
  return loadavg().map((l) => l.toFixed(2)).join(' ');
}

/** Keystroke echo and output throughput over one path to a daemon's loop. */
export interface PathRow {
  path: string;
  echo: Percentiles;
  mbPerS: number;
  /** How busy the machine's CPUs were during the flood, 0–1 (all cores together). */
  cpuBusy: number;
}

/** Jiffies spent busy and in total by all CPUs so far (/proc/stat's first line). */
function cpuTimes(): { busy: number; total: number } {
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = fields.reduce((a, b) => a + b, 0);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return { busy: total - idle, total };
}

/**
 * Starts a loop of the fixture agent's `echo,flood` on the daemon (repo `app`, branch `bench`, which
 * the caller has pushed there), opens it with `open` (the path under test), and measures keystroke
 * echo, then the flood's throughput; prints one line.
 */
export async function measureLoopPath(
  path: string,
  d: DaemonHandle,
  open: (loopId: string) => Promise<Duplex>,
  opts: { keystrokes: number; floodMb: number },
): Promise<PathRow> {
  const control = await d.control();
  const started = await control.request<LoopStartResult>(
    'loop.start',
    { repo: 'app', branch: 'bench', agentCmd: `FIXTURE_FLOOD_MB=${opts.floodMb} ${fixtureAgentCmd('echo,flood')}`, maxIterations: 1 },
    { timeoutMs: 60_000 },
  );
  control.close();
  const peer = new RpcPeer(await open(started.loopId));
  const watch = new OutputWatch(peer);
  await watch.subscribe({ fromSeq: 0 });
  const echo = await measureEcho(watch, opts.keystrokes);
  const before = cpuTimes();
  const flood = await measureFlood(watch);
  const after = cpuTimes();
  peer.close();
  const row = { path, echo, mbPerS: flood.mbPerS, cpuBusy: (after.busy - before.busy) / Math.max(1, after.total - before.total) };
  console.log(
    `  ${path.padEnd(22)} echo p50 ${echo.p50.toFixed(2)} p95 ${echo.p95.toFixed(2)} p99 ${echo.p99.toFixed(2)} ms (n=${echo.n}); ` +
      `${flood.mbPerS.toFixed(1)} MB/s (${flood.mb.toFixed(0)} MB, CPUs ${(row.cpuBusy * 100).toFixed(0)}% busy)   [load ${loadAverageText()}]`,
  );
  return row;
}
