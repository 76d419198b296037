// `ralph watch [--json]`: waits for the loops still running to end, prints each as it ends (or
// pauses), runs notify.command for each, and exits 0 when none is left running.

import { oneLine } from '../../agents/safe-text.js';
import { isEndStatus, LoopsWatcher, type RemoteState } from '../../client/loop-watch.js';
import { openLoopStore } from '../../client/lookup.js';
import { runNotifyCommand } from '../../client/notify.js';
import type { StatusEntry } from '../../client/status-view.js';
import { readConfig } from '../../store/config.js';

export async function run(opts: { json?: boolean; timeout: number }): Promise<void> {
  const config = readConfig();
  const store = openLoopStore();
  const notifying = new Set<Promise<void>>();
  const told = new Map<string, boolean>();
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const openCount = (entries: StatusEntry[]) => entries.filter((e) => !isEndStatus(e.status)).length;

  const watcher = new LoopsWatcher(store, {
    timeoutMs: opts.timeout,
    onEnded: (entry) => {
      process.stdout.write(opts.json ? JSON.stringify(entry) + '\n' : describe(entry) + '\n');
      const p = runNotifyCommand(config, entry).then((problem) => {
        if (problem) process.stderr.write(`ralph: ${problem}\n`);
      });
      notifying.add(p);
      void p.finally(() => notifying.delete(p));
    },
    onChange: (entries) => {
      if (openCount(entries) === 0) finish();
    },
    onRemotes: (remotes) => sayUnreachable(remotes, told),
  });
  const open = openCount(watcher.start());
  if (open === 0) {
    watcher.close();
    store.db.close();
    process.stderr.write('ralph: no loop is running (ralph status shows every loop)\n');
    return;
  }
  process.stderr.write(`ralph: watching ${open} loop${open === 1 ? '' : 's'}; each is printed as it ends\n`);
  await done;
  watcher.close();
  await Promise.all(notifying);
  store.db.close();
}

/** "loop app-3f2a completed (iteration 3/10): all 3 stories pass", with the remote when there is one. */
function describe(e: StatusEntry): string {
  const where = e.location === 'remote' ? ` on ${e.remote ?? 'remote'}` : '';
  return oneLine(`loop ${e.id}${where} ${e.status} (iteration ${e.iteration}/${e.maxIterations})${e.reason ? `: ${e.reason}` : ''}`);
}

/** Each time a remote stops (or starts again) answering, one line on stderr. */
function sayUnreachable(remotes: ReadonlyMap<string, RemoteState>, told: Map<string, boolean>): void {
  for (const [name, r] of remotes) {
    if (told.get(name) === r.reachable) continue;
    if (!r.reachable) process.stderr.write(`ralph: ${oneLine(r.why ?? `remote ${name} did not answer`)}; its loops count as running until it answers\n`);
    else if (told.has(name)) process.stderr.write(`ralph: remote ${name} answers again\n`);
    told.set(name, r.reachable);
  }
}
