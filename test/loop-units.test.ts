// The loop's pure parts: prd.json, finding the task, agent lookup, the completion detector, the
// output history, prepareLoop's validation (nothing written when a request is bad), runner liveness.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RUNNER_GONE_REASON, whyRunnerGone } from '../client/liveness.js';
import { agentNotFoundMessage, agentPreflight, AGENT_PROFILES, findExecutable } from '../agents/registry.js';
import { CompletionDetector } from '../loop/completion.js';
import { EscapeStripper } from '../loop/escapes.js';
import { OutputHistory } from '../loop/history.js';
import { allPass, nextStory, parsePrd } from '../loop/prd.js';
import { LoopSetupError, prepareLoop, slugify } from '../loop/prepare.js';
import { fillPlaceholders, renderPrompt } from '../loop/prompt.js';
import { prepareResumedLoop, resumeRefusal } from '../loop/resume.js';
import { MAX_RESET_WAIT_MS, rateLimitUntil, timerDelay } from '../loop/runner.js';
import { fittingScreen, makeXterm, MAX_SCREEN_JSON_BYTES, ScreenMirror } from '../loop/screen.js';
import { findTaskDir, taskFiles } from '../loop/task.js';
import { completePrefixLength } from '../loop/utf8.js';
import { openDb } from '../store/db.js';
import { LoopStore } from '../store/loops.js';
import { homePaths } from '../store/paths.js';
import { isRunnerCommand, processAlive, runnerAlive } from '../store/process.js';
import { makeTempHome } from './helpers/env.js';
import { makeTaskRepo, storiesPrd } from './helpers/task.js';
import { standInRunner } from './helpers/loop.js';

function tempDir(): { dir: string; cleanup(): void } {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'ralph-unit-')));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

function setupError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.instance(err, LoopSetupError, String(err));
    assert.not.match((err as Error).message, /\n/, 'one line');
    return (err as Error).message;
  }
  assert.unreachable('expected a LoopSetupError');
  return '';
}

test('prd.json: parsed with defaults, unknown fields ignored, next story by priority then order', () => {
  const prd = parsePrd(
    JSON.stringify({
      name: 'Proj',
      branchName: 'ralph/x',
      extra: { anything: true },
      userStories: [
        { id: 'A', title: 'a', priority: 2, passes: false, acceptanceCriteria: ['one', { description: 'two', passes: true }] },
        { id: 'B', title: 'b', priority: 1, passes: true },
        { id: 'C', title: 'c', priority: 2, passes: false },
        { id: 'D', passes: false },
      ],
    }),
    '/x/prd.json',
  );
  assert.is(prd.project, 'Proj');
  assert.equal(prd.userStories[0]!.acceptanceCriteria, ['one', 'two']);
  assert.is(prd.userStories[3]!.title, 'D');
  assert.is(nextStory(prd)?.id, 'A');
  assert.not.ok(allPass(prd));
  for (const s of prd.userStories) s.passes = true;
  assert.ok(allPass(prd));
  assert.is(nextStory(prd), undefined);
});

test('prd.json: errors name the file and the field', () => {
  const msg = (v: unknown) => setupError(() => parsePrd(typeof v === 'string' ? v : JSON.stringify(v), '/t/prd.json'));
  assert.match(msg('{nope'), /^prd\.json at \/t\/prd\.json: not valid JSON/);
  assert.match(msg([]), /must be a JSON object/);
  assert.match(msg({ userStories: 'x' }), /userStories must be an array/);
  assert.match(msg({ userStories: [] }), /userStories is empty/);
  assert.is(msg({ userStories: [{ id: 'a' }, { id: 'b' }, { id: 7 }] }), 'prd.json at /t/prd.json: userStories[2].id must be a string');
  assert.match(msg({ userStories: [{ id: 'a', passes: 'yes' }] }), /userStories\[0\]\.passes must be true or false/);
  assert.match(msg({ userStories: [{ id: 'a', priority: 'high' }] }), /userStories\[0\]\.priority must be a number/);
  assert.match(msg({ userStories: [{ id: 'a' }, { id: 'a' }] }), /userStories\[1\]\.id "a" is used by an earlier story/);
  assert.match(msg({ userStories: [{ id: 'a', acceptanceCriteria: [3] }] }), /acceptanceCriteria\[0\]/);
});

