// `ralph bridge`: what an ssh remote runs on the box. It joins its stdin/stdout to this box's daemon
// socket ($RALPH_HOME/daemon.sock), so the laptop speaks to the daemon as if it were local: the
// hello and everything after it pass through unchanged. sshd has already decided who may run it.

import { homePaths } from '../../store/paths.js';
import { UserError } from '../output.js';

const CONNECT_TIMEOUT_MS = 5000;

export async function run(): Promise<void> {
  const socket = homePaths().daemonSocket;
  const { bridgeToSocket } = await import('../../transport/ssh/bridge.js');
  try {
    await bridgeToSocket(socket, CONNECT_TIMEOUT_MS);
  } catch (err) {
    const why = (err as Error).message.replace(/^cannot connect to \S+: /, '');
    throw new UserError(`no daemon answers at ${socket} (${why}): start it on this box with: ralph daemon (or set RALPH_HOME to its home)`);
  }
  process.exit(0);
}
