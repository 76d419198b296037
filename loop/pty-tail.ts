// Keeps the last bytes an agent prints before it exits. On Linux, when the last process holding a
// PTY's terminal side closes it, a read of the master side may fail with EIO while the kernel still
// has output in flight to it, and node-pty ends the stream there: the tail is lost (node-pty issue
// 726; seen here in about 1 of 13 runs of a 1.6 MB flood). Holding the terminal side open ourselves
// until the agent has exited means the master never sees that EIO: node-pty reads on until it
// closes the stream itself (200 ms after the exit) and every byte arrives first.

import { closeSync, constants, openSync } from 'node:fs';
import type { IPty } from 'node-pty';

/** Opens the agent's terminal side; call the returned function once the agent has exited. */
export function holdTerminalSide(agent: IPty): () => void {
  // node-pty keeps the terminal's path (/dev/pts/N) as `_pty`; not part of its typed API.
  const path = (agent as unknown as { _pty?: unknown })._pty;
  if (typeof path !== 'string' || !path.startsWith('/dev/')) return () => {};
  let fd: number | null;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_NOCTTY);
  } catch {
    return () => {}; // the agent is gone already; nothing to keep
  }
  return () => {
    if (fd === null) return;
    closeSync(fd);
    fd = null;
  };
}
