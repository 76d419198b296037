// `ralph extend <loop> <n>`: n more iterations for a loop that is still going, local or remote.

import { extendLoop } from '../../client/extend.js';
import { openLoopStore, requireLoop } from '../../client/lookup.js';

export async function run(loop: string, n: number): Promise<void> {
  const store = openLoopStore();
  try {
    const row = requireLoop(store, loop);
    const maxIterations = await extendLoop(store, row, n);
    process.stdout.write(`loop ${row.id} may now run ${maxIterations} iterations (${n} more)\n`);
  } finally {
    store.db.close();
  }
}
