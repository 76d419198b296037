// The OpenZiti controller and edge router both killed (SIGKILL) and started again in the middle of an
// attach over Ziti: the attach's connection drops, it keeps reconnecting (client/loop-feed.ts, as
// `ralph attach` does) and resumes from the last byte it had once the overlay is back: nothing lost
// or doubled. Over both backends: the `ziti` CLI tunnelers, and the Node SDK in the daemon and in this
// process (whose bind must come back by itself: install/ziti-sdk/ziti-sdk-c-rebind.patch). Needs the
// ziti CLI (install/get-ziti.sh), and ralph's SDK build for the second; skipped with a line without.

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
import { killRunners, startDaemon, type DaemonHandle } from './helpers/daemon.js';
import { makeTempHome, ralph, waitUntil, within, skipped, type TempHome } from './helpers/env.js';
import { fixtureAgentCmd } from './helpers/loop.js';
import { makeTaskRepo, type TaskRepo } from './helpers/task.js';
import { zitiNetworkOrSkip, zitiSdkOrSkip, type ZitiNetwork } from './helpers/ziti-network.js';

const overlayRestart = (backend: 'tunnel' | 'sdk') => async () => {
  if (backend === 'sdk' && !(await zitiSdkOrSkip())) return skipped('no ziti SDK build');
  const net: ZitiNetwork | null = await zitiNetworkOrSkip(`ralph-zf-${backend}`);
  if (!net) return skipped('no ziti network');
  let box: TempHome | undefined;
  let d: DaemonHandle | undefined;
  let feed: LoopFeed | undefined;
  let repo: TaskRepo | undefined;
  try {
    box = makeTempHome('ralph-zfb');
    process.env.RALPH_ZITI_PROXY_DIR = join(box.home, 'zp');
    // The same backend on both sides (`auto` would take the Node SDK where it is built).
    Object.assign(process.env, net.env, { RALPH_ZITI_BACKEND: backend });
    d = await startDaemon(box, {
      args: ['--ziti-service', net.service, '--ziti-identity', net.identities.daemon, '--ziti-backend', backend],
      env: { ...net.env, RALPH_ZITI_HOST_PORT: String(net.hostPort) },
      readyTimeoutMs: 60_000,
    });
    repo = makeTaskRepo({ stories: 1 });
    const run = await ralph(['run', repo.dir, '--agent-cmd', fixtureAgentCmd('slow,work')], {
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
    const end = await within(feed.ended, 60_000, 'the attach to see the stopped loop end');
    assert.is(end.status, 'stopped');
    assert.is(output, readFileSync(homePaths(box.home).logFor(id), 'utf8'), 'what the attach showed is the log, byte for byte');
  } finally {
    feed?.close();
    await stopProxy(net.service, net.identities.client).catch(() => null);
    await d?.stop().catch(() => null);
    await net.stop();
    if (box) killRunners(box.home);
    box?.cleanup();
    repo?.cleanup();
  }
};

test('controller and edge router SIGKILLed and restarted mid-attach (tunnel backend): the attach resumes from seq, nothing lost or doubled', overlayRestart('tunnel'));
// Last: this process keeps the SDK's identity from here on (one per process), and the SDK keeps
// its event loop alive: leave once uvu has reported.
test.after(() => void setTimeout(() => process.exit(), 200).unref());
test('the same over the Node SDK on both sides: the daemon hosts again by itself, the attach resumes, nothing lost or doubled', overlayRestart('sdk'));

test.run();
