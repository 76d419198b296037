#!/usr/bin/env node
// post-receive: for each created or updated branch (not deletes, not ralph/* branches), one
// `loop.start` call to the daemon's control socket, one line about it, and exit. The daemon does all
// spawning, so nothing here outlives the hook or holds the push's stdout/stderr.

import type { LoopStartParams, LoopStartResult } from '../daemon/protocol.js';
import { callDaemon, hookEnv, LOOP_START_WAIT_MS, NoAnswerError, startNotAnsweredLine } from './daemon.js';
import { parsePushOptions, readPushOptions } from './push-options.js';
import { isLoopBranch, parseRefLines, readStdin } from './refs.js';

const say = (line: string) => process.stderr.write(`ralph: ${line}\n`);

function progressLine(params: unknown): string | null {
  const p = params as { line?: unknown; message?: unknown } | null;
  const text = typeof p?.line === 'string' ? p.line : typeof p?.message === 'string' ? p.message : null;
  // Plain text only: no escapes reach the pusher's terminal.
  return text === null ? null : text.replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '').trimEnd();
}

async function main(): Promise<number> {
  const updates = parseRefLines(await readStdin());
  const env = hookEnv();
  const branches = updates.filter((u) => u.kind !== 'delete' && u.branch !== null && !isLoopBranch(u.branch));
  if (branches.length === 0) return 0;
  const { options, errors } = parsePushOptions(readPushOptions());
  if (errors.length > 0) {
    for (const e of errors) say(e);
    say(`no loop started for ${branches.map((b) => b.branch).join(', ')}`);
    return 0;
  }
  if (options.noStart) {
    for (const b of branches) say(`ralph.no-start: no loop started for ${b.branch}`);
    return 0;
  }
  if (!env) {
    say('this push did not come through a ralph daemon: no loop started');
    return 0;
  }
  for (const b of branches) {
    const params: LoopStartParams = { repo: env.repo, branch: b.branch!, commit: b.new };
    if (env.pushId) params.pushId = env.pushId;
    if (options.agent) params.agent = options.agent;
    if (options.agentCmd) params.agentCmd = options.agentCmd;
    if (options.maxIterations) params.maxIterations = options.maxIterations;
    if (options.task) params.task = options.task;
    if (options.iterationTimeoutMs) params.iterationTimeoutMs = options.iterationTimeoutMs;
    if (options.stallTimeoutMs) params.stallTimeoutMs = options.stallTimeoutMs;
    if (options.fallbackAgent) params.fallbackAgent = options.fallbackAgent;
    if (options.restart) params.restart = true;
    try {
      const r = await callDaemon<LoopStartResult>(env.socket, 'loop.start', params, {
        timeoutMs: LOOP_START_WAIT_MS,
        onNotification: (_m, p) => {
          const line = progressLine(p);
          if (line) say(line);
        },
      });
      say(`started loop ${r.loopId} (${r.agent}, ${r.maxIterations} iterations) — ralph attach ${r.loopId}`);
    } catch (err) {
      if (err instanceof NoAnswerError) say(startNotAnsweredLine(b.branch!, err.waitedMs));
      else say(`no loop started for ${b.branch}: ${(err as Error)?.message ?? String(err)}`);
    }
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    say(`post-receive: ${(err as Error)?.message ?? String(err)}`);
    process.exit(0);
  },
);
