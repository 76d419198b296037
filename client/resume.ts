// `ralph resume`: a loop that ended failed or stopped goes on as a new loop on the same task. A local
// loop gets a new runner in the same directory; a remote one is resumed by its daemon, from the
// agent's commits on its branch ralph/<id>. The new row points back at the old one (resumedFrom).

import { ControlMethods } from '../daemon/protocol.js';
import { readConfig } from '../store/config.js';
import type { LoopRow, LoopStore } from '../store/loops.js';
import { homePaths } from '../store/paths.js';
import { remoteForRow } from './daemon.js';
import { freshRow } from './loop-access.js';
import { startOnRemote } from './remote-start.js';

export interface ResumeOptions {
  /** Iterations for the new loop (default: the old loop's limit). */
  maxIterations?: number;
  /** Progress lines while a remote daemon prepares it (installing the agent CLI, …). */
  progress?: (line: string) => void;
}

/** Starts the new loop; resolves with its row. Throws a one-line error when the loop cannot be resumed. */
export async function resumeLoop(store: LoopStore, loop: LoopRow, opts: ResumeOptions = {}): Promise<LoopRow> {
  const row = await freshRow(store, loop);
  const { resumeRefusal, prepareResumedLoop } = await import('../loop/resume.js');
  const refusal = resumeRefusal(row, store);
  if (refusal) throw new Error(refusal);
  if (row.location === 'remote') {
    const remote = remoteForRow(row, readConfig());
    const params = { loopId: row.remoteLoopId ?? row.id, ...(opts.maxIterations !== undefined ? { maxIterations: opts.maxIterations } : {}) };
    const { row: started } = await startOnRemote(store, remote, ControlMethods.loopResume, params, {
      describe: `resume loop ${row.id} on ${remote.name}`,
      ...(row.repo ? { repo: row.repo } : {}),
      ...(row.branch ? { branch: row.branch } : {}),
      ...(opts.progress ? { progress: opts.progress } : {}),
    });
    store.update(started.id, { resumedFrom: row.id });
    return store.get(started.id) ?? started;
  }
  const paths = homePaths();
  const { launchRunner } = await import('../loop/launch.js');
  const next = prepareResumedLoop(store, paths, row, {
    ...(opts.maxIterations !== undefined ? { maxIterations: opts.maxIterations } : {}),
    agentSearchDirs: [paths.agentsBin],
  });
  await launchRunner(paths, next.id);
  return store.get(next.id) ?? next;
}
