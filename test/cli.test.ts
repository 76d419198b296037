// The CLI as a user drives it: ralph run / status / stop / logs over real runners and the fixture
// agent in temp git repos, and the one-line errors for bad input.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { openDb } from '../store/db.js';
import { LoopStore } from '../store/loops.js';
import { CliWorld } from './helpers/cli.js';
import { alive, RALPH_BIN, ROOT, waitUntil, type RunResult } from './helpers/env.js';
import { fixtureAgentCmd } from './helpers/loop.js';

const JSON_KEYS = [
  'id',
  'name',
  'location',
  'remote',
  'zitiService',
  'status',
  'iteration',
  'maxIterations',
  'agent',
  'branch',
  'dir',
  'pid',
  'startedAt',
  'endedAt',
  'reason',
  'pausedUntil',
  'resumedFrom',
  'usage',
];

/** Slow iterations (each: one story, then SLOW_COUNT lines SLOW_MS apart) so a test can act mid-loop. */
const SLOW_ENV = { FIXTURE_SLOW_MS: '100', FIXTURE_SLOW_COUNT: '15' };

function assertOneLineError(r: RunResult, pattern: RegExp): void {
  assert.is.not(r.code, 0, `expected a failure, got exit 0: ${r.stdout}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.is(lines.length, 1, `expected one line on stderr, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^ralph: /);
  assert.match(lines[0]!, pattern);
  assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
  assert.is(r.stdout, '');
}

test('ralph run starts a loop: the id alone on stdout, status shows it, it completes after one iteration per story', async () => {
  const w = new CliWorld();
  try {
    const repo = w.repo({ stories: 3 });
    const r = await w.ralph(['run', repo.dir, '--agent-cmd', fixtureAgentCmd('work')]);
    assert.is(r.code, 0, r.stderr);
    const id = r.stdout.trim();
    assert.match(id, /^[a-z0-9-]+-[0-9a-f]{4}$/);
    assert.is(r.stdout, `${id}\n`, 'only the id on stdout');
    assert.match(r.stderr, new RegExp(`ralph attach ${id}`));

    const table = await w.ralph(['status']);
    assert.is(table.code, 0, table.stderr);
    const [header, line] = table.stdout.split('\n');
    assert.match(header!, /^ID\s+LOCATION\s+STATUS\s+ITER\s+AGENT\s+COST\s+BRANCH\/DIR\s+AGE\s+REASON$/);
    assert.match(line!, new RegExp(`^${id}\\s+local\\s+(starting|running|completed)\\s+\\d+/10\\s+custom\\s+\\S+\\s+\\d+s`));

    const done = await w.waitForLoop(id, 'completed', (e) => e.status === 'completed');
    assert.is(done.iteration, 3);
    assert.is(done.maxIterations, 10);
    assert.ok(repo.readPrd().userStories.every((s) => s.passes));
    const after = await w.ralph(['status']);
    assert.match(after.stdout, new RegExp(`${id}\\s+local\\s+completed\\s+3/10\\s+custom`));
  } finally {
    await w.cleanup();
  }
});

test('a runner killed with SIGKILL: ralph status itself marks the loop failed, "runner exited unexpectedly"', async () => {
  const w = new CliWorld();
  try {
    const id = await w.startLoop({ steps: 'slow', env: { FIXTURE_SLOW_COUNT: '600' } });
    const running = await w.waitForLoop(id, 'running', (e) => e.status === 'running');
    process.kill(running.pid!, 'SIGKILL');
    await waitUntil(() => !alive(running.pid!), { what: 'the runner to die' });
    const e = await w.entry(id);
    assert.is(e.status, 'failed');
    assert.is(e.reason, 'runner exited unexpectedly');
    assert.ok(e.endedAt);
    const table = await w.ralph(['status']);
    assert.match(table.stdout, new RegExp(`${id}\\s+local\\s+failed\\s.*runner exited unexpectedly`));
  } finally {
    await w.cleanup();
  }
});

