// `ralph attach <loop> [--interactive] [--no-replay]`: watch a loop live and type into it.

import v8 from 'node:v8';
import { openLoopStore, requireLoop } from '../../client/lookup.js';
import { runNotifyCommand } from '../../client/notify.js';
import { readConfig } from '../../store/config.js';
import { attachToLoop } from '../../client/attach/session.js';
import { endAsOnHangUp, whenOutputLost } from '../output.js';

const SIGNAL_EXIT: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };

export async function run(loop: string, opts: { interactive?: boolean; replay?: boolean }): Promise<void> {
  // The keystroke path is short and runs a few times a second: with V8's default tier-up budget it
  // stays in the baseline tiers for the first thousand keys or so. A third of the budget gets it
  // optimized sooner (set at run time it misses what node compiled while starting: ~10% less CPU
  // per key over 2000 keys, where the same flag on node's command line gives ~45%).
  v8.setFlagsFromString('--interrupt-budget=20000');
  // Output that cannot be written any more (EIO: the terminal is gone) ends attach as SIGHUP does.
  whenOutputLost(endAsOnHangUp);
  const store = openLoopStore();
  const row = requireLoop(store, loop);
  const outcome = await attachToLoop(store, row, { interactive: opts.interactive ?? false, replay: opts.replay ?? true });
  process.stderr.write(`ralph: ${outcome.line}\n`);
  // Seen to its end here (not a loop that had ended before attach): notify.command, if configured.
  if (outcome.kind === 'ended' && outcome.seenEnd) {
    const now = store.get(row.id) ?? row;
    let problem: string | null;
    try {
      problem = await runNotifyCommand(readConfig(), { ...now, ...outcome.end, location: now.location, remote: now.remote });
    } catch (err) {
      // The attach itself went well: a config broken meanwhile only costs the notification.
      problem = `notify.command not run: ${(err as Error).message}`;
    }
    if (problem) process.stderr.write(`ralph: ${problem}\n`);
  }
  store.db.close();
  // The loop's end and a detach are both a success; nothing of this process needs to outlive them.
  process.exit(outcome.kind === 'signal' ? (SIGNAL_EXIT[outcome.signal] ?? 1) : 0);
}
