// `ralph stop <loop> [--after-iteration]`. Stopping a loop that has already ended is not an error
// (exit 0): the user's wish, that it not run, holds.

import { describeEnd } from '../../client/describe.js';
import { openLoopStore, requireLoop } from '../../client/lookup.js';
import { stopLoop } from '../../client/stop.js';

export async function run(loop: string, opts: { afterIteration?: boolean }): Promise<void> {
  const store = openLoopStore();
  const row = requireLoop(store, loop);
  const outcome = await stopLoop(store, row, { when: opts.afterIteration ? 'after-iteration' : 'now' });
  store.db.close();
  switch (outcome.kind) {
    case 'already-ended':
      process.stderr.write(`ralph: nothing to stop: ${describeEnd(row.id, outcome.end)}\n`);
      break;
    case 'stopped':
      process.stdout.write(`${describeEnd(row.id, outcome.end)}\n`);
      break;
    case 'will-stop-after-iteration':
      process.stdout.write(`loop ${row.id} will stop when iteration ${outcome.iteration} ends\n`);
      break;
    case 'still-stopping':
      process.stdout.write(`loop ${row.id} was asked to stop and is still finishing (see ralph status)\n`);
      break;
  }
}
