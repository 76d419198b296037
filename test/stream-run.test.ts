// A stream agent's process group under its orphan guard, with real processes: what the agent leaves
// running when it exits is ended (so the run ends), Esc as SIGINT reaches an agent that installs no
// handler of its own, and a runner killed outright takes its agent and the agent's tools with it.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StreamDialect } from '../agents/types.js';
import type { AgentRunResult } from '../loop/agent-run.js';
import { OutputHistory } from '../loop/history.js';
import { OutputWriter } from '../loop/output-writer.js';
import { StreamRun } from '../loop/stream-run.js';
import { gone } from './helpers/loop.js';
import { ROOT, waitUntil } from './helpers/env.js';

/** A dialect that parses nothing: the agents here are plain commands. */
const silent = (interruptSignal?: NodeJS.Signals): StreamDialect => ({
  initialInput: null,
  parser: () => () => [],
  ...(interruptSignal ? { interruptSignal } : {}),
});

function world() {
  const dir = mkdtempSync(join(tmpdir(), 'ralph-stream-'));
  const history = new OutputHistory(join(dir, 'out.log'));
  const writer = new OutputWriter(history);
  const env: Record<string, string> = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
  const run = (script: string, dialect: StreamDialect) =>
    new StreamRun({ file: '/bin/sh', args: ['-c', script], cwd: dir, env, cols: 80, rows: 24, writer, interactive: false }, dialect, 'test-agent');
  const cleanup = () => {
    history.close();
    rmSync(dir, { recursive: true, force: true });
  };
  return { dir, run, cleanup };
}

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
      const script = 'sleep 300 & echo $! > ' + process.argv[1] + '/tool.pid; echo $$ > ' + process.argv[1] + '/agent.pid; wait';
      new StreamRun({ file: '/bin/sh', args: ['-c', script], cwd: process.argv[1], env: { PATH: process.env.PATH }, cols: 80, rows: 24, writer, interactive: false },
        { initialInput: null, parser: () => () => [] }, 'test-agent');`;
    const child = spawn(process.execPath, ['--input-type=module', '-e', runner, w.dir], { stdio: 'inherit' });
    const agentPid = await waitUntil(() => {
      try {
        const t = readFileSync(pidFile, 'utf8');
        return t.endsWith('\n') ? Number(t) : undefined;
      } catch {
        return undefined;
      }
    }, { what: 'the agent to start' });
    const toolPid = Number(readFileSync(join(w.dir, 'tool.pid'), 'utf8'));
    assert.ok(!gone(agentPid) && !gone(toolPid));
    child.kill('SIGKILL');
    await waitUntil(() => gone(agentPid) && gone(toolPid), { what: 'the agent and its tool to be gone', timeoutMs: 10_000 });
  } finally {
    w.cleanup();
  }
});

test.run();
