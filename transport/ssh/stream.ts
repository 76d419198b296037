// An ssh process's stdin and stdout as one Duplex. Ending the Duplex ends ssh's stdin (the box sees
// end-of-file: a half-close); destroying it ends the process. When ssh exits, the stream ends
// cleanly on exit 0 and is destroyed with the reason otherwise.

import type { ChildProcess } from 'node:child_process';
import { Duplex } from 'node:stream';
import type { SshExit } from './errors.js';

/** Enough of ssh's stderr to find why it failed; it says little, but the box's command might not. */
const STDERR_KEEP_BYTES = 16 * 1024;
/** After ssh has exited and its stdout ended, how long its stderr may take to end too. */
const STDERR_GRACE_MS = 250;

export class SshStream extends Duplex {
  /** Has anything come back yet (then the connection is up)? */
  answered = false;
  private stderr = '';

  constructor(
    private readonly child: ChildProcess,
    /** The error to end with when ssh did not exit cleanly. */
    failure: (exit: SshExit, answered: boolean) => Error,
    /** The error to end with when ssh could not be started at all. */
    notStarted: (err: NodeJS.ErrnoException) => Error,
  ) {
    super({ allowHalfOpen: false });
    const { stdin, stdout, stderr } = child;
    stdout!.on('data', (chunk: Buffer) => {
      this.answered = true;
      if (!this.push(chunk)) stdout!.pause();
    });
    stderr!.on('data', (chunk: Buffer) => {
      this.stderr = (this.stderr + chunk.toString('utf8')).slice(-STDERR_KEEP_BYTES);
    });
    stdin!.on('error', () => {
      /* ssh is gone; its exit ends the stream */
    });
    child.once('error', (err: NodeJS.ErrnoException) => {
      if (this.destroyed) return;
      this.destroy(notStarted(err));
    });
    const ended = (s: NodeJS.ReadableStream) => new Promise<void>((resolve) => (s.once('end', resolve), s.once('close', resolve)));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    // stderr normally ends with the process; the grace only guards against a helper ssh left behind
    // (a shared connection's master) holding it open.
    void Promise.all([exited, ended(stdout!)])
      .then(([exit]) => Promise.race([ended(stderr!), new Promise((r) => setTimeout(r, STDERR_GRACE_MS))]).then(() => exit))
      .then(({ code, signal }) => {
        if (this.destroyed) return;
        if (code === 0) {
          if (!this.readableEnded) this.push(null);
          return;
        }
        this.destroy(failure({ code, signal, stderr: this.stderr }, this.answered));
      });
  }

  override _read(): void {
    this.child.stdout!.resume();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    // A write that finds ssh gone is dropped, not an error: ssh's exit says why it is gone.
    const stdin = this.child.stdin!;
    if (stdin.destroyed || this.child.exitCode !== null) return cb();
    stdin.write(chunk, () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    const stdin = this.child.stdin!;
    if (stdin.destroyed || stdin.writableEnded) return cb();
    stdin.end(() => cb());
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGTERM');
    this.child.stdin!.destroy();
    this.child.stdout!.destroy();
    this.child.stderr!.destroy();
    cb(err);
  }
}
