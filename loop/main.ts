#!/usr/bin/env node
// The loop runner process: `node dist/loop/main.js <loopId>` with RALPH_HOME in the environment.
// Started detached by launch.ts, it tells its launcher on fd RALPH_READY_FD "ready" once its socket
// listens (or "error <message>"), then runs the loop to its end and exits 0.

import { closeSync, writeSync } from 'node:fs';
import v8 from 'node:v8';
import { openDb } from '../store/db.js';
import { LoopStore } from '../store/loops.js';
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

// Keystrokes come a few at a time: with V8's default tier-up budget their path (the socket, the
// RPC, the PTY) stays in the baseline tiers for the first thousand keys or so of a session. A third
// of the budget gets it optimized sooner: ~25% less CPU per key over 2000 keys. (Set here, not on the
// command line: a flag an older or newer V8 did not know would stop node from starting.)
v8.setFlagsFromString('--interrupt-budget=20000');

const loopId = process.argv[2];
if (!loopId) {
  process.stderr.write('usage: node dist/loop/main.js <loop-id>  (with RALPH_HOME set)\n');
  process.exit(2);
}

// stderr is the runner log, on the same disk as everything else: a full disk must not end the
// runner because its diagnostics cannot be written (the loop's own reason reaches its clients).
process.stderr.on('error', () => {});

// A bug that escapes everything else still ends the loop on record, with what went wrong.
process.on('uncaughtException', (err) => {
  const message = err?.message ?? String(err);
  process.stderr.write(`ralph runner ${loopId}: crashed: ${err?.stack ?? message}\n`);
  tellLauncher(`error runner crashed: ${message}`);
  try {
    const db = openDb(homePaths().db);
    new LoopStore(db).finish(loopId, 'failed', `the runner crashed: ${message}`);
    db.close();
  } catch {
    // `ralph status` will notice the runner is gone.
  }
  process.exit(1);
});

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
