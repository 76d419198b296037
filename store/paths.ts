// Where ralph keeps its data and config. One place computes every path.

import { chmodSync, mkdirSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export function ralphHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.RALPH_HOME) return resolve(env.RALPH_HOME);
  const data = env.XDG_DATA_HOME || join(homedir(), '.local', 'share');
  return join(data, 'ralph');
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  if (env.RALPH_CONFIG) return resolve(env.RALPH_CONFIG);
  const config = env.XDG_CONFIG_HOME || join(homedir(), '.config');
  return join(config, 'ralph', 'config.json');
}

export interface HomePaths {
  home: string;
  db: string;
  sockets: string;
  logs: string;
  repos: string;
  worktrees: string;
  agents: string;
  /** Commands of the agent CLIs ralph installed itself (npm prefix `agents`). */
  agentsBin: string;
  locks: string;
  daemonSocket: string;
  /** The secret a tcp connection to the daemon must present (daemon/token.ts). */
  daemonToken: string;
  socketFor(loopId: string): string;
  logFor(loopId: string): string;
}

export function homePaths(home = ralphHome()): HomePaths {
  return {
    home,
    db: join(home, 'ralph.db'),
    sockets: join(home, 'sockets'),
    logs: join(home, 'logs'),
    repos: join(home, 'repos'),
    worktrees: join(home, 'worktrees'),
    agents: join(home, 'agents'),
    agentsBin: join(home, 'agents', 'node_modules', '.bin'),
    locks: join(home, 'locks'),
    daemonSocket: join(home, 'daemon.sock'),
    daemonToken: join(home, 'daemon.token'),
    socketFor: (id) => join(home, 'sockets', `${id}.sock`),
    logFor: (id) => join(home, 'logs', `${id}.log`),
  };
}

/** Creates a private directory (0700), tightening one that already exists. */
export function ensurePrivateDir(dir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  return dir;
}
