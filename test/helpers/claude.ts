// The real Claude Code CLI for tests: the version npm installs for Node 20 (2.1.197: later ones need
// Node 22), pinned in test/fixtures/agent-clis.json and cached between runs (helpers/agent-clis.ts);
// RALPH_TEST_CLAUDE_PIN=claude-latest takes the newest instead (test/claude-latest.test.ts),
// pointed at the local fake of the Anthropic API (test/fixtures/anthropic-api.ts) with its own HOME
// and an outbound trap (helpers/agent-clis.ts) as its HTTP(S) proxy that records anything it tries to
// send beyond 127.0.0.1 (the tests assert nothing did). Without the CLI (and no npm registry to get it) the suites that
// need it skip with one line, unless RALPH_REQUIRE_AGENTS=1 (CI): then they fail.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FakeAnthropicApi, type Script } from '../fixtures/anthropic-api.js';
import { agentAvailable, agentBinDir, gatedCommand, OutboundTrap } from './agent-clis.js';
import { CliWorld } from './cli.js';

/**
 * A CliWorld whose `claude` is the real CLI talking to a fake model. IS_SANDBOX=1 is set on purpose:
 * these tests run as root in CI, where Claude Code refuses to run unattended without it.
 */
export class ClaudeWorld extends CliWorld {
  readonly api: FakeAnthropicApi;
  /** Claude Code's proxy: what it tried to send off the machine (tests assert it stays empty). */
  readonly trap = new OutboundTrap();
  private readonly claudeHome: string;
  private readonly binDir: string;
  private readonly gates: string[] = [];

  private constructor(binDir: string, script?: Script) {
    super('ralph-claude');
    this.binDir = binDir;
    this.api = new FakeAnthropicApi(script);
    this.claudeHome = mkdtempSync(join(tmpdir(), 'ralph-claude-home-'));
  }

  /** A world with the fake model listening, or null (after saying why) when there is no CLI. */
  static async create(script?: Script): Promise<ClaudeWorld | null> {
    const pin = process.env.RALPH_TEST_CLAUDE_PIN || 'claude';
    if (!agentAvailable(pin)) return null;
    const w = new ClaudeWorld(agentBinDir(pin), script);
    await w.api.start();
    await w.trap.start();
    return w;
  }

  override get env(): NodeJS.ProcessEnv {
    return { ...super.env, ...this.claudeEnv() };
  }

  /** What the agent's process needs: the CLI on PATH, the fake model, a HOME of its own, nothing phoning home (and the trap as its proxy). */
  claudeEnv(): Record<string, string> {
    return {
      PATH: `${this.binDir}:${process.env.PATH ?? ''}`,
      HOME: this.claudeHome,
      ANTHROPIC_BASE_URL: this.api.baseUrl,
      ANTHROPIC_API_KEY: 'sk-ant-fake-key-for-tests',
      DISABLE_TELEMETRY: '1',
      DISABLE_AUTOUPDATER: '1',
      DISABLE_ERROR_REPORTING: '1',
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
      IS_SANDBOX: '1',
      ...this.trap.env,
    };
  }

  /** `ralph run --agent claude` on a task repo with `stories` stories; returns the loop id. */
  async runClaude(opts: { stories?: number; args?: string[]; env?: Record<string, string> } = {}): Promise<string> {
    const repo = this.repo({ stories: opts.stories ?? 2 });
    const r = await this.ralph(['run', repo.dir, '--agent', 'claude', ...(opts.args ?? [])], { ...(opts.env ? { env: opts.env } : {}) });
    if (r.code !== 0) throw new Error(`ralph run --agent claude failed (${r.code}): ${r.stderr}`);
    return r.stdout.trim();
  }

  /** A file a scripted tool call waits for: the test opens the gate when it has seen what it wanted. */
  gate(name: string): { path: string; command: (then: string) => string; open(): void } {
    const path = join(this.claudeHome, `gate-${name}`);
    this.gates.push(path);
    return {
      path,
      command: (then) => gatedCommand(path, then),
      open: () => writeFileSync(path, 'open\n'),
    };
  }

  override async cleanup(): Promise<void> {
    // A tool call still waiting at a gate goes on (and ends) rather than spin in a removed dir.
    for (const g of this.gates) writeFileSync(g, 'open\n');
    try {
      await super.cleanup();
    } finally {
      await this.api.close();
      await this.trap.close();
      rmSync(this.claudeHome, { recursive: true, force: true });
    }
  }
}
