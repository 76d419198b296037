// The daemon's log: one line per event on stderr, each with an ISO timestamp and a level.

import type { DaemonLogger } from './context.js';

export function createLogger(out: NodeJS.WritableStream = process.stderr): DaemonLogger {
  const write = (level: string, message: string) => {
    // One event, one line: a message with newlines (an error from git, npm) is folded.
    out.write(`${new Date().toISOString()} ${level} ${message.replace(/\s*\n\s*/g, ' | ')}\n`);
  };
  return {
    info: (m) => write('info', m),
    warn: (m) => write('warn', m),
    error: (m) => write('error', m),
  };
}
