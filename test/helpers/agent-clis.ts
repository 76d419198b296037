// The real agent CLIs in tests: installed from npm at pinned versions (scripts/install-test-agents.mjs,
// cached between runs), each given its own HOME and config that point it at a local fake of its model
// API, with its telemetry, update checks and plugin downloads off. Anything it still tries to send
// elsewhere goes to an outbound trap on 127.0.0.1 (its HTTP(S) proxy), which refuses and records it,
// so a test can assert that nothing tried to leave the machine.

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { ROOT } from './env.js';

/** The bin dir of a pinned agent CLI, installing it first if the cache does not have it. */
export function agentBinDir(name: string): string {
  try {
    return execFileSync(process.execPath, [join(ROOT, 'scripts', 'install-test-agents.mjs'), name], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 600_000 })
      .toString()
      .trim();
  } catch (err) {
    const e = err as { stderr?: Buffer; message: string };
    throw new Error(`cannot install the ${name} CLI for the tests: ${e.stderr?.toString().trim() || e.message}`);
  }
}

/**
 * Whether a pinned agent CLI can be had (installing it if needed). Without it (no npm registry) its
 * suites skip with one line, unless RALPH_REQUIRE_AGENTS=1 (CI): then they fail.
 */
export function agentAvailable(name: string): boolean {
  try {
    agentBinDir(name);
    return true;
  } catch (err) {
    if (process.env.RALPH_REQUIRE_AGENTS === '1') throw new Error(`RALPH_REQUIRE_AGENTS=1 but ${(err as Error).message}`);
    console.log(`skipping the ${name} suite: ${(err as Error).message}`);
    return false;
  }
}

/**
 * A shell command (for an agent's scripted tool call) that waits for the test to create `path`, then
 * runs `then`. It begins `while [ ! -e <path> ]` (what the tests look for in the logs). The wait is
 * bounded (`maxSeconds`, 300 by default): a test that fails before opening its gate leaves no shell
 * spinning; a wait that runs out does not run `then`. Cleanups open every gate anyway.
 */
export function gatedCommand(path: string, then: string, maxSeconds = 300): string {
  return `while [ ! -e ${path} ] && [ $((ralph_gate_n+=1)) -le ${maxSeconds * 10} ]; do sleep 0.1; done; [ -e ${path} ] && ${then}`;
}

/** A proxy on 127.0.0.1 that refuses every request and records where it was going. */
export class OutboundTrap {
  /** `CONNECT host:port` or `GET http://…`, in arrival order. */
  readonly attempts: string[] = [];
  private server: Server;

