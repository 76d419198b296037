// `ralph resume <loop> [--max-iterations N]`: a loop that ended failed or stopped goes on as a new loop
// on the same task; prints the new loop's id (only the id on stdout, as `ralph run` does).

import { openLoopStore, requireLoop } from '../../client/lookup.js';
import { resumeLoop } from '../../client/resume.js';

export async function run(loop: string, opts: { maxIterations?: number }): Promise<void> {
  const store = openLoopStore();
  try {
    const row = requireLoop(store, loop);
    const next = await resumeLoop(store, row, {
      ...(opts.maxIterations !== undefined ? { maxIterations: opts.maxIterations } : {}),
      progress: (line) => process.stderr.write(`${line.startsWith('ralph: ') ? '' : 'ralph: '}${line}\n`),
    });
    process.stdout.write(`${next.id}\n`);
    const where = next.location === 'remote' ? ` on ${next.remote}` : '';
    process.stderr.write(
      `ralph: loop ${row.id} goes on as loop ${next.id}${where} (${next.agent}, at most ${next.maxIterations} iterations) — watch it: ralph attach ${next.id}\n`,
    );
  } finally {
    store.db.close();
  }
}