test('task dir: --task, else DIR, else the one tasks/*/, with clear errors', () => {
  const t = tempDir();
  try {
    const msg = setupError(() => findTaskDir(t.dir));
    assert.match(msg, /no prd\.json in .* nor in .*tasks\/\*\/; write a prd\.json there .* or pass --task DIR/);
    mkdirSync(join(t.dir, 'tasks', 'one'), { recursive: true });
    writeFileSync(join(t.dir, 'tasks', 'one', 'prd.json'), '{}');
    assert.is(findTaskDir(t.dir), join(t.dir, 'tasks', 'one'));
    mkdirSync(join(t.dir, 'tasks', 'two'), { recursive: true });
    writeFileSync(join(t.dir, 'tasks', 'two', 'prd.json'), '{}');
    assert.match(setupError(() => findTaskDir(t.dir)), /several tasks in .*\(one, two\); pick one with --task/);
    assert.is(findTaskDir(t.dir, 'tasks/two'), join(t.dir, 'tasks', 'two'));
    assert.is(findTaskDir(t.dir, 'tasks/two/prd.json'), join(t.dir, 'tasks', 'two'));
    assert.match(setupError(() => findTaskDir(t.dir, 'nowhere')), /task .*nowhere does not exist/);
    assert.match(setupError(() => findTaskDir(t.dir, 'tasks')), /no prd\.json in .*tasks; write one there/);
    writeFileSync(join(t.dir, 'prd.json'), '{}');
    assert.is(findTaskDir(t.dir), t.dir, 'DIR itself wins over tasks/');
  } finally {
    t.cleanup();
  }
});

test('agents: found on PATH or in extra dirs; a missing one gets the install hint', () => {
  const t = tempDir();
  try {
    const bin = join(t.dir, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'claude'), '#!/bin/sh\n');
    chmodSync(join(bin, 'claude'), 0o755);
    writeFileSync(join(bin, 'codex'), 'not executable');
    const env = { PATH: '/nonexistent' };
    assert.is(findExecutable('claude', [], env), null);
    assert.is(findExecutable('claude', [bin], env), join(bin, 'claude'));
    assert.is(findExecutable('codex', [bin], env), null, 'not executable');
    assert.is(findExecutable('sh', [], { PATH: '/bin:/usr/bin' })?.endsWith('/sh'), true);
    assert.is(
      agentNotFoundMessage(AGENT_PROFILES.claude, ['/home/u/.local/share/ralph/agents/node_modules/.bin']),
      'agent CLI `claude` not found on PATH or /home/u/.local/share/ralph/agents/node_modules/.bin; install it (npm i -g @anthropic-ai/claude-code), or let ralph install it (ralph run --install-agent), or pass --agent-cmd',
    );
    const claude = AGENT_PROFILES.claude.launch('P');
    assert.is(claude.mode, 'stream', 'claude speaks stream-json');
    assert.ok(claude.args.includes('--dangerously-skip-permissions'));
    assert.not.ok(claude.args.includes('P'), 'the prompt goes on stdin, not in argv');
    for (const name of ['opencode', 'codex', 'amp'] as const) {
      const launch = AGENT_PROFILES[name].launch('P');
      assert.is(launch.mode, 'stream', `${name} speaks JSON lines`);
      assert.not.ok(launch.args.includes('P'), `${name}: the prompt goes on stdin, not in argv`);
    }
    assert.is(AGENT_PROFILES.amp.npmPackage, '@ampcode/cli');
    assert.match(agentPreflight('claude', {}, 0) ?? '', /as root/);
    assert.is(agentPreflight('claude', { IS_SANDBOX: '1' }, 0), null);
    assert.is(agentPreflight('claude', {}, 1000), null);
    assert.is(agentPreflight('opencode', {}, 0), null);
  } finally {
    t.cleanup();
  }
});

