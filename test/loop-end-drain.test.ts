// The end of a loop with clients still behind: every client that is still reading gets all the output
// and the `completed` event over its own connection (local, and remote through the daemon's loop
// channel), however long after the end that takes; one that reads nothing is dropped after the stall
// timeout; the runner leaves once its clients have gone.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runnerLogPath } from '../loop/launch.js';
import { RpcPeer } from '../rpc/peer.js';
import { startDaemon, type DaemonHandle } from './helpers/daemon.js';
import { waitUntil } from './helpers/env.js';
import { LoopClient, LoopHarness } from './helpers/loop.js';

/** A loop whose agent floods `mb` MB once the gate file exists, then completes (one story). */
async function gatedFlood(h: LoopHarness, mb: number, env: Record<string, string> = {}) {
  const repo = h.repo({ stories: 1 });
  const gate = join(repo.dir, '.gate');
  const loop = await h.start({ repo, steps: 'wait,flood,work', env: { FIXTURE_FLOOD_MB: String(mb), FIXTURE_GATE: gate, ...env } });
  return { loop, open: () => writeFileSync(gate, '') };
}

async function viaDaemon(d: DaemonHandle, loopId: string): Promise<LoopClient> {
  const { stream } = await d.open({ channel: 'loop', loop: loopId });
  return new LoopClient(new RpcPeer(stream));
}

test('clients that stop reading before the end and read again later get every byte and the end, local and through the daemon', async () => {
  const h = new LoopHarness('ralph-drain');
  let d: DaemonHandle | undefined;
  try {
    d = await startDaemon(h.home, { listen: ['tcp://127.0.0.1:0'] });
    const { loop, open } = await gatedFlood(h, 8);
    const local = await h.connect(loop);
    const remote = await viaDaemon(d, loop.row.id);
    await local.subscribe({ fromSeq: 0 });
    await remote.subscribe({ fromSeq: 0 });
    // Both stop reading; the agent floods 8 MB and the loop completes while they do.
    local.peer.stream.pause();
    remote.peer.stream.pause();
    open();
    await waitUntil(() => h.row(loop.row.id).status === 'completed', { what: 'the loop to complete', timeoutMs: 60_000 });
    // Longer than the runner used to stay after the end (2 s), well under the stall timeout (30 s).
    await new Promise((r) => setTimeout(r, 3000));
    assert.ok(!local.peer.closed && !remote.peer.closed, 'nobody was cut off while paused');
    local.peer.stream.resume();
    remote.peer.stream.resume();
    const logSize = statSync(loop.row.logPath!).size;
    for (const c of [local, remote]) {
      const end = await c.waitForEnd();
      assert.is(end.status, 'completed');
      assert.is(end.seq, logSize);
      assert.is(c.nextSeq, logSize);
      assert.equal(c.gaps, []);
    }
    assert.is(local.output, readFileSync(loop.row.logPath!, 'utf8'));
    assert.is(remote.output, local.output);
    // The runner half-closed each connection after its last byte; the clients closed theirs; it left.
    await waitUntil(() => local.peer.closed && remote.peer.closed, { what: 'the runner to end both connections' });
    await h.exited(loop.pid);
  } finally {
    await d?.stop();
    await h.cleanup();
  }
});

test('after the end, a client that reads nothing is dropped after the stall timeout while another gets everything', async () => {
  const h = new LoopHarness('ralph-drain');
  try {
    const { loop, open } = await gatedFlood(h, 4, { RALPH_STALL_TIMEOUT_MS: '1500' });
    const reader = await h.connect(loop);
    const stalled = await h.connect(loop);
    await reader.subscribe({ fromSeq: 0 });
    await stalled.subscribe({ fromSeq: 0 });
    stalled.peer.stream.pause();
    open();
    const end = await reader.waitForEnd();
    assert.is(end.status, 'completed');
    assert.is(reader.output, readFileSync(loop.row.logPath!, 'utf8'));
    const t0 = Date.now();
    await waitUntil(() => stalled.peer.closed || /dropped a (subscriber|client)/.test(readFileSync(runnerLogPath(h.paths, loop.row.id), 'utf8')), {
      what: 'the stalled client to be dropped',
      timeoutMs: 20_000,
    });
    await h.exited(loop.pid);
    // Dropped for stalling, not kept until the overall bound (60 s).
    assert.ok(Date.now() - t0 < 15_000, `runner left ${Date.now() - t0} ms after the end`);
    assert.match(readFileSync(runnerLogPath(h.paths, loop.row.id), 'utf8'), /dropped a (subscriber|client) that (read|took) nothing/);
  } finally {
    await h.cleanup();
  }
});

test('a runner with no clients left leaves at once after the end', async () => {
  const h = new LoopHarness('ralph-drain');
  try {
    // Every other way out of the drain is ten minutes away (the overall bound, the stall timeout):
    // a runner gone within h.exited's 15 s left because no client was left, not by a timer.
    const loop = await h.start({ steps: 'work', stories: 1, env: { RALPH_END_DRAIN_MS: '600000', RALPH_STALL_TIMEOUT_MS: '600000' } });
    const c = await h.connect(loop);
    await c.watchToEnd();
    c.close();
    await h.exited(loop.pid);
  } finally {
    await h.cleanup();
  }
});

test.run();
