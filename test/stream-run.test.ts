// A stream agent's process group under its orphan guard, with real processes: what the agent leaves
// running when it exits is ended (so the run ends), Esc as SIGINT reaches an agent that installs no
// handler of its own, and a runner killed outright takes its agent and the agent's tools with it.
// The tools here run as Claude Code's do, each in a session of its own (setsid), out of reach of a
// signal to the agent's group; some ignore SIGTERM.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StreamDialect } from '../agents/types.js';
import type { AgentRunResult } from '../loop/agent-run.js';
import { OutputHistory } from '../loop/history.js';
import { OutputWriter } from '../loop/output-writer.js';
import { leftoversEnded } from '../loop/process-tree.js';
import { StreamRun } from '../loop/stream-run.js';
import { endLeftTools, gone, pidIn, toolInOwnSession } from './helpers/loop.js';
import { ROOT, waitUntil } from './helpers/env.js';

/** A dialect that parses nothing: the agents here are plain commands. */
const silent = (interruptSignal?: NodeJS.Signals): StreamDialect => ({
  initialInput: null,
  parser: () => () => [],
  ...(interruptSignal ? { interruptSignal } : {}),
});

function world() {
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'ralph-stream-')));
  const history = new OutputHistory(join(dir, 'out.log'));
  const writer = new OutputWriter(history);
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  const run = (script: string, dialect: StreamDialect) =>
    new StreamRun({ file: '/bin/sh', args: ['-c', script], cwd: dir, env, cols: 80, rows: 24, writer, interactive: false }, dialect, 'test-agent');
  const cleanup = () => {
    endLeftTools(dir);
    history.close();
    rmSync(dir, { recursive: true, force: true });
  };
  return { dir, run, cleanup };
}

/** A dialect that takes user messages on stdin (as Claude Code does), and ends a turn at a line `END`. */
const turns: StreamDialect = {
  initialInput: 'go\n',
  parser: () => (line) => (line === 'END' ? [{ kind: 'turn-end', usage: null, error: null }] : []),
  userMessage: (text) => text + '\n',
};

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms)))]).finally(() => clearTimeout(timer));
}

test('what the agent leaves in its process group is ended once it exits, even holding its stdout and ignoring SIGTERM', async () => {
  const w = world();
  try {
    // Two leftovers that hold stdout: a plain one, and one that ignores SIGTERM (SIGKILL after the grace).
    const script = `sleep 300 & echo $! > ${w.dir}/a.pid; (trap '' TERM; exec sleep 300) & echo $! > ${w.dir}/b.pid; echo started`;
    const result: AgentRunResult = await within(w.run(script, silent()).done, 10_000, 'the run');
    assert.is(result.exitCode, 0);
    for (const f of ['a.pid', 'b.pid']) {
      const pid = Number(readFileSync(join(w.dir, f), 'utf8'));
      await waitUntil(() => gone(pid), { what: `leftover ${f} to be gone`, timeoutMs: 5000 });
    }
  } finally {
    w.cleanup();
  }
});

test('Esc as SIGINT ends an agent with no handler of its own (signals are not left ignored by the guard)', async () => {
  const w = world();
  try {
    const run = w.run(`echo $$ > ${w.dir}/agent.pid; exec sleep 300`, silent('SIGINT'));
    const pidFile = join(w.dir, 'agent.pid');
    await waitUntil(() => {
      try {
        return readFileSync(pidFile, 'utf8').endsWith('\n');
      } catch {
        return false;
      }
    }, { what: 'the agent to start' });
    const status = readFileSync(`/proc/${readFileSync(pidFile, 'utf8').trim()}/status`, 'utf8');
    const ignored = BigInt('0x' + /^SigIgn:\s+([0-9a-f]+)/m.exec(status)![1]);
    assert.is(ignored & ((1n << 1n) | (1n << 2n)), 0n, 'SIGINT and SIGQUIT are not ignored');
    run.input('\x1b');
    const result = await within(run.done, 10_000, 'the interrupted run');
    assert.is(result.exitCode, 130, 'ended by SIGINT');
    assert.is(result.error?.text, 'test-agent was interrupted (Esc)');
  } finally {
    w.cleanup();
  }
});

test('ralph ending an agent at once (SIGKILL: a full disk, a runner that exits) ends its tools in their own sessions', async () => {
  const w = world();
  try {
    const run = w.run(`${toolInOwnSession(w.dir, 'tool')} wait`, silent());
    const pid = await pidIn(join(w.dir, 'tool.pid'));
    run.kill('SIGKILL');
    await within(run.done, 10_000, 'the killed run');
    await waitUntil(() => gone(pid), { what: 'the tool to be gone', timeoutMs: 5000 });
  } finally {
    w.cleanup();
  }
});