test('completion promise: case, whitespace, ANSI escapes and chunk splits; not a near miss', () => {
  const detect = (chunks: string[]) => {
    const d = new CompletionDetector();
    return chunks.some((c) => d.push(c));
  };
  assert.ok(detect(['<promise>COMPLETE</promise>']));
  assert.ok(detect(['done\r\n< Promise >\n  complete \r\n</ promise>']));
  assert.ok(detect(['\x1b[1m<prom', 'ise>\x1b[0m\x1b[3', '2mCOMP', 'LETE\x1b]0;title\x07</promise', '>']));
  const whole = 'x <promise>COMPLETE</promise> y';
  for (let i = 1; i < whole.length; i++) assert.ok(detect([whole.slice(0, i), whole.slice(i)]), `split at ${i}`);
  // The text kept between chunks (the last 2 KiB seen): after a long chunk, and after many short ones.
  assert.ok(detect(['z'.repeat(5000) + '<promise>COMP', 'LETE</', 'promise>']));
  assert.ok(detect([...Array.from({ length: 20 }, (_, i) => `line ${i} ${'w'.repeat(290)}\n`), '<prom', 'ise>COMPLETE</promise>']));
  assert.not.ok(detect(['<promise>COMPLETE', ' '.repeat(3000), '</promise>']), 'more than the 2 KiB kept between chunks apart');
  assert.not.ok(detect(['<promise>INCOMPLETE</promise>']));
  assert.not.ok(detect(['<promise>COMPLETE</promis>']));
  assert.not.ok(detect(['promise COMPLETE']));
  const d = new CompletionDetector();
  d.push('<promise>COMPLETE</promise>');
  d.reset();
  assert.not.ok(d.detected, 'reset forgets');
});

test('escape stripper: every kind of sequence out, text and tab/CR/LF in, the same however the bytes are split', () => {
  const input = Buffer.from(
    'A\tb\r\n' + // text, tab, CR LF
      '\x1b[1;31mred\x1b[0m' + // CSI with parameters
      ' é日🎉' + // multi-byte characters
      '\x1b]0;title\x07T' + // OSC ended by BEL
      '\x1b]8;;http://x\x1b\\link' + // OSC ended by ESC \
      '\x1bP1$r\x1b\\D' + // DCS
      '\x1b(BG' + // ESC, intermediate, final
      '\x1béS' + // ESC before a character: the whole character goes
      '\u009b1mC1' + // C1 CSI (C2 9B)
      '\u00a0nb' + // C2 that is text (a no-break space)
      '\x07\x08x\x7fy', // BEL and backspace out, DEL in
  );
  const expected = 'A\tb\r\nred é日🎉TlinkDGSC1\u00a0nbx\x7fy';
  const strip = (pieces: Buffer[]) => {
    const s = new EscapeStripper();
    return Buffer.concat(pieces.map((p) => Buffer.from(s.strip(p)))).toString('utf8');
  };
  assert.is(strip([input]), expected);
  for (let i = 0; i <= input.length; i++) assert.is(strip([input.subarray(0, i), input.subarray(i)]), expected, `split at ${i}`);
  assert.is(strip([...input].map((b) => Buffer.from([b]))), expected, 'a byte at a time');
});

test('output history: seq is the byte offset in the log; reads cut at character boundaries', async () => {
  const t = tempDir();
  try {
    const h = new OutputHistory(join(t.dir, 'x.log'), { ringBytes: 64 });
    const parts = ['héllo ', '✓✓✓ ', '日本語のテキスト ', 'x'.repeat(50), ' 🎉 end'];
    for (const p of parts) h.append(p);
    const log = readFileSync(join(t.dir, 'x.log'));
    assert.is(h.endSeq, log.length);
    assert.is(log.toString('utf8'), parts.join(''));
    assert.ok(h.ringStart > 0, 'old bytes fell out of the ring');
    // Read everything back in small pieces, from memory where possible and from the log otherwise.
    let seq = 0;
    let text = '';
    while (seq < h.endSeq) {
      const r = h.read(seq, 5);
      const c = r instanceof Promise ? await r : r;
      assert.is(c.seq, seq);
      assert.ok(c.bytes > 0 && c.bytes <= 5);
      assert.is(Buffer.byteLength(c.data), c.bytes);
      text += c.data;
      seq += c.bytes;
    }
    assert.is(text, parts.join(''));
    // A reader that asks for an offset inside a character is moved to the next character.
    const mid = Buffer.byteLength('h') + 1; // inside "é"
    const c = await h.readFromLog(mid, 10);
    assert.is(c.seq, mid + 1);
    assert.is(completePrefixLength(Buffer.from('ab✓').subarray(0, 4)), 2);
    h.close();
  } finally {
    t.cleanup();
  }
});

