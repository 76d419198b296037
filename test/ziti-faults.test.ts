// The OpenZiti controller and edge router both killed (SIGKILL) and started again in the middle of an
// attach over Ziti: the attach's connection drops, it keeps reconnecting (client/loop-feed.ts, as
// `ralph attach` does) and resumes from the last byte it had once the overlay is back: nothing lost
// or doubled. Needs the ziti CLI (install/get-ziti.sh); skipped with a line without it.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { dialDaemon } from '../client/daemon.js';
import { LoopFeed } from '../client/loop-feed.js';
import { PROTOCOL_VERSION } from '../daemon/protocol.js';
import { RpcPeer } from '../rpc/peer.js';
import { homePaths } from '../store/paths.js';
import { stopProxy } from '../transport/ziti/proxy.js';
import { startDaemon, type DaemonHandle } from './helpers/daemon.js';
import { makeTempHome, ralph, waitUntil, type TempHome } from './helpers/env.js';
import { fixtureAgentCmd } from './helpers/loop.js';
import { makeTaskRepo } from './helpers/task.js';
import { zitiNetworkOrSkip, type ZitiNetwork } from './helpers/ziti-network.js';

test('controller and edge router SIGKILLed and restarted mid-attach: the attach resumes from seq, nothing lost or doubled', async () => {
  const net: ZitiNetwork | null = await zitiNetworkOrSkip('ralph-zf');
  if (!net) return;
  let box: TempHome | undefined;
  let d: DaemonHandle | undefined;
  let feed: LoopFeed | undefined;
  try {
    box = makeTempHome('ralph-zfb');
    process.env.RALPH_ZITI_PROXY_DIR = join(box.home, 'zp');
    Object.assign(process.env, net.env);
    d = await startDaemon(box, {
      args: ['--ziti-service', net.service, '--ziti-identity', net.identities.daemon, '--ziti-backend', 'tunnel'],
      env: { ...net.env, RALPH_ZITI_HOST_PORT: String(net.hostPort) },
      readyTimeoutMs: 60_000,
    });
    const run = await ralph(['run', makeTaskRepo({ stories: 1 }).dir, '--agent-cmd', fixtureAgentCmd('slow,work')], {
      env: { ...box.env, FIXTURE_SLOW_MS: '50', FIXTURE_SLOW_COUNT: '100000' },
    });
    assert.is(run.code, 0, run.stderr);
    const id = run.stdout.trim();

    const remote = { name: 'box', address: `ziti:${net.service}`, zitiIdentity: net.identities.client };
    let output = '';
    let drops = 0;
    feed = new LoopFeed({
      connect: async () => new RpcPeer((await dialDaemon(remote, { version: PROTOCOL_VERSION, channel: 'loop', loop: id }, { timeoutMs: 20_000 })).stream),
      fromSeq: 0,
      endedWhileAway: async () => undefined, // keep trying: the loop runs on the box meanwhile
      onOutput: (data) => (output += data),
      onDisconnected: () => void (drops += 1),
      retryMaxMs: 1000,
      firstConnectTimeoutMs: 60_000,
    });
    await feed.start();
    await waitUntil(() => output.includes('slow line 20\r\n'), { what: 'output over Ziti', timeoutMs: 60_000 });

    net.killOverlay();
    await waitUntil(() => drops > 0, { what: 'the attach to notice the overlay is gone', timeoutMs: 60_000 });
    const before = output.length;
    net.restartOverlay();
    // Output flows again over a new circuit once the tunnelers have found the router again.
    const marker = await waitUntil(() => {
      const m = /slow line (\d+)\r\n/g;
      let last = 0;
      for (const x of output.slice(before).matchAll(m)) last = Number(x[1]);
      return last > 0 ? last + 20 : 0;
    }, { what: 'output over Ziti after the restart', timeoutMs: 120_000 });
    await waitUntil(() => output.includes(`slow line ${marker}\r\n`), { what: 'live output after the restart', timeoutMs: 60_000 });

    const stop = await ralph(['stop', id], { env: box.env });
    assert.is(stop.code, 0, stop.stderr);
    const end = await feed.ended;
    assert.is(end.status, 'stopped');
    assert.is(output, readFileSync(homePaths(box.home).logFor(id), 'utf8'), 'what the attach showed is the log, byte for byte');
    assert.ok(drops >= 1);
  } finally {
    feed?.close();
    await stopProxy(net.service, net.identities.client).catch(() => null);
    await d?.stop().catch(() => null);
    await net.stop();
    box?.cleanup();
  }
});

test.run();
