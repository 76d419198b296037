#!/usr/bin/env node
// pre-receive: refuses an update or delete of a branch whose loop is still starting or running, with
// one line, unless the push says `-o ralph.restart` (then that loop is stopped first). Bad ralph.* push
// options refuse the push too, so nothing changes and the user can push again with them fixed.

import { branchTakenLine, type DaemonLoop } from '../daemon/protocol.js';
import { isFinal } from '../store/loops.js';
import { callDaemon, hookEnv } from './daemon.js';
import { parsePushOptions, readPushOptions } from './push-options.js';
import { isLoopBranch, parseRefLines, readStdin } from './refs.js';

const say = (line: string) => process.stderr.write(`ralph: ${line}\n`);

async function main(): Promise<number> {
  const updates = parseRefLines(await readStdin());
  const { options, errors } = parsePushOptions(readPushOptions());
  if (errors.length > 0) {
    for (const e of errors) say(e);
    return 1;
  }
  const env = hookEnv();
  if (!env) return 0; // not pushed through a ralph daemon: no loops to protect
  const branches = updates.filter((u) => u.kind !== 'create' && u.branch !== null && !isLoopBranch(u.branch)).map((u) => u.branch!);
  if (branches.length === 0) return 0;

  const loops = await callDaemon<DaemonLoop[]>(env.socket, 'loop.list', {}, { timeoutMs: 30_000 });
  const running = loops.filter(
    (l) => l.repo === env.repo && l.branch !== null && branches.includes(l.branch) && !isFinal(l.status),
  );
  if (running.length === 0) return 0;
  if (!options.restart) {
    for (const l of running) {
      say(branchTakenLine(l.loopId, l.status === 'starting' ? 'starting' : 'running', l.branch!));
    }
    return 1;
  }
  for (const l of running) {
    await callDaemon(env.socket, 'loop.stop', { loopId: l.loopId }, { timeoutMs: 60_000 });
    say(`stopped loop ${l.loopId} on ${l.branch} (ralph.restart)`);
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    say(`pre-receive: ${(err as Error)?.message ?? String(err)}`);
    process.exit(1);
  },
);
