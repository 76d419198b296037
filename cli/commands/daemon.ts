// `ralph daemon`: parse, start the daemon, print the ready line, run until SIGTERM/SIGINT.

import { resolve } from 'node:path';
import { readConfig } from '../../store/config.js';
import { ralphHome } from '../../store/paths.js';
import { UserError } from '../output.js';

export interface DaemonCommandOptions {
  listen?: string[];
  allowPublic?: boolean;
  home?: string;
  maxLoops?: number;
  zitiService?: string;
  zitiIdentity?: string;
  zitiBackend?: 'auto' | 'sdk' | 'tunnel';
  zitiHostPort?: number;
}

export async function run(opts: DaemonCommandOptions): Promise<void> {
  // The home is the daemon's, and its runners' (they inherit the environment).
  const home = opts.home ? resolve(opts.home) : ralphHome();
  process.env.RALPH_HOME = home;
  const listen = [...(opts.listen ?? [])];
  const zitiIdentity = opts.zitiIdentity ?? process.env.RALPH_ZITI_IDENTITY;
  if (opts.zitiService) {
    if (!zitiIdentity) throw new UserError('--ziti-service needs an identity file: --ziti-identity FILE (or RALPH_ZITI_IDENTITY)');
    listen.push(`ziti:${opts.zitiService}`);
    // The tunnel backend reads the port from its environment variable; the flag is its spelling on the command line.
    if (opts.zitiHostPort !== undefined) process.env.RALPH_ZITI_HOST_PORT = String(opts.zitiHostPort);
  }
  const helloTimeout = Number(process.env.RALPH_HELLO_TIMEOUT_MS);

  // Signal handlers first: whoever waits for the ready line may send SIGTERM the moment it appears.
  let stopSignal: NodeJS.Signals | undefined;
  let onStop: (() => void) | undefined;
  const requestStop = (signal: NodeJS.Signals) => {
    stopSignal ??= signal;
    onStop?.();
  };
  process.once('SIGTERM', requestStop);
  process.once('SIGINT', requestStop);

  const { DaemonSetupError, startDaemonServer } = await import('../../daemon/server.js');
  const { createLogger } = await import('../../daemon/log.js');
  const log = createLogger();
  let daemon;
  try {
    daemon = await startDaemonServer({
      home,
      listen,
      allowPublic: opts.allowPublic ?? false,
      ...(opts.maxLoops !== undefined ? { maxLoops: opts.maxLoops } : {}),
      config: readConfig(),
      ...(Number.isInteger(helloTimeout) && helloTimeout > 0 ? { helloTimeoutMs: helloTimeout } : {}),
      ...(opts.zitiService ? { ziti: { identityFile: zitiIdentity!, backend: opts.zitiBackend ?? 'auto' } } : {}),
      log,
    });
  } catch (err) {
    if (err instanceof DaemonSetupError) throw new UserError(err.message);
    throw err;
  }
  const ready = `ralph daemon: listening on ${daemon.addresses.join(' ')}`;
  log.info(ready.replace(/^ralph daemon: /, ''));
  process.stdout.write(ready + '\n');

  await new Promise<void>((resolveStop) => {
    onStop = () => {
      log.info(`${stopSignal}: shutting down (loops keep running)`);
      daemon.close().then(resolveStop, (err: Error) => {
        log.error(`shutdown: ${err.message}`);
        resolveStop();
      });
    };
    if (stopSignal) onStop();
  });
  log.info('stopped');
  process.exit(0);
}
