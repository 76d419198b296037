// The real Claude Code CLI for tests: the version npm installs for this Node (pinned), cached between
// runs, pointed at the local fake of the Anthropic API (test/fixtures/anthropic-api.ts) with its own
// HOME and no traffic beyond 127.0.0.1. Without the CLI (and no npm registry to get it) the suites
// that need it skip with one line, unless RALPH_REQUIRE_AGENTS=1 (CI): then they fail.

import { existsSync, mkdirSync, mkdtempSync, rmSync, rmdirSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { FakeAnthropicApi, type Script } from '../fixtures/anthropic-api.js';
import { CliWorld } from './cli.js';
import { runCommand } from './env.js';

/** On Node 20 npm picks 2.1.197: later versions need Node 22. */
export const CLAUDE_CODE_VERSION = '2.1.197';

function cacheDir(): string {
  return join(process.env.RALPH_TEST_AGENTS_DIR ?? join(homedir(), '.cache', 'ralph-test-agents'), `claude-${CLAUDE_CODE_VERSION}`);
}

/** The directory holding a working `claude` command (installed first if needed), or the reason there is none. */
export async function claudeBinDir(): Promise<{ dir: string } | { skip: string }> {
  const prefix = cacheDir();
  const dir = join(prefix, 'node_modules', '.bin');
  const works = async () => (await runCommand(join(dir, 'claude'), ['--version'], { timeoutMs: 60_000 }).catch(() => null))?.code === 0;
  if (existsSync(join(dir, 'claude')) && (await works())) return { dir };
  // Two test files may get here at once: one installs, the other waits for it.
  const lock = `${prefix}.lock`;
  mkdirSync(join(prefix, '..'), { recursive: true });
  for (let waited = 0; ; waited += 500) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (waited > 600_000) return { skip: `another test run holds ${lock}` };
      await sleep(500);
      if (existsSync(join(dir, 'claude')) && (await works())) return { dir };
    }
  }
  try {
    mkdirSync(prefix, { recursive: true });
    writeFileSync(join(prefix, 'package.json'), '{"name":"ralph-test-agents","private":true}\n');
    const r = await runCommand('npm', ['install', '--prefix', prefix, '--no-audit', '--no-fund', `@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}`], {
      timeoutMs: 600_000,
    });
    if (r.code !== 0 || !(await works())) return skipOrFail(`npm could not install @anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}: ${r.stderr.trim().split('\n').slice(-2).join(' ')}`);
    return { dir };
  } finally {
    rmdirSync(lock);
  }
}

function skipOrFail(why: string): { skip: string } {
  if (process.env.RALPH_REQUIRE_AGENTS === '1') throw new Error(`RALPH_REQUIRE_AGENTS=1 but ${why}`);
  return { skip: `skipping the Claude Code suite: ${why}` };
}

/**
 * A CliWorld whose `claude` is the real CLI talking to a fake model. IS_SANDBOX=1 is set on purpose:
 * these tests run as root in CI, where Claude Code refuses to run unattended without it.
 */
export class ClaudeWorld extends CliWorld {
  readonly api: FakeAnthropicApi;
  private readonly claudeHome: string;
  private readonly binDir: string;

  private constructor(binDir: string, script?: Script) {
    super('ralph-claude');
    this.binDir = binDir;
    this.api = new FakeAnthropicApi(script);
    this.claudeHome = mkdtempSync(join(tmpdir(), 'ralph-claude-home-'));
  }

  /** A world with the fake model listening, or null (after saying why) when there is no CLI. */
  static async create(script?: Script): Promise<ClaudeWorld | null> {
    const found = await claudeBinDir();
    if ('skip' in found) {
      console.log(found.skip);
      return null;
    }
    const w = new ClaudeWorld(found.dir, script);
    await w.api.start();
    return w;
  }

  override get env(): NodeJS.ProcessEnv {
    return { ...super.env, ...this.claudeEnv() };
  }

  /** What the agent's process needs: the CLI on PATH, the fake model, a HOME of its own, nothing phoning home. */
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
    return {
      path,
      command: (then) => `while [ ! -e ${path} ]; do sleep 0.1; done; ${then}`,
      open: () => writeFileSync(path, 'open\n'),
    };
  }

  override async cleanup(): Promise<void> {
    try {
      await super.cleanup();
    } finally {
      await this.api.close();
      rmSync(this.claudeHome, { recursive: true, force: true });
    }
  }
}
