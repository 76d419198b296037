// `ralph run --install-agent`: installs a missing agent CLI into $RALPH_HOME/agents with npm, as a
// daemon does before a pushed loop starts (same lock, same checks), with progress on the terminal.

import { agentPreflight } from '../agents/registry.js';
import { ensureAgentInstalled } from '../install/agents.js';
import { readConfig } from '../store/config.js';
import type { HomePaths } from '../store/paths.js';

export async function installAgentsFor(paths: HomePaths, agents: string[], progress: (line: string) => void): Promise<void> {
  const config = readConfig();
  // An agent that would refuse to run here is not worth a download.
  for (const agent of agents) {
    const refusal = agentPreflight(agent);
    if (refusal) throw new Error(refusal);
  }
  for (const agent of agents) await ensureAgentInstalled(agent, paths, config, progress);
}
