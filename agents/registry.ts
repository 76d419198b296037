// The agents ralph knows, by name, and how to find and start one. A custom agent is the user's own
// shell command (`--agent-cmd`), the one place ralph runs `sh -c`.

import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { ampProfile } from './amp.js';
import { claudeProfile } from './claude.js';
import { codexProfile } from './codex.js';
import { opencodeProfile } from './opencode.js';
import type { AgentLaunch, AgentProfile } from './types.js';

/** A loop's agent cannot be set up: the message is the one line the user sees. */
export class AgentSetupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentSetupError';
  }
}

export const AGENT_NAMES = ['claude', 'opencode', 'codex', 'amp'] as const;
export type AgentName = (typeof AGENT_NAMES)[number];
/** What the `agent` column holds for a `--agent-cmd` loop. */
export const CUSTOM_AGENT = 'custom';

export const AGENT_PROFILES: Readonly<Record<AgentName, AgentProfile>> = {
  claude: claudeProfile,
  opencode: opencodeProfile,
  codex: codexProfile,
  amp: ampProfile,
};

export function isAgentName(name: string): name is AgentName {
  return (AGENT_NAMES as readonly string[]).includes(name);
}

/** What the runner starts for one iteration: the executable and how it runs. */
export interface AgentCommand {
  /** A profile's name, or CUSTOM_AGENT. */
  agent: string;
  file: string;
  launch: AgentLaunch;
  /** Environment defaults of the profile (applied where the user's environment has none). */
  envDefaults: Readonly<Record<string, string>>;
}

function isExecutableFile(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Resolves a command name to an executable path: on PATH first, then in `extraDirs` (e.g. the
 * daemon's auto-installed agents). A name with a slash is taken as a path. null when not found.
 */
export function findExecutable(cmd: string, extraDirs: readonly string[] = [], env: NodeJS.ProcessEnv = process.env): string | null {
  if (cmd.includes('/')) {
    const path = isAbsolute(cmd) ? cmd : resolve(cmd);
    return isExecutableFile(path) ? path : null;
  }
  const dirs = [...(env.PATH ?? '').split(delimiter), ...extraDirs].filter((d) => d !== '');
  for (const dir of dirs) {
    const path = join(dir, cmd);
    if (isExecutableFile(path)) return path;
  }
  return null;
}

export function agentNotFoundMessage(profile: AgentProfile, extraDirs: readonly string[] = []): string {
  const where = ['PATH', ...extraDirs].join(' or ');
  return `agent CLI \`${profile.command}\` not found on ${where}; install it (npm i -g ${profile.npmPackage}), or let ralph install it (ralph run --install-agent), or pass --agent-cmd`;
}

/** Checks that a profile's CLI can be found; throws the one-line error the user sees when not. */
export function requireAgent(name: AgentName, extraDirs: readonly string[] = [], env: NodeJS.ProcessEnv = process.env): string {
  const profile = AGENT_PROFILES[name];
  const path = findExecutable(profile.command, extraDirs, env);
  if (path === null) throw new AgentSetupError(agentNotFoundMessage(profile, extraDirs));
  return path;
}

/** Why `name` cannot run in this environment (one line), or null; unknown names pass (checked elsewhere). */
export function agentPreflight(name: string, env: NodeJS.ProcessEnv = process.env, uid: number | null = process.getuid?.() ?? null): string | null {
  return isAgentName(name) ? (AGENT_PROFILES[name].preflight?.(env, uid) ?? null) : null;
}

/**
 * How one iteration of a loop's agent starts: `agent` is a profile name, or with `agentCmd` the
 * user's own command. Throws AgentSetupError when it cannot be run.
 */
export function agentCommand(
  loop: { agent: string; agentCmd: string | null },
  prompt: string,
  extraDirs: readonly string[] = [],
  env: NodeJS.ProcessEnv = process.env,
): AgentCommand {
  if (loop.agentCmd !== null) {
    return { agent: CUSTOM_AGENT, file: '/bin/sh', launch: { mode: 'pty', args: ['-c', loop.agentCmd] }, envDefaults: {} };
  }
  if (!isAgentName(loop.agent)) {
    throw new AgentSetupError(`unknown agent ${JSON.stringify(loop.agent)}; use one of ${AGENT_NAMES.join(', ')} or --agent-cmd`);
  }
  const profile = AGENT_PROFILES[loop.agent];
  const refusal = agentPreflight(loop.agent, env);
  if (refusal) throw new AgentSetupError(refusal);
  const file = requireAgent(loop.agent, extraDirs, env);
  // Every profile takes the prompt on stdin: no argument-length limit applies to it.
  return { agent: loop.agent, file, launch: profile.launch(prompt), envDefaults: profile.envDefaults ?? {} };
}
