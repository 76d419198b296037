// A loop of a real agent CLI against its fake model API, driven through the `ralph` CLI: the fake,
// the agent's private world (test/helpers/agent-clis.ts), a task repo, and what a test asks of it.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FakeResponsesApi, ralphWorker, type Script } from '../fixtures/openai-responses-api.js';
import { codexWorld, FAKE_OPENAI_KEY, opencodeWorld, OutboundTrap, type AgentWorld } from './agent-clis.js';
import { CliWorld } from './cli.js';
import type { TaskRepo } from './task.js';

export interface AgentLoopSetup {
  w: CliWorld;
  api: FakeResponsesApi;
  trap: OutboundTrap;
  agent: AgentWorld;
  repo: TaskRepo;
  /** A file whose existence lets a waiting shell command go on. */
  go: string;
  /** `ralph run <repo> --agent <name>`; returns the loop id. */
  runLoop(args?: string[]): Promise<string>;
  /** `ralph logs <id>` as a terminal would show it (escapes dropped, a carriage return starts the line over). */
  logs(id: string): Promise<string>;
  cleanup(): Promise<void>;
}

export async function agentLoopSetup(name: 'codex' | 'opencode', opts: { script?: Script; key?: string; stories?: number } = {}): Promise<AgentLoopSetup> {
  const w = new CliWorld(`ralph-${name}`);
  const api = new FakeResponsesApi(opts.script ?? ralphWorker, FAKE_OPENAI_KEY);
  const trap = await new OutboundTrap().start();
  const worldOpts = { baseUrl: await api.start(), trap, key: opts.key ?? FAKE_OPENAI_KEY };
  const agent = name === 'codex' ? codexWorld({ ...worldOpts, model: 'ralph-fake-model' }) : opencodeWorld(worldOpts);
  const repo = w.repo({ stories: opts.stories ?? 2 });
  return {
    w,
    api,
    trap,
    agent,
    repo,
    go: join(agent.home, 'go'),
    async runLoop(args = []) {
      const r = await w.ralph(['run', repo.dir, '--agent', name, '--max-iterations', '4', ...args], { env: agent.env });
      if (r.code !== 0) throw new Error(`ralph run --agent ${name} failed (${r.code}): ${r.stderr}`);
      return r.stdout.trim();
    },
    async logs(id) {
      const r = await w.ralph(['logs', id], { env: agent.env });
      // eslint-disable-next-line no-control-regex
      const text = r.stdout.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r\n/g, '\n');
      return text
        .split('\n')
        .map((l) => l.slice(l.lastIndexOf('\r') + 1))
        .join('\n');
    },
    async cleanup() {
      // A command still waiting for the go file goes on (and ends) rather than spin in a removed dir.
      try {
        writeFileSync(join(agent.home, 'go'), '');
      } catch {
        /* its home is gone already */
      }
      await w.cleanup();
      await api.close();
      await trap.close();
      agent.cleanup();
    },
  };
}