test('a stop (SIGTERM): a tool in its own session that ignores it gets SIGKILL after the agent has gone, and the runner waits for that', async () => {
  const w = world();
  try {
    const run = w.run(`${toolInOwnSession(w.dir, 'tool', true)} wait`, silent());
    const pid = await pidIn(join(w.dir, 'tool.pid'));
    run.kill('SIGTERM');
    await within(run.done, 10_000, 'the stopped run');
    assert.ok(!gone(pid), 'the tool outlives the TERM');
    await within(leftoversEnded(), 5000, 'the leftovers\' KILL');
    await waitUntil(() => gone(pid), { what: 'the tool to be gone', timeoutMs: 2000 });
  } finally {
    w.cleanup();
  }
});

test('a tool the agent starts as it ends (after ralph looked for its processes) is found by its mark and ended', async () => {
  const w = world();
  try {
    // As Claude Code 2.1.197 does with a background task: SIGTERM, a new tool, then exit.
    // (It ignores SIGTERM from its start: the TERM that finds it must not be what ends it.)
    const script = `trap "trap '' TERM; ${toolInOwnSession(w.dir, 'late')} exit 143" TERM; echo $$ > ${w.dir}/agent.pid; while :; do sleep 1; done`;
    const run = w.run(script, silent());
    await pidIn(join(w.dir, 'agent.pid'));
    run.kill('SIGTERM');
    await within(run.done, 10_000, 'the stopped run');
    const pid = await pidIn(join(w.dir, 'late.pid'));
    await within(leftoversEnded(), 5000, 'the leftovers\' KILL');
    await waitUntil(() => gone(pid), { what: 'the late tool to be gone', timeoutMs: 2000 });
  } finally {
    w.cleanup();
  }
});

test('an agent still running seconds after its last turn (its input closed) is ended with what it started; the run is judged by that turn', async () => {
  const w = world();
  try {
    // Reads nothing, so closing its input does not end it: a background task keeps it alive.
    const started = Date.now();
    const run = w.run(`${toolInOwnSession(w.dir, 'bg', true)} echo END; exec sleep 300`, turns);
    const pid = await pidIn(join(w.dir, 'bg.pid'));
    const result = await within(run.done, 15_000, 'the run');
    assert.equal({ exitCode: result.exitCode, signal: result.signal, error: result.error }, { exitCode: 0, signal: 0, error: null });
    assert.ok(Date.now() - started >= 3000, 'not before the grace');
    await within(leftoversEnded(), 5000, 'the leftovers\' KILL');
    await waitUntil(() => gone(pid), { what: 'the background task to be gone', timeoutMs: 2000 });
    assert.match(readFileSync(join(w.dir, 'out.log'), 'utf8'), /test-agent was still running 3s after its last turn \(a background task\?\): ending it and what it started/);
  } finally {
    w.cleanup();
  }
});

test('the runner SIGKILLed: the guard ends the agent and what it started', async () => {
  const w = world();
  try {
    const pidFile = join(w.dir, 'agent.pid');
    // A runner of its own (this process must live on): a StreamRun of an agent that runs a tool.
    const runner = `
      import { StreamRun } from ${JSON.stringify(join(ROOT, 'dist', 'loop', 'stream-run.js'))};
      import { OutputHistory } from ${JSON.stringify(join(ROOT, 'dist', 'loop', 'history.js'))};
      import { OutputWriter } from ${JSON.stringify(join(ROOT, 'dist', 'loop', 'output-writer.js'))};
      const writer = new OutputWriter(new OutputHistory(process.argv[1] + '/runner.log'));
      const script = process.argv[2] + ' sleep 300 & echo $! > ' + process.argv[1] + '/tool.pid; echo $$ > ' + process.argv[1] + '/agent.pid; wait';
      new StreamRun({ file: '/bin/sh', args: ['-c', script], cwd: process.argv[1], env: { PATH: process.env.PATH }, cols: 80, rows: 24, writer, interactive: false },
        { initialInput: null, parser: () => () => [] }, 'test-agent');`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', runner, w.dir, toolInOwnSession(w.dir, 'own-session', true)], { stdio: 'inherit' });
    const agentPid = await waitUntil(() => {
      try {
        const t = readFileSync(pidFile, 'utf8');
        return t.endsWith('\n') ? Number(t) : undefined;
      } catch {
        return undefined;
      }
    }, { what: 'the agent to start' });
    const toolPid = Number(readFileSync(join(w.dir, 'tool.pid'), 'utf8'));
    const ownSession = await pidIn(join(w.dir, 'own-session.pid'));
    assert.ok(!gone(agentPid) && !gone(toolPid) && !gone(ownSession));
    child.kill('SIGKILL');
    await waitUntil(() => gone(agentPid) && gone(toolPid), { what: 'the agent and its tool to be gone', timeoutMs: 10_000 });
    // One in a session of its own that ignores SIGTERM: the guard's KILL, 3 s later.
    await waitUntil(() => gone(ownSession), { what: 'the tool in its own session to be gone', timeoutMs: 10_000 });
  } finally {
    w.cleanup();
  }
});

test.run();