test('a runner pid that now names another process (reused after a reboot): ralph status marks the loop failed instead of running for good', async () => {
  const w = new CliWorld();
  const other = spawn('sleep', ['600'], { stdio: 'ignore' });
  const db = openDb(join(w.home.home, 'ralph.db'));
  try {
    await once(other, 'spawn');
    const repo = w.repo();
    new LoopStore(db).insert({
      id: 'reused-0000',
      name: 'reused-0000',
      location: 'local',
      workDir: repo.dir,
      agent: 'custom',
      maxIterations: 3,
      status: 'running',
      pid: other.pid!,
    });
    const e = await w.entry('reused-0000');
    assert.is(e.status, 'failed');
    assert.is(e.reason, 'runner exited unexpectedly');
    assert.ok(alive(other.pid!), 'the other process is left alone');
  } finally {
    other.kill('SIGKILL');
    db.close();
    await w.cleanup();
  }
});

test('two loops at once each complete with their own iteration count; --json has the documented keys, newest first', async () => {
  const w = new CliWorld();
  try {
    const empty = await w.ralph(['status', '--json']);
    assert.is(empty.code, 0);
    assert.equal(JSON.parse(empty.stdout), []);
    const a = await w.startLoop({ stories: 2 });
    const b = await w.startLoop({ stories: 4 });
    const [ea, eb] = await Promise.all([
      w.waitForLoop(a, 'completed', (e) => e.status === 'completed'),
      w.waitForLoop(b, 'completed', (e) => e.status === 'completed'),
    ]);
    assert.is(ea.iteration, 2);
    assert.is(eb.iteration, 4);
    assert.is.not(ea.dir, eb.dir);
    const entries = await w.status();
    assert.equal(
      entries.map((e) => e.id),
      [b, a],
    );
    for (const e of entries) {
      assert.equal(Object.keys(e), JSON_KEYS);
      assert.is(e.location, 'local');
      assert.is(e.remote, null);
      assert.is(e.agent, 'custom');
      // A custom command reports no tokens or cost: unknown, not zero.
      assert.equal(e.usage, { inputTokens: null, outputTokens: null, cacheReadTokens: null, cacheWriteTokens: null, costUsd: null });
      assert.is(typeof e.pid, 'number');
      assert.ok(!Number.isNaN(Date.parse(e.startedAt)));
      assert.ok(!Number.isNaN(Date.parse(e.endedAt!)));
    }
  } finally {
    await w.cleanup();
  }
});

test('ralph stop ends a loop now (stopped); stopping it again says so and exits 0', async () => {
  const w = new CliWorld();
  try {
    const id = await w.startLoop({ steps: 'slow', env: { FIXTURE_SLOW_COUNT: '600' } });
    await w.waitForLoop(id, 'running', (e) => e.status === 'running');
    const r = await w.ralph(['stop', id]);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`loop ${id} stopped`));
    const e = await w.entry(id);
    assert.is(e.status, 'stopped');
    const again = await w.ralph(['stop', id]);
    assert.is(again.code, 0);
    assert.match(again.stderr, new RegExp(`^ralph: nothing to stop: loop ${id} stopped`));
  } finally {
    await w.cleanup();
  }
});

test('ralph stop --after-iteration lets the current iteration finish, then the loop is stopped', async () => {
  const w = new CliWorld();
  try {
    const id = await w.startLoop({ steps: 'work,slow', stories: 5, env: SLOW_ENV });
    await w.waitForLoop(id, 'in iteration 1', (e) => e.status === 'running' && e.iteration === 1);
    const r = await w.ralph(['stop', id, '--after-iteration']);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`loop ${id} will stop when iteration \\d+ ends`));
    const e = await w.waitForLoop(id, 'stopped', (x) => x.status === 'stopped');
    assert.ok(e.iteration >= 1 && e.iteration < 5, `stopped in iteration ${e.iteration}`);
    // The iteration it was in ran to its end: the log has all its slow lines.
    assert.match(w.log(id), new RegExp(`slow line ${SLOW_ENV.FIXTURE_SLOW_COUNT}\\b`));
  } finally {
    await w.cleanup();
  }
});

