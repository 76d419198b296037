// LoopFeed against a stand-in runner on a real unix socket: keys go out only once the runner has
// answered this connection's subscribe, in that runner's protocol (a reconnect may reach an older one).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createServer, connect, type Server } from 'node:net';
import { join } from 'node:path';
import { LoopFeed } from '../client/loop-feed.js';
import { RpcPeer } from '../rpc/peer.js';
import { makeTempHome, waitUntil } from './helpers/env.js';

interface Runner {
  server: Server;
  path: string;
  connections: RpcPeer[];
  /** Every write received: how it came (request or notification) and its data. */
  writes: string[];
  /** Per connection (1, 2, …): how its subscribe is answered. */
  answer: (n: number) => Promise<object>;
}

function standInRunner(path: string, answer: Runner['answer']): Promise<Runner> {
  const runner: Runner = { server: createServer(), path, connections: [], writes: [], answer };
  runner.server.on('connection', (socket) => {
    const peer = new RpcPeer(socket);
    const n = runner.connections.push(peer);
    peer.onRequest('resize', (p) => p);
    peer.onRequest('interactive', () => null);
    peer.onRequest('subscribe', () => runner.answer(n));
    peer.onRequest('write', (p) => {
      runner.writes.push(`request ${(p as { data: string }).data}`);
      return null;
    });
    peer.onNotification('write', (p) => runner.writes.push(`notification ${(p as { data: string }).data}`));
  });
  return new Promise((resolve) => runner.server.listen(path, () => resolve(runner)));
}

const RUNNING = { seq: 0, endSeq: 0, cols: 80, rows: 24, status: 'running', interactive: true };

test('keys typed before the subscribe answer are refused (not sent into the void); after it they go out in the protocol of the runner reached, on every connection', async () => {
  const home = makeTempHome('ralph-feed');
  let answerSecond!: () => void;
  const secondAnswered = new Promise<void>((resolve) => (answerSecond = resolve));
  let sawSecond!: () => void;
  const secondAsked = new Promise<void>((resolve) => (sawSecond = resolve));
  // The first runner speaks protocol 2; after the drop, the one reached is an older one (protocol 1), slow to answer.
  const runner = await standInRunner(join(home.home, 'loop.sock'), async (n) => {
    if (n === 1) return { ...RUNNING, protocol: 2 };
    sawSecond();
    await secondAnswered;
    return RUNNING;
  });
  const subscribed: boolean[] = [];
  const feed = new LoopFeed({
    connect: async () => new RpcPeer(connect(runner.path)),
    endedWhileAway: async () => undefined,
    onOutput: () => {},
    onSubscribed: (_result, _peer, isReconnect) => void subscribed.push(isReconnect),
    retryInitialMs: 10,
  });
  try {
    await feed.start();
    assert.ok(feed.write('one'));
    await waitUntil(() => runner.writes.includes('notification one'), { what: 'the first key, as a protocol-2 notification' });

    runner.connections[0]!.close('runner restarting');
    await secondAsked;
    assert.is(feed.write('two'), false, 'no key goes out before the runner has said which protocol it speaks');
    answerSecond();
    await waitUntil(() => subscribed.length === 2, { what: 'the second subscription' });
    assert.equal(subscribed, [false, true]);
    assert.ok(feed.write('three'));
    await waitUntil(() => runner.writes.includes('request three'), { what: 'the key, as a protocol-1 request' });
    assert.equal(runner.writes, ['notification one', 'request three']);
  } finally {
    feed.close();
    for (const c of runner.connections) c.close('done');
    runner.server.close();
    home.cleanup();
  }
});

test.run();
