// `ralph status [--json] [--all | --limit N]`: the loops, newest first. Stays light: no node-pty, no xterm, no execa.

import { oneLine } from '../../agents/safe-text.js';
import { settleDeadRunners } from '../../client/liveness.js';
import { openLoopStore } from '../../client/lookup.js';
import { reconcileRemoteRows } from '../../client/reconcile.js';
import { statusJson, statusTable } from '../../client/status-view.js';

export async function run(opts: { json?: boolean; timeout: number; all?: boolean; limit?: number }): Promise<void> {
  const store = openLoopStore();
  settleDeadRunners(store);
  const reasons = new Map<string, string>();
  const reachability = await reconcileRemoteRows(store, { timeoutMs: opts.timeout, reasons });
  const unreachableRemotes = [...reachability].filter(([, r]) => r === 'unreachable').map(([name]) => name);
  // The table shows the newest loops (and every open one); --json always lists every loop.
  const limit = opts.all ? null : opts.limit;
  const text = opts.json ? statusJson(store) : statusTable(store, { unreachableRemotes, ...(limit !== undefined ? { limit } : {}) });
  store.db.close();
  process.stdout.write(text || 'no loops yet (start one with: ralph run DIR)\n');
  // Why a remote shows as unreachable, on stderr: the table (or the JSON) stays as it is.
  for (const why of reasons.values()) process.stderr.write(`ralph: ${oneLine(why)}\n`);
}
