// The daemon in a network namespace of its own, reached across a veth pair this test creates:
// `git push` (through git-remote-ralph) starts a loop on the far side, `ralph status` reconciles it
// across the link, the completion comes home. Traffic goes only to the namespace this test made.
// Needs root and `ip netns`; skipped with a line saying so otherwise. The namespace is always deleted.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { openDb } from '../store/db.js';
import { LoopStore } from '../store/loops.js';
import { FIXTURES, RALPH_BIN, ROOT, exited, makeTempHome, ralph, waitUntil, skipped, type TempHome } from './helpers/env.js';
import { killRunners } from './helpers/daemon.js';

const AGENT = `node ${join(FIXTURES, 'agent-package', 'agent.js')}`;
const tag = randomBytes(3).toString('hex');
const ns = `ralph-t-${tag}`;
const vethHost = `rth${tag}`;
const vethNs = `rtn${tag}`;
// A /30 of link-local space that exists only on the veth made here: host .1, namespace .2.
const net = `169.254.${randomInt(1, 255)}.${randomInt(0, 64) * 4}`;
const [a, b, c, dd] = net.split('.').map(Number) as [number, number, number, number];
const hostIp = `${a}.${b}.${c}.${dd + 1}`;
const nsIp = `${a}.${b}.${c}.${dd + 2}`;

function ip(args: string[]): { ok: boolean; err: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  return { ok: r.status === 0, err: (r.stderr ?? '') + (r.error?.message ?? '') };
}

const why = (() => {
  if (process.getuid?.() !== 0) return 'not root';
  const probe = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return `ip netns does not work here (${(probe.stderr || probe.error?.message || '').trim()})`;
  return null;
})();

let made = false;
function deleteNamespace(): void {
  if (!made) return;
  made = false;
  ip(['netns', 'del', ns]); // takes the veth pair with it
  ip(['link', 'del', vethHost]); // in case the pair was made but never moved
}
process.on('exit', deleteNamespace);

function setUpNamespace(): void {
  made = true;
  const steps: string[][] = [
    ['netns', 'add', ns],
    ['link', 'add', vethHost, 'type', 'veth', 'peer', 'name', vethNs],
    ['link', 'set', vethNs, 'netns', ns],
    ['addr', 'add', `${hostIp}/30`, 'dev', vethHost],
    ['link', 'set', vethHost, 'up'],
    ['netns', 'exec', ns, 'ip', 'addr', 'add', `${nsIp}/30`, 'dev', vethNs],
    ['netns', 'exec', ns, 'ip', 'link', 'set', vethNs, 'up'],
    ['netns', 'exec', ns, 'ip', 'link', 'set', 'lo', 'up'],
  ];
  for (const s of steps) {
    const r = ip(s);
    if (!r.ok) throw new Error(`ip ${s.join(' ')} failed: ${r.err.trim()}`);
  }
}

/** `ralph daemon` started inside the namespace (the shared startDaemon helper cannot enter one). */
async function startDaemonInNamespace(box: TempHome): Promise<{ child: ChildProcess; tcp: string; log: () => string }> {
  const child = spawn(
    'ip',
    ['netns', 'exec', ns, process.execPath, RALPH_BIN, 'daemon', '--home', box.home, '--listen', `tcp://${nsIp}:0`, '--allow-public'],
    { env: box.env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stderr!.on('data', (x) => (err += x));
  const tcp = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`daemon in ${ns} not ready within 20 s:\n${out}\n${err}`)), 20_000);
    child.stdout!.on('data', (x) => {
      out += x;
      const m = /^ralph daemon: listening on .*(tcp:\/\/\S+)/m.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`daemon in ${ns} exited (${code}):\n${out}\n${err}`));
    });
  });
  return { child, tcp, log: () => err };
}