test('ralph logs prints the whole log; logs -f follows to the end with nothing lost or doubled', async () => {
  const w = new CliWorld();
  try {
    const id = await w.startLoop({ steps: 'work,slow', stories: 2, env: { FIXTURE_SLOW_MS: '20', FIXTURE_SLOW_COUNT: '20' } });
    const follow = await w.ralph(['logs', id, '-f']);
    assert.is(follow.code, 0, follow.stderr);
    assert.match(follow.stderr, new RegExp(`^ralph: loop ${id} completed`));
    const log = w.log(id);
    assert.match(log, /<promise>COMPLETE<\/promise>/);
    // Into a pipe: the text without the terminal's escape sequences, lines ending in LF.
    const text = log.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '').replace(/\r\n/g, '\n');
    assert.not.match(text, /[\x1b\r]/, 'the fixture writes only SGR colours and CRLF line ends');
    assert.is(follow.stdout, text, 'logs -f printed exactly the log, as text');

    const plain = await w.ralph(['logs', id]);
    assert.is(plain.code, 0, plain.stderr);
    assert.is(plain.stdout, text);
    const raw = await w.ralph(['logs', id, '--raw']);
    assert.is(raw.stdout, log, '--raw: byte for byte');
    const rawFollow = await w.ralph(['logs', id, '-f', '--raw']);
    assert.is(rawFollow.stdout, log);
  } finally {
    await w.cleanup();
  }
});

test('bad input: one line on stderr, non-zero exit, no stack trace, no row written', async () => {
  const w = new CliWorld();
  try {
    assertOneLineError(await w.ralph(['attach', 'nope']), /^ralph: no loop "nope" \(see ralph status\)$/);
    assertOneLineError(await w.ralph(['stop', 'nope']), /no loop "nope"/);
    assertOneLineError(await w.ralph(['logs', 'nope']), /no loop "nope"/);

    const missing = w.repo({ git: false });
    rmSync(missing.prdPath);
    assertOneLineError(await w.ralph(['run', missing.dir, '--agent-cmd', 'true']), /prd\.json/);
    const malformed = w.repo({ git: false });
    writeFileSync(malformed.prdPath, '{ "userStories": [ oops');
    assertOneLineError(await w.ralph(['run', malformed.dir, '--agent-cmd', 'true']), /prd\.json/);
    assertOneLineError(await w.ralph(['run', join(missing.dir, 'no-such-dir'), '--agent-cmd', 'true']), /not a directory/);

    const ok = w.repo({ git: false });
    // A PATH with no agent CLI on it: node's own directory and the system's.
    const path = `${dirname(process.execPath)}:/usr/bin:/bin`;
    assertOneLineError(await w.ralph(['run', ok.dir, '--agent', 'claude'], { env: { PATH: path, IS_SANDBOX: '1' } }), /`claude` not found on PATH/);
    if (process.getuid?.() === 0) {
      // As root, Claude Code's own rule comes first (ralph never sets IS_SANDBOX for the user).
      assertOneLineError(await w.ralph(['run', ok.dir, '--agent', 'claude'], { env: { PATH: path, IS_SANDBOX: '' } }), /as root.*non-root user.*export IS_SANDBOX=1/);
    }
    assertOneLineError(await w.ralph(['run', ok.dir, '--agent', 'gpt-nine']), /unknown agent "gpt-nine"/);
    // Names are checked before --install-agent looks for a package to install.
    assertOneLineError(await w.ralph(['run', ok.dir, '--agent', 'clade', '--install-agent']), /^ralph: --agent: unknown agent "clade"; use one of claude, opencode, codex, amp or --agent-cmd$/);
    assertOneLineError(await w.ralph(['run', ok.dir, '--agent-cmd', 'true', '--fallback-agent', 'constructor', '--install-agent']), /^ralph: --fallback-agent: unknown agent "constructor"; use one of claude, opencode, codex, amp$/);
    assertOneLineError(await w.ralph(['run', ok.dir, '--agent-cmd', 'true', '--max-iterations', '0']), /--max-iterations/);
    // One bound for run, resume, extend and push options, said the same way by each.
    assertOneLineError(await w.ralph(['run', ok.dir, '--agent-cmd', 'true', '--max-iterations', '200000']), /^ralph: --max-iterations must be a whole number from 1 to 100000, got "200000"$/);
    assertOneLineError(await w.ralph(['extend', 'any', '200000']), /^ralph: <n> must be a whole number from 1 to 100000, got "200000"$/);
    // The same range as push options and the daemon: a timeout the runner could not keep is refused here.
    assertOneLineError(await w.ralph(['run', ok.dir, '--agent-cmd', 'true', '--iteration-timeout', '2w']), /^ralph: --iteration-timeout must be a duration from 1s to 7d, such as 90s, 45m, 2h or 1d, got "2w"$/);
    assertOneLineError(await w.ralph(['run', ok.dir, '--agent-cmd', 'true', '--stall-timeout', 'soon']), /^ralph: --stall-timeout must be a duration from 1s to 7d/);

    assert.equal(await w.status(), [], 'no row was written');
  } finally {
    await w.cleanup();
  }
});

