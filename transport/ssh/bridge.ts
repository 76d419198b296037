// The box's side of an ssh connection: this process's stdin and stdout joined to a unix socket, both
// ways, until the socket is done. End-of-file on stdin (the far side finished sending) becomes a
// half-close on the socket, so the server can still answer (git after its pack); the socket's end
// ends the bridge.

import type { Readable, Writable } from 'node:stream';
import { dialNet } from '../index.js';

export interface BridgeIo {
  input: Readable;
  output: Writable;
}

/** Joins `io` (default: stdin/stdout) to the socket at `path`; resolves when the socket has closed and its bytes are out. */
export async function bridgeToSocket(path: string, timeoutMs: number, io: BridgeIo = { input: process.stdin, output: process.stdout }): Promise<void> {
  const sock = await dialNet({ path }, `unix:${path}`, timeoutMs);
  const { input, output } = io;
  return new Promise((resolve) => {
    // far side → socket; its end-of-file is a half-close
    input.pipe(sock);
    // socket → far side, with backpressure
    sock.on('data', (chunk: Buffer) => {
      if (!output.write(chunk)) {
        sock.pause();
        output.once('drain', () => sock.resume());
      }
    });
    // The far side gone (ssh ended, EIO or a reset on the pipes): nobody is left to talk to.
    input.on('error', () => sock.destroy());
    output.on('error', () => sock.destroy());
    sock.on('error', () => sock.destroy());
    sock.once('close', () => {
      input.unpipe(sock);
      output.write('', () => resolve());
    });
  });
}
