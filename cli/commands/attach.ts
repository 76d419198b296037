// `ralph attach <loop> [--interactive] [--no-replay]`: watch a loop live and type into it.

import { openLoopStore, requireLoop } from '../../client/lookup.js';
import { attachToLoop } from '../attach/session.js';

const SIGNAL_EXIT: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };

export async function run(loop: string, opts: { interactive?: boolean; replay?: boolean }): Promise<void> {
  // After SIGHUP the terminal is gone: writing to it fails (EIO, EPIPE), and nobody is left to tell.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
  const store = openLoopStore();
  const row = requireLoop(store, loop);
  const outcome = await attachToLoop(store, row, { interactive: opts.interactive ?? false, replay: opts.replay ?? true });
  store.db.close();
  process.stderr.write(`ralph: ${outcome.line}\n`);
  // The loop's end and a detach are both a success; nothing of this process needs to outlive them.
  process.exit(outcome.kind === 'signal' ? (SIGNAL_EXIT[outcome.signal] ?? 1) : 0);
}
