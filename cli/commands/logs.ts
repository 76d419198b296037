// `ralph logs <loop> [-f]`: the loop's output; with -f, also what follows until the loop ends.

import { describeEnd } from '../../client/describe.js';
import { plainTextTo, printLoopOutput } from '../../client/logs.js';
import { openLoopStore, requireLoop } from '../../client/lookup.js';

export async function run(loop: string, opts: { follow?: boolean; raw?: boolean }): Promise<void> {
  const store = openLoopStore();
  const row = requireLoop(store, loop);
  // Escape sequences are for a terminal; into a file or a pipe (grep) goes the text, unless --raw.
  const out = process.stdout.isTTY || opts.raw ? process.stdout : plainTextTo(process.stdout);
  const end = await printLoopOutput(store, row, { follow: opts.follow ?? false, out });
  if (out !== process.stdout) await new Promise<void>((resolve) => out.end(resolve));
  store.db.close();
  if (end) process.stderr.write(`ralph: ${describeEnd(row.id, end)}\n`);
}
