#!/usr/bin/env node
// The loop runner process: `node dist/loop/main.js <loopId>` with RALPH_HOME in the environment.
// Started detached by launch.ts, it tells its launcher on fd RALPH_READY_FD "ready" once its socket
// listens (or "error <message>"), then runs the loop to its end and exits 0.

import { closeSync, writeSync } from 'node:fs';
import { homePaths } from '../store/paths.js';
import { hostLoop } from './host.js';

function tellLauncher(line: string): void {
  const fd = Number(process.env.RALPH_READY_FD);
  if (!Number.isInteger(fd) || fd < 3) return;
  delete process.env.RALPH_READY_FD;
  try {
    writeSync(fd, line.replace(/\n/g, ' ') + '\n');
    closeSync(fd);
  } catch {
    // The launcher is gone: nobody to tell.
  }
}

const loopId = process.argv[2];
if (!loopId) {
  process.stderr.write('usage: node dist/loop/main.js <loop-id>  (with RALPH_HOME set)\n');
  process.exit(2);
}

try {
  const env = { ...process.env };
  delete env.RALPH_READY_FD;
  const done = await hostLoop(homePaths(), loopId, { onReady: () => tellLauncher('ready'), env });
  process.stderr.write(`loop ${loopId} ${done.status}: ${done.reason ?? ''}\n`);
  process.exit(0);
} catch (err) {
  const message = (err as Error).message ?? String(err);
  tellLauncher(`error ${message}`);
  process.stderr.write(`ralph runner ${loopId}: ${message}\n`);
  process.exit(1);
}
