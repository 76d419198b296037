// Shared test helper: another process holding the session DB's write lock, as a long `ralph` write
// or a user's sqlite3 shell would. It lets go only when the test says so (a line on its stdin), so
// "the lock is held" is true by construction until then.
//
//   const lock = holdWriteLock(dbPath);
//   await lock.locked;      // held from here
//   await lock.release();   // let go (committed, the holder has exited)
//   lock.kill();            // in cleanup, if the test failed before releasing

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { exited, ROOT, within } from './env.js';

export interface WriteLock {
  locked: Promise<void>;
  release(): Promise<void>;
  kill(): void;
}

export function holdWriteLock(dbPath: string): WriteLock {
  const script = `
    import Database from ${JSON.stringify(join(ROOT, 'node_modules', 'better-sqlite3', 'lib', 'index.js'))};
    const db = new Database(process.argv[1]);
    db.exec('BEGIN IMMEDIATE');
    console.log('locked');
    process.stdin.once('data', () => {
      db.exec('COMMIT');
      db.close();
      process.exit(0);
    });`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, dbPath], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exit = exited(child);
  const locked = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d) => /locked/.test(String(d)) && resolve());
    void exit.then(({ code }) => reject(new Error(`the lock holder exited (${code}) before locking`)));
  });
  return {
    locked,
    async release() {
      child.stdin.end('release\n');
      const { code } = await within(exit, 10_000, 'the lock holder to commit and exit');
      if (code !== 0) throw new Error(`the lock holder exited ${code} on release`);
    },
    kill: () => void (child.exitCode === null && child.signalCode === null && child.kill('SIGKILL')),
  };
}
