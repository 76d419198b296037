// Shared test helper: another process holding the session DB's write lock, as a long `ralph` write
// or a user's sqlite3 shell would.
//
//   const lock = holdWriteLock(dbPath, 10_000);
//   await lock.locked;      // held from here
//   await lock.released;    // let go

import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT } from './env.js';

/** Another process that takes the DB's write lock, holds it for `ms`, and lets go. */
export function holdWriteLock(dbPath: string, ms: number): { locked: Promise<void>; released: Promise<void> } {
  const script = `
    import Database from ${JSON.stringify(join(ROOT, 'node_modules', 'better-sqlite3', 'lib', 'index.js'))};
    const db = new Database(process.argv[1]);
    db.exec('BEGIN IMMEDIATE');
    console.log('locked');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(process.argv[2]));
    db.exec('COMMIT');
    db.close();`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, dbPath, String(ms)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const locked = new Promise<void>((resolve, reject) => {
    child.stdout.on('data', (d) => /locked/.test(String(d)) && resolve());
    child.once('exit', (code) => reject(new Error(`the lock holder exited (${code}) before locking`)));
  });
  const released = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { locked, released };
}

