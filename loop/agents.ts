// Agent profiles as data: which CLI to run and how it takes the prompt. A custom agent is the
// user's own shell command (`--agent-cmd`), the one place ralph runs `sh -c`.

import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import { LoopSetupError } from './errors.js';

export const AGENT_NAMES = ['claude', 'opencode', 'codex', 'amp'] as const;
export type AgentName = (typeof AGENT_NAMES)[number];
/** What the `agent` column holds for a `--agent-cmd` loop. */
export const CUSTOM_AGENT = 'custom';

export interface AgentProfile {
  name: AgentName;
  /** The executable, looked up on PATH (and the extra search dirs). */
  command: string;
  /** Arguments for one non-interactive run with this prompt. */
  args(prompt: string): string[];
  /** The npm package that provides the command (for the error message and auto-install). */
  npmPackage: string;
}

export const AGENT_PROFILES: Readonly<Record<AgentName, AgentProfile>> = {
  claude: {
    name: 'claude',
    command: 'claude',
    args: (prompt) => ['--print', '--dangerously-skip-permissions', prompt],
    npmPackage: '@anthropic-ai/claude-code',
  },
  opencode: {
    name: 'opencode',
    command: 'opencode',
    args: (prompt) => ['run', prompt],
    npmPackage: 'opencode-ai',
  },
  codex: {
    name: 'codex',
    command: 'codex',
    // Without it `codex exec` runs read-only in its sandbox and cannot commit; this is the codex
    // equivalent of claude's --dangerously-skip-permissions (a Ralph loop runs unattended).
    args: (prompt) => ['exec', '--dangerously-bypass-approvals-and-sandbox', prompt],
    npmPackage: '@openai/codex',
  },
  amp: {
    name: 'amp',
    command: 'amp',
    args: (prompt) => ['--execute', prompt],
    npmPackage: '@sourcegraph/amp',
  },
};

export function isAgentName(name: string): name is AgentName {
  return (AGENT_NAMES as readonly string[]).includes(name);
}

const MAX_PROMPT_BYTES = 120 * 1024;

/** What the runner spawns in the PTY for one iteration. */
export interface AgentCommand {
  file: string;
  args: string[];
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

export function agentNotFoundMessage(profile: AgentProfile): string {
  return `agent CLI \`${profile.command}\` not found on PATH; install it (npm i -g ${profile.npmPackage}) or pass --agent-cmd`;
}

/** Checks that a profile's CLI can be found; throws the one-line error the user sees when not. */
export function requireAgent(name: AgentName, extraDirs: readonly string[] = [], env: NodeJS.ProcessEnv = process.env): string {
  const profile = AGENT_PROFILES[name];
  const path = findExecutable(profile.command, extraDirs, env);
  if (path === null) throw new LoopSetupError(agentNotFoundMessage(profile));
  return path;
}

/** The command line for one iteration of a loop's agent. Throws LoopSetupError when it cannot be run. */
export function agentCommand(
  agent: { agent: string; agentCmd: string | null },
  prompt: string,
  extraDirs: readonly string[] = [],
  env: NodeJS.ProcessEnv = process.env,
): AgentCommand {
  if (agent.agentCmd !== null) return { file: '/bin/sh', args: ['-c', agent.agentCmd] };
  if (!isAgentName(agent.agent)) {
    throw new LoopSetupError(`unknown agent ${JSON.stringify(agent.agent)}; use one of ${AGENT_NAMES.join(', ')} or --agent-cmd`);
  }
  const file = requireAgent(agent.agent, extraDirs, env);
  // The prompt travels as one argv string, which Linux caps at 128 KiB (MAX_ARG_STRLEN).
  const promptBytes = Buffer.byteLength(prompt);
  if (promptBytes > MAX_PROMPT_BYTES) {
    throw new LoopSetupError(`the prompt is ${Math.ceil(promptBytes / 1024)} KiB; ${agent.agent} takes it as one argument of at most 128 KiB: shorten prompt.md`);
  }
  return { file, args: AGENT_PROFILES[agent.agent].args(prompt) };
}