test('a loop is named by its id, its name or a unique start of its id; an empty argument names none, a start of several ids says so', async () => {
  const w = new CliWorld();
  try {
    const once = ['--max-iterations', '1'];
    const a = await w.startLoop({ steps: 'noop', stories: 1, args: [...once, '--name', 'alpha-one'] });
    await w.waitForLoop(a, 'failed', (e) => e.status === 'failed');
    // An unset "$ID" in a script (`ralph resume "$ID"`): '' starts every id, yet it names no loop,
    // not even the only one there is.
    for (const args of [['resume', ''], ['stop', ''], ['extend', '', '1'], ['logs', '']]) {
      assertOneLineError(await w.ralph(args), /^ralph: no loop "" \(see ralph status\)$/);
    }
    assert.equal((await w.status()).map((e) => e.id), [a], 'nothing was resumed');

    const b = await w.startLoop({ steps: 'noop', stories: 1, args: [...once, '--name', 'alpha-two'] });
    await w.waitForLoop(b, 'failed', (e) => e.status === 'failed');
    assertOneLineError(await w.ralph(['resume', 'alpha']), new RegExp(`^ralph: "alpha" could be several loops \\(${b}, ${a}\\); give more of the id$`));
    assert.equal((await w.status()).map((e) => e.id), [b, a], 'nothing was resumed');
    const unique = await w.ralph(['logs', a.slice(0, -2)]);
    assert.is(unique.code, 0, unique.stderr);
    assert.match(unique.stdout, /iteration 1\/1/, 'a unique start of an id names its loop');
  } finally {
    await w.cleanup();
  }
});

test('ralph start outside a git repository asks for --repo; where git cannot run at all, it says that instead', async () => {
  const w = new CliWorld();
  try {
    writeFileSync(w.env.RALPH_CONFIG!, JSON.stringify({ remotes: { box: { address: 'tcp://127.0.0.1:9', token: 'f'.repeat(64) } } }));
    const notRepo = w.home.home; // a temporary directory, in no repository
    assertOneLineError(await w.ralph(['start', '--remote', 'box', '--branch', 'main'], { cwd: notRepo }), /^ralph: which repo on box\? give --repo NAME/);
    const noGit = await w.ralph(['start', '--remote', 'box', '--branch', 'main'], { cwd: notRepo, env: { PATH: join(notRepo, 'no-such-dir') } });
    assertOneLineError(noGit, /^ralph: cannot find the git repository around .+: cannot run git \(ENOENT\); is git installed and on PATH\?$/);
  } finally {
    await w.cleanup();
  }
});

