// Opening the session DB and finding the loop a user named on the command line.

import { openDb } from '../store/db.js';
import { LoopStore, type LoopRow } from '../store/loops.js';
import { homePaths, type HomePaths } from '../store/paths.js';

export class LoopNotFoundError extends Error {
  constructor(idOrName: string, candidates: string[] = []) {
    super(
      candidates.length > 1
        ? `${JSON.stringify(idOrName)} could be several loops (${candidates.slice(0, 3).join(', ')}${candidates.length > 3 ? ', …' : ''}); give more of the id`
        : `no loop ${JSON.stringify(idOrName)} (see ralph status)`,
    );
    this.name = 'LoopNotFoundError';
  }
}

export function openLoopStore(paths: HomePaths = homePaths()): LoopStore {
  return new LoopStore(openDb(paths.db));
}

/** By id, name or unique id prefix; a one-line error naming what was asked for otherwise. */
export function requireLoop(store: LoopStore, idOrName: string): LoopRow {
  const row = store.find(idOrName);
  // A start of several ids names none of them: say so, rather than that no such loop exists.
  if (!row) throw new LoopNotFoundError(idOrName, store.idsStartingWith(idOrName, 4));
  return row;
}