  constructor() {
    this.server = createServer((req, res) => {
      this.attempts.push(`${req.method} ${req.url}`);
      req.socket.on('error', () => {});
      res.writeHead(502).end();
    });
    this.server.on('connect', (req, socket) => {
      this.attempts.push(`CONNECT ${req.url}`);
      socket.on('error', () => {}); // the client may reset it first
      socket.end('HTTP/1.1 502 Bad Gateway\r\n\r\n');
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return this;
  }

  /** Proxy settings that send every non-loopback request here. */
  get env(): Record<string, string> {
    const url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    const noProxy = '127.0.0.1,localhost,::1';
    return { HTTPS_PROXY: url, HTTP_PROXY: url, ALL_PROXY: url, https_proxy: url, http_proxy: url, all_proxy: url, NO_PROXY: noProxy, no_proxy: noProxy };
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** An agent CLI's private world: its HOME, its config, the environment that runs it. */
export interface AgentWorld {
  home: string;
  /** Environment for the agent (or for `ralph run`, which passes it on): PATH, HOME, config, key, proxy. */
  env: Record<string, string>;
  cleanup(): void;
}

/** The key the fake API expects; any other is answered 401. */
export const FAKE_OPENAI_KEY = 'sk-ralph-fake-key';

/**
 * Codex against a fake Responses API: a custom model provider whose base_url is the fake, its key
 * from RALPH_FAKE_OPENAI_KEY, and everything that would phone home switched off.
 */
export function codexWorld(opts: { baseUrl: string; trap: OutboundTrap; key?: string; model?: string }): AgentWorld {
  const home = realpathSync(mkdtempSync(join(tmpdir(), 'ralph-codex-home-')));
  const codexHome = join(home, '.codex');
  mkdirSync(codexHome);
  writeFileSync(
    join(codexHome, 'config.toml'),
    [
      `model = "${opts.model ?? 'gpt-5.2-codex'}"`,
      'model_provider = "ralph-fake"',
      'check_for_update_on_startup = false',
      '[analytics]',
      'enabled = false',
      '[feedback]',
      'enabled = false',
      '[otel]',
      'exporter = "none"',
      'metrics_exporter = "none"',
      'trace_exporter = "none"',
      // Plugins sync a catalogue from the network at start.
      '[features]',
      'plugins = false',
      'remote_plugin = false',
      'apps = false',
      '[model_providers.ralph-fake]',
      'name = "ralph fake"',
      `base_url = "${opts.baseUrl}"`,
      'env_key = "RALPH_FAKE_OPENAI_KEY"',
      'wire_api = "responses"',
      'supports_websockets = false',
      '',
    ].join('\n'),
  );
  const bin = agentBinDir('codex');
  return {
    home,
    env: {
      PATH: [bin, process.env.PATH ?? ''].join(delimiter),
      HOME: home,
      CODEX_HOME: codexHome,
      RALPH_FAKE_OPENAI_KEY: opts.key ?? FAKE_OPENAI_KEY,
      ...opts.trap.env,
    },
    cleanup: () => rmSync(home, { recursive: true, force: true }),
  };
}

/**
 * OpenCode against a fake Responses API: a provider of its own (`@ai-sdk/openai`, bundled in the
 * CLI) whose baseURL is the fake, its key from RALPH_FAKE_OPENAI_KEY, and every download and phone
 * home it has a switch for switched off. What it still tries: installing its plugin types package
 * into its config dir from the npm registry in the background (no switch; the trap refuses it).
 */
export function opencodeWorld(opts: { baseUrl: string; trap: OutboundTrap; key?: string }): AgentWorld {
  const home = realpathSync(mkdtempSync(join(tmpdir(), 'ralph-opencode-home-')));
  const configDir = join(home, '.config', 'opencode');
  mkdirSync(configDir, { recursive: true });
  writeFileSync(
    join(configDir, 'opencode.json'),
    JSON.stringify(
      {
        $schema: 'https://opencode.ai/config.json',
        autoupdate: false,
        share: 'disabled',
        model: 'ralph-fake/ralph-fake-model',
        provider: {
          'ralph-fake': {
            npm: '@ai-sdk/openai',
            name: 'ralph fake',
            options: { baseURL: opts.baseUrl, apiKey: '{env:RALPH_FAKE_OPENAI_KEY}' },
            models: { 'ralph-fake-model': { name: 'ralph fake model' } },
          },
        },
      },
      null,
      2,
    ),
  );
  const bin = agentBinDir('opencode');
  return {
    home,
    env: {
      PATH: [bin, process.env.PATH ?? ''].join(delimiter),
      HOME: home,
      XDG_CONFIG_HOME: join(home, '.config'),
      XDG_DATA_HOME: join(home, '.local', 'share'),
      XDG_CACHE_HOME: join(home, '.cache'),
      XDG_STATE_HOME: join(home, '.local', 'state'),
      OPENCODE_DISABLE_AUTOUPDATE: '1',
      OPENCODE_DISABLE_MODELS_FETCH: '1',
      OPENCODE_DISABLE_DEFAULT_PLUGINS: '1',
      OPENCODE_DISABLE_LSP_DOWNLOAD: '1',
      OPENCODE_DISABLE_SHARE: '1',
      OPENCODE_DISABLE_CLAUDE_CODE: '1',
      OPENCODE_DISABLE_EXTERNAL_SKILLS: '1',
      RALPH_FAKE_OPENAI_KEY: opts.key ?? FAKE_OPENAI_KEY,
      ...opts.trap.env,
    },
    cleanup: () => rmSync(home, { recursive: true, force: true }),
  };
}

/** What OpenCode tries to fetch with no switch to stop it (see opencodeWorld). */
export const OPENCODE_BACKGROUND_FETCHES = ['CONNECT registry.npmjs.org:443'];