test('ralph run --foreground: output on stdout, exit 0 when completed, 1 otherwise', async () => {
  const w = new CliWorld();
  try {
    const repo = w.repo({ stories: 2 });
    const ok = await w.ralph(['run', repo.dir, '--foreground', '--agent-cmd', fixtureAgentCmd('work')]);
    assert.is(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /<promise>COMPLETE<\/promise>/);
    assert.match(ok.stderr, /ralph: loop \S+ completed \(iteration 2\)/, ok.stderr);
    const failing = await w.ralph(['run', w.repo({ stories: 2 }).dir, '--foreground', '--max-iterations', '2', '--agent-cmd', fixtureAgentCmd('noop')]);
    assert.is(failing.code, 1, failing.stderr);
    assert.match(failing.stderr, /ralph: loop \S+ failed \(iteration 2\)/, failing.stderr);
    const entries = await w.status();
    assert.equal(
      entries.map((e) => e.status),
      ['failed', 'completed'],
    );
  } finally {
    await w.cleanup();
  }
});

test('ralph run --foreground | head: once its reader is gone the loop stops, on record, and the exit code says so', async () => {
  const w = new CliWorld();
  try {
    const repo = w.repo({ stories: 2 });
    const child = spawn(process.execPath, [RALPH_BIN, 'run', repo.dir, '--foreground', '--agent-cmd', fixtureAgentCmd('slow')], {
      env: { ...w.env, FIXTURE_SLOW_MS: '50', FIXTURE_SLOW_COUNT: '600' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const exited = once(child, 'exit');
    // Read until the agent is at work, then close the reading end, as `head -2` does.
    let seen = '';
    for await (const chunk of child.stdout) {
      seen += chunk;
      if (seen.includes('slow line 1')) break; // leaving the loop destroys the stream: the pipe is closed
    }
    const [code] = await exited;
    assert.is(code, 1, `exit code (stderr: ${stderr})`);
    const [e] = await w.status();
    assert.is(e!.status, 'stopped', 'the loop was stopped, not left to "runner exited unexpectedly"');
    assert.match(e!.reason ?? '', /output could not be written \(EPIPE/);
    assert.match(stderr, /ralph: loop \S+ stopped \(iteration 1\): its output could not be written/);
  } finally {
    await w.cleanup();
  }
});

test('ralph status shows a remote loop under its remote, marked (unreachable) when its daemon cannot be reached', async () => {
  const w = new CliWorld();
  const db = openDb(join(w.home.home, 'ralph.db'));
  try {
    // The remote "box" is not even configured: no daemon can answer for it.
    new LoopStore(db).insert({
      id: 'feature-1a2b',
      name: 'feature-1a2b',
      location: 'remote',
      remote: 'box',
      remoteLoopId: 'feature-1a2b',
      branch: 'ralph/feature-1a2b',
      workDir: '/srv/ralph/worktrees/feature-1a2b',
      agent: 'claude',
      maxIterations: 10,
      status: 'running',
      iteration: 2,
    });
    const r = await w.ralph(['status', '--timeout', '1000']);
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, /^feature-1a2b\s+box \(unreachable\)\s+running\s+2\/10\s+claude\s+ralph\/feature-1a2b\s/m);
    const [entry] = await w.status();
    assert.is(entry!.location, 'remote');
    assert.is(entry!.remote, 'box');
    assert.is(entry!.status, 'running', 'an unreachable daemon leaves the last known state');
  } finally {
    db.close();
    await w.cleanup();
  }
});

test('ralph status loads no heavy module: its static imports reach neither node-pty, @xterm, execa nor simple-git', () => {
  const heavy = /^(node-pty|@xterm\/|execa|simple-git)/;
  const seen = new Set<string>();
  const reached: string[] = [];
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const text = readFileSync(file, 'utf8');
    // Static imports only: `import ... from 'x'` and `export ... from 'x'` (dynamic import() is lazy by design).
    for (const m of text.matchAll(/^(?:import|export)\s[^;]*?from\s+'([^']+)'/gm)) {
      const spec = m[1]!;
      if (spec.startsWith('.')) visit(resolve(dirname(file), spec));
      else reached.push(spec);
    }
  };
  visit(join(ROOT, 'dist', 'cli', 'ralph.js'));
  visit(join(ROOT, 'dist', 'cli', 'commands', 'status.js'));
  assert.ok(seen.size > 3, 'followed the imports');
  assert.equal(
    reached.filter((spec) => heavy.test(spec)),
    [],
  );
});

test.run();
