// `npm run demo` / `ralph demo` end to end, as a new user runs it: exit 0, the key lines of every step
// (the push's remote: line, a remote loop shown running, its live output, completion, the agent's
// three commits fetched back), and nothing left behind — no directory, no process. Also: Ctrl-C in
// the middle of the loop ends and removes everything, exit 130; and the OpenZiti variant when a ziti
// CLI is here (skipped with one line otherwise, a failure with RALPH_REQUIRE_ZITI=1).

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { ROOT, RALPH_BIN, exited, makeTempHome, runCommand, waitUntil, skipped, type RunResult } from './helpers/env.js';
import { findZiti } from './helpers/ziti-network.js';

// The demo makes its own homes; this one only keeps the user's config and data out of the way.
const t = makeTempHome('ralph-demo-test');
const env = { ...t.env, NO_COLOR: '1' };

test.after(() => t.cleanup());

/** Live processes whose command line or environment mentions `dir`. */
function processesUsing(dir: string): string[] {
  const found: string[] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
      const environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue;
      if (cmdline.includes(dir) || environ.includes(dir)) found.push(`${pid} ${cmdline.trim()}`);
    } catch {
      /* gone, or not readable */
    }
  }
  return found;
}

const workDir = (out: string): string => {
  const dir = /^Working in (\/\S+);/m.exec(out)?.[1];
  assert.ok(dir, `the demo names its directory:\n${out}`);
  return dir!;
};

async function assertNothingLeft(dir: string): Promise<void> {
  assert.not.ok(existsSync(dir), `${dir} is removed`);
  await waitUntil(() => processesUsing(dir).length === 0, { timeoutMs: 5000, what: `no process using ${dir}` }).catch(() => {
    assert.equal(processesUsing(dir), [], 'no process the demo started is left');
  });
}

/** The key lines every successful run prints, in order. */
function assertStory(r: RunResult, transport: 'tcp' | 'OpenZiti'): void {
  const out = r.stdout;
  assert.is(r.code, 0, `${out}\n${r.stderr}`);
  const id = /^ {4}remote: ralph: started loop (\S+) \(custom, 10 iterations\) — ralph attach \1$/m.exec(out)?.[1];
  assert.ok(id, `the push's remote: line:\n${out}`);
  const order = [
    /^\[1\/7\] A project to work on/m,
    transport === 'tcp' ? /^ {2}\$ ralph daemon --listen tcp:\/\/127\.0\.0\.1:0$/m : /^ {2}\$ ralph daemon --ziti-service ralph-demo --ziti-identity \S+\/daemon\.json --ziti-host-port \d+$/m,
    /^ {4}ralph daemon: listening on unix:\S+\/box\/daemon\.sock (tcp|ziti):/m,
    transport === 'tcp' ? /^ {2}\$ ralph remote add box --address tcp:\/\/127\.0\.0\.1:\d+ --token-file \/\S+\/box\/daemon\.token$/m : /^ {2}\$ ralph remote add box --ziti-service ralph-demo --ziti-identity \/\S+\/client\.json$/m,
    transport === 'tcp' ? /^ {4}added remote box \(tcp:\/\/127\.0\.0\.1:\d+\): daemon on /m : /^ {4}added remote box \(ziti:ralph-demo\): daemon on /m,
    /^ {2}\$ git push -o 'ralph\.agent-cmd=demo-agent think,work' ralph-remote feature$/m,
    new RegExp(`^ {4}remote: ralph: started loop ${id} `, 'm'),
    new RegExp(`^ {4}${id} +box +(starting|running) +`, 'm'),
    /^ {4}\[ralph\] iteration 1\/10 — US-001: Say hello$/m,
    /^ {6}… editing files$/m,
    /^ {4}\[ralph\] loop completed: all 3 stories pass after 3 iterations$/m,
    new RegExp(`^ {4}${id} +box +completed +3/10 `, 'm'),
    new RegExp(`^ {4} \\* \\[new branch\\] +ralph/${id} -> ralph-remote/ralph/${id}$`, 'm'),
    /^ {4}[0-9a-f]{7,} feat: US-003 - Say goodbye\n {4}[0-9a-f]{7,} feat: US-002 - Greet by name\n {4}[0-9a-f]{7,} feat: US-001 - Say hello$/m,
    new RegExp(`over ${transport}`),
    /^What to type next$/m,
    /^ {2}npm link /m,
    /^Demo done in \d+ s\. Cleaning up:$/m,
    /^ {2}stopped the daemon$/m,
    /^ {2}removed \/\S+ralph-demo-\S+$/m,
  ];
  let at = 0;
  for (const re of order) {
    const m = re.exec(out.slice(at));
    assert.ok(m, `expected ${re} after position ${at}:\n${out}`);
    at += m!.index + m![0].length;
  }
}

test('npm run demo (tcp): the whole mission, narrated, exit 0, nothing left behind', async () => {
  const started = Date.now();
  const r = await runCommand('npm', ['run', '--silent', 'demo', '--', '--transport', 'tcp'], { env, cwd: ROOT, timeoutMs: 120_000 });
  assertStory(r, 'tcp');
  assert.is(r.stderr, '', 'nothing on stderr');
  await assertNothingLeft(workDir(r.stdout));
  console.log(`  (tcp demo: ${((Date.now() - started) / 1000).toFixed(1)} s)`);
});

test('Ctrl-C while the loop runs: the demo ends the loop, the daemon and everything else, removes its directory, exit 130', async () => {
  // As a terminal does: SIGINT to the demo's whole process group.
  const child = spawn(process.execPath, [RALPH_BIN, 'demo', '--transport', 'tcp'], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const sawLoop = new Promise<void>((resolve) =>
    child.stdout.on('data', (d) => {
      out += d;
      if (/\[ralph\] iteration 1\/10/.test(out)) resolve();
    }),
  );
  await Promise.race([sawLoop, exited(child).then(() => assert.unreachable(`the demo ended before its loop ran:\n${out}\n${err}`))]);
  const dir = workDir(out);
  const runnerBefore = processesUsing(dir).filter((p) => p.includes('loop/main.js'));
  assert.is(runnerBefore.length, 1, `a runner is running:\n${processesUsing(dir).join('\n')}`);
  process.kill(-child.pid!, 'SIGINT');
  const end = await exited(child);
  assert.is(end.code, 130, `${out}\n${err}`);
  assert.match(err, /^ralph demo: interrupted; cleaning up$/m);
  assert.match(out, /^ {2}removed \/\S+ralph-demo-\S+$/m);
  await assertNothingLeft(dir);
});

test('over a throwaway OpenZiti network when a ziti CLI is here', async () => {
  const found = findZiti();
  if ('skip' in found) {
    return skipped(found.skip);
  }
  const started = Date.now();
  const r = await runCommand(process.execPath, [RALPH_BIN, 'demo', '--transport', 'ziti'], { env: { ...env, RALPH_ZITI_BIN: found.bin }, timeoutMs: 240_000 });
  assertStory(r, 'OpenZiti');
  assert.match(r.stdout, /^\[2\/7\] A throwaway OpenZiti network: a controller and an edge router on 127\.0\.0\.1$/m);
  assert.match(r.stdout, /^ {2}stopped the OpenZiti controller and edge router$/m);
  await assertNothingLeft(workDir(r.stdout));
  console.log(`  (OpenZiti demo: ${((Date.now() - started) / 1000).toFixed(1)} s)`);
});

test.run();
