// Shared test helper: an agent install in progress, as far as ralph can tell — the real cross-process
// install lock (install/lock.ts) of a home, held by this test process until the test lets go. A loop
// start that needs an agent installed waits there, after its row and its worktree are made, for as
// long as the test likes: a slow start without any sleep or any npm.
//
//   const lock = await holdInstallLock(home);
//   ...                      // starts that install an agent wait ("waiting for another agent install")
//   await lock.release();

import { agentInstallLockPath } from '../../install/agents.js';
import { withLock } from '../../install/lock.js';
import { homePaths } from '../../store/paths.js';

export interface InstallLock {
  release(): Promise<void>;
}

export async function holdInstallLock(home: string): Promise<InstallLock> {
  let letGo!: () => void;
  const held = new Promise<void>((resolve) => (letGo = resolve));
  let taken!: () => void;
  const isTaken = new Promise<void>((resolve) => (taken = resolve));
  const done = withLock(agentInstallLockPath(homePaths(home)), async () => {
    taken();
    await held;
  });
  await Promise.race([isTaken, done]);
  return {
    async release() {
      letGo();
      await done;
    },
  };
}
