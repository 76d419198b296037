// `ralph prune [--older-than D]`: on a daemon box, removes the worktrees of finished loops (never of
// running ones) and says what it removed. The loops' branches ralph/<id> stay in the bare repos, so
// `git fetch` still brings their commits home; only a loop whose runner never ran loses its branch.

import { existsSync } from 'node:fs';
import { openDb } from '../../store/db.js';
import { LoopStore } from '../../store/loops.js';
import { homePaths } from '../../store/paths.js';
import { parseDuration } from '../../store/duration.js';
import { pruneLoopWorktrees } from '../../worktrees/prune.js';
import { UserError } from '../output.js';

export async function run(opts: { olderThan?: string }): Promise<void> {
  let olderThanMs: number | undefined;
  if (opts.olderThan !== undefined) {
    const ms = parseDuration(opts.olderThan);
    if (ms === null) throw new UserError(`--older-than must look like 30m, 12h, 7d or 2w, got ${JSON.stringify(opts.olderThan)}`);
    olderThanMs = ms;
  }
  const paths = homePaths();
  if (!existsSync(paths.db)) {
    console.log(`nothing to prune: no loops in ${paths.home}`);
    return;
  }
  const db = openDb(paths.db);
  try {
    const r = await pruneLoopWorktrees(paths, new LoopStore(db), olderThanMs === undefined ? {} : { olderThanMs });
    const branchGone = new Set(r.removedBranches.map((l) => l.id));
    for (const { loop, path } of r.removed) {
      const branch = branchGone.has(loop.id) ? `its runner never ran, so its branch ralph/${loop.id} is removed too` : `its branch ralph/${loop.id} is kept`;
      console.log(`removed ${path} (loop ${loop.id}, ${loop.status}; ${branch})`);
    }
    for (const loop of r.removedBranches.filter((l) => !r.removed.some((w) => w.loop.id === l.id))) {
      console.log(`removed branch ralph/${loop.id} (loop ${loop.id}, ${loop.status}; its runner never ran)`);
    }
    for (const { loop, error } of r.failed) console.error(`ralph: could not remove the worktree of loop ${loop.id}: ${error}`);
    if (r.removed.length === 0 && r.removedBranches.length === 0 && r.failed.length === 0) console.log('nothing to prune');
    const n = (k: number) => `${k} worktree${k === 1 ? '' : 's'}`;
    if (r.keptRunning.length) {
      console.log(`kept ${n(r.keptRunning.length)} of loops still running: ${r.keptRunning.map((l) => l.id).join(', ')}`);
    }
    if (r.keptRecent.length) console.log(`kept ${n(r.keptRecent.length)} of loops that ended less than ${opts.olderThan} ago`);
    if (r.failed.length) process.exitCode = 1;
  } finally {
    db.close();
  }
}