test('rate limits: a reported reset time plus slack, at most a week away; else a doubling backoff; timers never past setTimeout\'s limit', () => {
  const now = Date.UTC(2026, 11, 2, 12);
  assert.is(rateLimitUntil(now + 60_000, 0, now), now + 65_000, 'the reported reset, then 5 s');
  assert.is(rateLimitUntil(now + 400 * 86_400_000, 0, now), now + MAX_RESET_WAIT_MS, 'a reset a year away is waited for a week');
  assert.equal([0, 1, 2, 9].map((n) => rateLimitUntil(null, n, now) - now), [60_000, 120_000, 240_000, 30 * 60_000]);
  assert.is(timerDelay(now + 30 * 86_400_000, now), 2 ** 31 - 1, '30 days are slept in slices');
  assert.is(timerDelay(now + 1500, now), 1500);
  assert.is(timerDelay(now - 5, now), 0);
});

test('prompt: built-in default with the task paths filled in, or prompt.md plus a context note', () => {
  const t = tempDir();
  try {
    writeFileSync(join(t.dir, 'prd.json'), '{}');
    const ctx = { files: taskFiles(t.dir), workDir: t.dir, iteration: 2, maxIterations: 5, loopId: 'x-1234' };
    const def = renderPrompt(ctx);
    assert.ok(def.includes(join(t.dir, 'prd.json')));
    assert.ok(def.includes(join(t.dir, 'progress.txt')));
    assert.ok(def.includes('<promise>COMPLETE</promise>'));
    assert.ok(def.includes('iteration\n2 of at most 5') || def.includes('2 of at most 5'));
    assert.not.match(def, /\{\{/);
    writeFileSync(join(t.dir, 'prompt.md'), 'Do {{LOOP_ID}} now. {{UNKNOWN}}');
    const own = renderPrompt({ ...ctx, files: taskFiles(t.dir) });
    assert.match(own, /^Do x-1234 now\. \{\{UNKNOWN\}\}/);
    assert.ok(own.includes(join(t.dir, 'prd.json')));
    assert.is(fillPlaceholders('{{ITERATION}}/{{MAX_ITERATIONS}}', ctx), '2/5');
  } finally {
    t.cleanup();
  }
});

test('prepareLoop: validates first and writes nothing on a bad request; ids and names', () => {
  const home = makeTempHome('ralph-prep');
  const paths = homePaths(home.home);
  const db = openDb(paths.db);
  const store = new LoopStore(db);
  const repo = makeTaskRepo({ stories: 2, branchName: 'ralph/My Feature_Branch!' });
  const empty = tempDir();
  try {
    const count = () => store.list().length;
    assert.match(setupError(() => prepareLoop(store, paths, { dir: join(empty.dir, 'nope') })), /is not a directory/);
    assert.match(setupError(() => prepareLoop(store, paths, { dir: empty.dir })), /no prd\.json in/);
    writeFileSync(join(empty.dir, 'prd.json'), '{"userStories": [{"id": 1}]}');
    assert.match(setupError(() => prepareLoop(store, paths, { dir: empty.dir })), /userStories\[0\]\.id must be a string/);
    const savedPath = process.env.PATH;
    const savedSandbox = process.env.IS_SANDBOX;
    process.env.PATH = '/nonexistent';
    try {
      // Claude Code refuses to run unattended as root unless IS_SANDBOX=1: ralph says so first, never sets it.
      delete process.env.IS_SANDBOX;
      if (process.getuid?.() === 0) {
        assert.match(setupError(() => prepareLoop(store, paths, { dir: repo.dir })), /will not run unattended as root.*export IS_SANDBOX=1/);
      }
      process.env.IS_SANDBOX = '1';
      assert.match(setupError(() => prepareLoop(store, paths, { dir: repo.dir })), /agent CLI `claude` not found on PATH; install it/);
      assert.match(setupError(() => prepareLoop(store, paths, { dir: repo.dir, agent: 'amp' })), /`amp` not found/);
    } finally {
      process.env.PATH = savedPath;
      if (savedSandbox === undefined) delete process.env.IS_SANDBOX;
      else process.env.IS_SANDBOX = savedSandbox;
    }
    assert.match(setupError(() => prepareLoop(store, paths, { dir: repo.dir, agentCmd: 'x', maxIterations: 0 })), /--max-iterations/);
    assert.match(setupError(() => prepareLoop(store, paths, { dir: repo.dir, agentCmd: 'x', name: 'bad name' })), /--name/);
    assert.is(setupError(() => prepareLoop(store, paths, { dir: repo.dir, agentCmd: 'x', iterationTimeoutMs: 14 * 86_400_000 })), '--iteration-timeout must be from 1s to 7d, got 14d');
    assert.is(setupError(() => prepareLoop(store, paths, { dir: repo.dir, agentCmd: 'x', stallTimeoutMs: 500 })), '--stall-timeout must be from 1s to 7d, got 500 ms');
    assert.is(count(), 0, 'nothing written by bad requests');

    const row = prepareLoop(store, paths, { dir: repo.dir, agentCmd: 'true' });
    assert.match(row.id, /^my-feature-branch-[0-9a-f]{4}$/);
    assert.is(row.name, row.id);
    assert.is(row.status, 'starting');
    assert.is(row.maxIterations, 10);
    assert.is(row.agent, 'custom');
    assert.is(row.taskDir, repo.dir);
    assert.is(row.socketPath, paths.socketFor(row.id));
    const named = prepareLoop(store, paths, { dir: repo.dir, agentCmd: 'true', name: 'mine', maxIterations: 3, row: { branch: 'b', pushId: 'p1' } });
    assert.match(named.id, /^mine-[0-9a-f]{4}$/);
    assert.is(named.name, 'mine');
    assert.is(named.branch, 'b');
    assert.is(named.pushId, 'p1');
    assert.match(setupError(() => prepareLoop(store, paths, { dir: repo.dir, agentCmd: 'true', name: 'mine' })), /a loop named mine already exists; pick another --name/);
    assert.is(count(), 2);
    // an id given by the caller (the daemon names worktree and branch first) is the row's id
    const given = prepareLoop(store, paths, { dir: repo.dir, agentCmd: 'true', name: 'feature-ab12', row: { id: 'feature-ab12' } });
    assert.is(given.id, 'feature-ab12');
    assert.is(given.name, 'feature-ab12');
    assert.is(given.socketPath, paths.socketFor('feature-ab12'));
    assert.is(given.logPath, paths.logFor('feature-ab12'));
    assert.is(store.get('feature-ab12')?.status, 'starting');
    assert.match(setupError(() => prepareLoop(store, paths, { dir: repo.dir, agentCmd: 'true', row: { id: 'feature-ab12' } })), /a loop with id or name feature-ab12 already exists/);
    assert.match(setupError(() => prepareLoop(store, paths, { dir: repo.dir, agentCmd: 'true', row: { id: 'mine' } })), /a loop with id or name mine already exists/);
    for (const bad of ['../x', 'a/b', '-x', 'x.lock', '', 'x'.repeat(101)]) {
      assert.match(setupError(() => prepareLoop(store, paths, { dir: repo.dir, agentCmd: 'true', row: { id: bad } })), /cannot use the loop id given: bad loop id/, bad);
    }
    assert.is(count(), 3, 'nothing written for a bad or taken id');
    assert.is(slugify('A very long name that goes on and on'), 'a-very-long-name-that-go');
    assert.is(slugify('!!!'), 'loop');
    writeFileSync(join(repo.dir, 'prd.json'), JSON.stringify(storiesPrd(1, '')));
    assert.ok(prepareLoop(store, paths, { dir: repo.dir, agentCmd: 'true' }).id.startsWith('ralph-task-'), 'falls back to the dir name');
  } finally {
    db.close();
    repo.cleanup();
    empty.cleanup();
    home.cleanup();
  }
});

test('resume: a loop goes on once; a second resume names the loop that took it over, a resume that never ran does not count', () => {
  const home = makeTempHome('ralph-prep');
  const paths = homePaths(home.home);
  const db = openDb(paths.db);
  const store = new LoopStore(db);
  const repo = makeTaskRepo({ stories: 1 });
  try {
    const first = prepareLoop(store, paths, { dir: repo.dir, agentCmd: 'true', iterationTimeoutMs: 90_000 });
    store.finish(first.id, 'failed', 'the agent gave up');
    // A resume whose runner never started (pid null, failed) took nothing over.
    const stillborn = prepareResumedLoop(store, paths, store.get(first.id)!, {});
    assert.is(stillborn.resumedFrom, first.id);
    assert.is(stillborn.iterationTimeoutMs, 90_000);
    store.finish(stillborn.id, 'failed', 'could not launch');
    const next = prepareResumedLoop(store, paths, store.get(first.id)!, {});
    assert.is(next.resumedFrom, first.id);
    const again = setupError(() => prepareResumedLoop(store, paths, store.get(first.id)!, {}));
    assert.is(again, `loop ${first.id} was already resumed: loop ${next.id} goes on from it (starting); see ralph status`);
    assert.is(resumeRefusal(store.get(first.id)!, store), again);
    store.update(next.id, { pid: 1 });
    store.finish(next.id, 'stopped', 'stopped by the user');
    assert.match(setupError(() => prepareResumedLoop(store, paths, store.get(first.id)!, {})), new RegExp(`\\(stopped\\); resume ${next.id} instead$`));
    assert.is(store.list().filter((r) => r.resumedFrom === first.id).length, 2, 'nothing written by the refused resumes');
  } finally {
    db.close();
    repo.cleanup();
    home.cleanup();
  }
});

test('runner liveness: one check (store/process.ts) for status and the daemon; a pid naming no single process is dead, and so is a live process that is not that loop\'s runner', async () => {
  assert.ok(processAlive(process.pid));
  const exitedPid = spawnSync(process.execPath, ['-e', '']).pid!;
  assert.not.ok(processAlive(exitedPid), 'a process that exited');
  // kill(0, 0) and kill(-1, 0) reach process groups and succeed: no runner is alive because of that
  for (const pid of [0, -1, 1.5, Number.NaN]) assert.not.ok(processAlive(pid), String(pid));

  const home = makeTempHome('ralph-live');
  const paths = homePaths(home.home);
  const db = openDb(paths.db);
  const repo = makeTaskRepo({ stories: 1 });
  try {
    const row = prepareLoop(new LoopStore(db), paths, { dir: repo.dir, agentCmd: 'true' });
    const runner = await standInRunner(home.home, row.id);
    try {
      assert.ok(runnerAlive(runner.pid!, row.id));
      assert.is(whyRunnerGone({ ...row, status: 'running', pid: runner.pid! }), undefined);
      // After a reboot the pid may be anybody's: this process, or another loop's runner.
      assert.not.ok(runnerAlive(process.pid, row.id), 'a live process that is no runner');
      assert.is(whyRunnerGone({ ...row, status: 'running', pid: process.pid }), RUNNER_GONE_REASON);
      assert.not.ok(runnerAlive(runner.pid!, 'other-0000'), "another loop's runner");
    } finally {
      runner.kill('SIGKILL');
    }
    assert.is(whyRunnerGone({ ...row, status: 'running', pid: exitedPid }), RUNNER_GONE_REASON);
    assert.is(whyRunnerGone({ ...row, status: 'running', pid: 0 }), RUNNER_GONE_REASON);

    // How launch.ts starts runners, and `ralph run --foreground`, which hosts its own; nothing else.
    assert.ok(isRunnerCommand(['/usr/bin/node', '--max-semi-space-size=2', '/opt/ralph/dist/loop/main.js', 'a-1f2e'], 'a-1f2e'));
    assert.not.ok(isRunnerCommand(['/usr/bin/node', '/opt/ralph/dist/loop/main.js', 'b-0000'], 'a-1f2e'));
    assert.not.ok(isRunnerCommand(['/usr/bin/python3', '/opt/ralph/dist/loop/main.js', 'a-1f2e'], 'a-1f2e'));
    assert.not.ok(isRunnerCommand(['sleep', '600'], 'a-1f2e'));
    assert.not.ok(isRunnerCommand([''], 'a-1f2e'));
    assert.ok(isRunnerCommand(['node', '/usr/local/bin/ralph', 'run', '.', '--foreground'], 'a-1f2e'));
    assert.not.ok(isRunnerCommand(['node', '/usr/local/bin/ralph', 'status'], 'a-1f2e'));
  } finally {
    db.close();
    repo.cleanup();
    home.cleanup();
  }
});

test('screen mirror: output parsed in catch-ups is still exact: state set long before the snapshot is kept', async () => {
  const t = tempDir();
  try {
    const h = new OutputHistory(join(t.dir, 'e.log'), { ringBytes: 2 * 1024 * 1024 });
    const mirror = new ScreenMirror(h, 40, 5);
    h.append('\x1b[35mmagenta from the first line on\r\n');
    // ~150 KiB of plain lines in many appends: fed in one catch-up at the snapshot, not chunk by chunk.
    for (let i = 0; i < 3000; i++) h.append(`plain line ${i} ${'.'.repeat(30)}\r\n`);
    const snap = await mirror.snapshot();
    assert.is(snap.seq, h.endSeq);
    assert.match(snap.screen, /plain line 2999/);
    assert.match(snap.screen, /\x1b\[35m/, 'the colour set 150 KiB earlier still holds');
    mirror.dispose();
    h.close();
  } finally {
    t.cleanup();
  }
});

test('screen mirror: a screen whose scrollback would not fit one client message is sent with less of it', async () => {
  const xterm = await makeXterm(200, 50);
  // 600 lines of per-character true colour (as an agent printing slowly leaves them): MBs as JSON.
  const colourful = (i: number) => [...`line ${i} `.padEnd(150, 'x')].map((c, k) => `\x1b[38;2;${k};${i % 256};99m${c}`).join('') + '\x1b[0m\r\n';
  await new Promise<void>((resolve) => xterm.term.write(Array.from({ length: 600 }, (_, i) => colourful(i)).join(''), resolve));
  assert.ok(Buffer.byteLength(JSON.stringify(xterm.serializer.serialize())) > MAX_SCREEN_JSON_BYTES, 'the whole screen would not fit');
  const screen = fittingScreen(xterm);
  const bytes = Buffer.byteLength(JSON.stringify(screen));
  assert.ok(bytes <= MAX_SCREEN_JSON_BYTES, `${bytes} bytes as JSON`);
  const text = screen.replace(/\x1b\[[0-9;]*m/g, '');
  assert.ok(text.includes('line 599 xxx'), 'the last line is on it');
  assert.ok(text.includes('line 551 xxx'), 'and the whole screen above it');
  xterm.term.dispose();
});

test('screen mirror: the screen as of a seq; after a flood it skips ahead and still shows the end', async () => {
  const t = tempDir();
  try {
    const h = new OutputHistory(join(t.dir, 's.log'), { ringBytes: 512 * 1024 });
    const mirror = new ScreenMirror(h, 40, 5);
    h.append('first line\r\n\x1b[31mred\x1b[0m line\r\n');
    const a = await mirror.snapshot();
    assert.is(a.seq, h.endSeq);
    assert.match(a.screen, /first line/);
    assert.match(a.screen, /\x1b\[31mred/);
    const line = 'flood ✓ 日本 '.repeat(5) + '\r\n';
    for (let i = 0; i < 20_000; i++) h.append(line); // ~1.6 MB at once: far more than the ring
    h.append('THE LAST LINE\r\n');
    const b = await mirror.snapshot();
    assert.is(b.seq, h.endSeq);
    assert.match(b.screen, /THE LAST LINE/);
    assert.not.match(b.screen, /first line/);
    mirror.dispose();
    h.close();
  } finally {
    t.cleanup();
  }
});

test('screen mirror: a terminal that cannot be loaded is logged once; snapshots are empty at the current seq and the runner goes on', async () => {
  const t = tempDir();
  try {
    const h = new OutputHistory(join(t.dir, 'f.log'), { ringBytes: 64 * 1024 });
    const logged: string[] = [];
    const mirror = new ScreenMirror(h, 40, 5, { log: (l) => logged.push(l), loadXterm: () => Promise.reject(new Error('Cannot find module @xterm/headless')) });
    h.append('some output\r\n');
    const a = await mirror.snapshot();
    assert.equal(a, { screen: '', seq: h.endSeq });
    h.append('more output\r\n');
    const b = await mirror.snapshot();
    assert.equal(b, { screen: '', seq: h.endSeq }, 'later snapshots too, at the seq of their time');
    assert.equal(logged, ['cannot load the terminal emulator for screen replays (Cannot find module @xterm/headless); attaching clients get no screen']);
    mirror.dispose();
    h.close();
  } finally {
    t.cleanup();
  }
});

test.run();