if (why) {
  test(`daemon in its own network namespace — skipped: ${why}`, () => {
    skipped(`the network-namespace test needs root and ip netns (${why})`);
  });
} else {
  test('push across a veth into a daemon in its own namespace → loop runs → status reconciles its completion', async () => {
    const laptop = makeTempHome('ralph-nl');
    const box = makeTempHome('ralph-nb');
    let daemon: Awaited<ReturnType<typeof startDaemonInNamespace>> | undefined;
    try {
      setUpNamespace();
      daemon = await startDaemonInNamespace(box);
      assert.match(daemon.tcp, new RegExp(`^tcp://${nsIp.replace(/\./g, '\\.')}:\\d+$`));

      // git finds the helper on PATH, as it would after `npm install -g`
      const bin = join(laptop.home, 'bin');
      mkdirSync(bin);
      symlinkSync(join(ROOT, 'dist', 'cli', 'git-remote-ralph.js'), join(bin, 'git-remote-ralph'));
      const env = { ...laptop.env, PATH: `${bin}:${process.env.PATH}` };
      const work = join(laptop.home, 'app');
      const git = (args: string[]) => {
        const r = spawnSync('git', args, { cwd: work, env, encoding: 'utf8', timeout: 60_000 });
        return { code: r.status, stdout: r.stdout, stderr: r.stderr };
      };
      mkdirSync(work);
      writeFileSync(join(work, 'prd.json'), JSON.stringify({ project: 'app', userStories: [{ id: 'US-001', title: 'one', passes: false }] }));
      assert.is(git(['init', '-q', '-b', 'main']).code, 0);
      assert.is(git(['add', '.']).code, 0);
      assert.is(git(['commit', '-qm', 'task']).code, 0);

      // Without the daemon's token the port is closed to us; with a copy of it, open.
      const stranger = await ralph(['remote', 'add', 'far', '--address', daemon.tcp], { env, cwd: work });
      assert.is(stranger.code, 1);
      assert.match(stranger.stderr, new RegExp(`the daemon refused: this daemon's tcp port needs its token: copy ${join(box.home, 'daemon.token')} from the box`));
      const add = await ralph(['remote', 'add', 'far', '--address', daemon.tcp, '--token-file', join(box.home, 'daemon.token')], { env, cwd: work });
      assert.is(add.code, 0, add.stderr);

      const push = git(['push', '-o', `ralph.agent-cmd=${AGENT}`, '-o', 'ralph.iterations=3', 'ralph-remote', 'main:feature']);
      assert.is(push.code, 0, `${push.stderr}\ndaemon log:\n${daemon.log()}`);
      const m = /remote: ralph: started loop (\S+) \(custom, 3 iterations\)/.exec(push.stderr);
      assert.ok(m, push.stderr);
      const id = m![1]!;

      const store = new LoopStore(openDb(join(laptop.home, 'ralph.db')));
      try {
        const row = store.findRemote('far', id);
        assert.ok(row, 'the push recorded the loop on the laptop');
        assert.is(row!.location, 'remote');
        assert.is(row!.branch, 'feature');
      } finally {
        store.db.close();
      }

      // status dials across the veth until the loop has completed over there
      const final = await waitUntil(
        async () => {
          const s = await ralph(['status', '--json'], { env });
          assert.is(s.code, 0, s.stderr);
          const e = (JSON.parse(s.stdout) as Array<{ id: string; status: string; reason: string | null }>).find((x) => x.id === id);
          return e && e.status !== 'running' && e.status !== 'starting' ? e : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 200, what: `loop ${id} to finish across the namespace` },
      );
      assert.is(final.status, 'completed', JSON.stringify(final));
    } finally {
      if (daemon) {
        const child = daemon.child;
        child.kill('SIGTERM');
        const hard = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited(child);
        clearTimeout(hard);
      }
      killRunners(box.home);
      deleteNamespace();
      laptop.cleanup();
      box.cleanup();
    }
    assert.not.ok(ip(['netns', 'exec', ns, 'true']).ok, 'the namespace is gone');
  });
}

test.run();
