// The config file: named remotes and daemon settings. Validated when read; written atomically, 0600.

import { closeSync, fchmodSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { configPath } from './paths.js';
import { TOKEN_SHAPE } from './token.js';

export interface RemoteConfig {
  name: string;
  /** `tcp://host:port` with a token, `ziti:<service>` with an identity, or `ssh://[user@]host[:port]`. */
  address: string;
  /** Identity file for a ziti address (RALPH_ZITI_IDENTITY overrides when unset). */
  zitiIdentity?: string;
  /** The daemon's token (a copy of its $RALPH_HOME/daemon.token), for a tcp address. */
  token?: string;
  /** The `ralph` program on the box, for an ssh address (default: `ralph` on its PATH). */
  remoteRalph?: string;
  /** The git remote this ralph remote was added as (default `ralph-remote`). */
  gitRemote?: string;
  /** The repo name on the daemon. */
  repo?: string;
}

export interface Config {
  remotes: Record<string, RemoteConfig>;
  /** Agent name → npm package the daemon installs when that agent's CLI is missing. */
  agentPackages?: Record<string, string>;
  /** Most loops a daemon runs at once. */
  maxConcurrentLoops?: number;
  /** What runs when a loop ends or pauses (`ralph tui`, `watch`, `attach`). */
  notify?: NotifyConfig;
}

export interface NotifyConfig {
  /** Program and arguments (never a shell string); the loop's id, status and reason come in RALPH_LOOP_* variables. */
  command: string[];
}

export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

function checkConfig(value: unknown, path: string): Config {
  const bad = (what: string) => new ConfigError(`${path}: ${what}; fix or remove the file`);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('not a JSON object');
  const v = value as Record<string, unknown>;
  const remotes: Record<string, RemoteConfig> = {};
  if (v.remotes !== undefined) {
    if (typeof v.remotes !== 'object' || v.remotes === null || Array.isArray(v.remotes)) throw bad('"remotes" must be an object');
    for (const [name, r] of Object.entries(v.remotes as Record<string, unknown>)) {
      if (typeof r !== 'object' || r === null || Array.isArray(r)) throw bad(`remote ${name} must be an object`);
      const rr = r as Record<string, unknown>;
      if (rr.address === undefined) throw bad(`remote ${name} has no "address"`);
      for (const k of ['address', 'zitiIdentity', 'gitRemote', 'repo', 'token', 'remoteRalph'] as const) {
        if (rr[k] !== undefined && typeof rr[k] !== 'string') throw bad(`remote ${name}: "${k}" must be a string`);
      }
      if (rr.token !== undefined && !TOKEN_SHAPE.test(rr.token as string)) {
        throw bad(`remote ${name}: "token" is not a daemon token (one word of 16 to 256 letters and digits, as in the box's $RALPH_HOME/daemon.token)`);
      }
      remotes[name] = { ...(rr as unknown as RemoteConfig), name };
    }
  }
  const config: Config = { remotes };
  if (v.agentPackages !== undefined) {
    if (typeof v.agentPackages !== 'object' || v.agentPackages === null) throw bad('"agentPackages" must be an object');
    for (const [k, p] of Object.entries(v.agentPackages as Record<string, unknown>)) {
      if (typeof p !== 'string') throw bad(`agentPackages.${k} must be a string`);
    }
    config.agentPackages = v.agentPackages as Record<string, string>;
  }
  if (v.maxConcurrentLoops !== undefined) {
    if (typeof v.maxConcurrentLoops !== 'number' || !Number.isInteger(v.maxConcurrentLoops) || v.maxConcurrentLoops < 1) {
      throw bad('"maxConcurrentLoops" must be a positive integer');
    }
    config.maxConcurrentLoops = v.maxConcurrentLoops;
  }
  if (v.notify !== undefined) config.notify = checkNotify(v.notify, bad);
  return config;
}

function checkNotify(value: unknown, bad: (what: string) => ConfigError): NotifyConfig {
  const command = (value as { command?: unknown } | null)?.command;
  const isArgv = Array.isArray(command) && command.length > 0 && command.every((a) => typeof a === 'string') && command[0] !== '';
  if (typeof value !== 'object' || value === null || !isArgv) {
    throw bad('"notify.command" must be a program and its arguments, e.g. ["notify-send", "ralph"]');
  }
  return { command: [...(command as string[])] };
}

export function readConfig(path = configPath()): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { remotes: {} };
    throw new ConfigError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`${path} is not valid JSON (${(err as Error).message}); fix or remove the file`);
  }
  return checkConfig(value, path);
}

export function writeConfig(config: Config, path = configPath()): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  // The file may hold tokens: a tmp file left by an earlier crash (with whatever mode it had) is
  // removed, the new one is created by us alone ('wx') and is 0600 whatever the umask, before a byte
  // of it is written.
  rmSync(tmp, { force: true });
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    fchmodSync(fd, 0o600);
    writeSync(fd, JSON.stringify(config, null, 2) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}
