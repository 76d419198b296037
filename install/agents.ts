// Agent CLI auto-install: before a loop starts, make sure the agent's command exists — on PATH or in
// $RALPH_HOME/agents — and if not, install its npm package there, once, under a cross-process lock.

import { execa } from 'execa';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, realpathSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { AGENT_NAMES, AGENT_PROFILES } from '../agents/registry.js';
import type { Config } from '../store/config.js';
import type { HomePaths } from '../store/paths.js';
import { INSTALL_LOCK_TIMEOUT_MS, NPM_INSTALL_TIMEOUT_MS, VERSION_CHECK_TIMEOUT_MS } from './limits.js';
import { withLock } from './lock.js';

/** The npm package of each known agent's CLI (config.agentPackages overrides or adds). */
export const DEFAULT_AGENT_PACKAGES: Readonly<Record<string, string>> = Object.fromEntries(
  AGENT_NAMES.map((name) => [name, AGENT_PROFILES[name].npmPackage]),
);

/** The command each known agent needs; an agent not listed needs a command of its own name. */
export const AGENT_BINARIES: Readonly<Record<string, string>> = Object.fromEntries(
  AGENT_NAMES.map((name) => [name, AGENT_PROFILES[name].command]),
);

/** Agents that run a user's own command (--agent-cmd) and need nothing installed. */
const CUSTOM_AGENTS = new Set(['custom']);


export class AgentInstallError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AgentInstallError';
  }
}

export function agentBinary(agent: string): string {
  // Own keys only: `constructor` is no agent, and Object.prototype's is no command.
  return Object.hasOwn(AGENT_BINARIES, agent) ? AGENT_BINARIES[agent]! : agent;
}

export function agentPackage(agent: string, config: Config): string | undefined {
  const own = config.agentPackages && Object.hasOwn(config.agentPackages, agent) ? config.agentPackages[agent] : undefined;
  return own ?? (Object.hasOwn(DEFAULT_AGENT_PACKAGES, agent) ? DEFAULT_AGENT_PACKAGES[agent] : undefined);
}

/** The cross-process lock every agent install of this home runs under. */
export function agentInstallLockPath(paths: HomePaths): string {
  return join(paths.locks, 'agents-install.lock');
}

/** $RALPH_HOME/agents/node_modules/.bin */
export function agentsBinDir(paths: HomePaths): string {
  return paths.agentsBin;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** The first executable `name` on PATH, or null. */
export function findOnPath(name: string, pathVar = process.env.PATH ?? ''): string | null {
  for (const dir of pathVar.split(delimiter)) {
    if (dir === '') continue;
    const p = join(dir, name);
    if (isExecutable(p)) return p;
  }
  return null;
}

/**
 * A marker per agent, written only after npm succeeded and the command was found: a failed or
 * interrupted install leaves none, so the next attempt installs again. It records the package
 * spec, so changing config.agentPackages installs the new one.
 */
function markerPath(paths: HomePaths, agent: string): string {
  return join(paths.agents, '.installed', `${agent}.json`);
}

function installedSpec(paths: HomePaths, agent: string): string | null {
  try {
    const v = JSON.parse(readFileSync(markerPath(paths, agent), 'utf8')) as { spec?: unknown };
    return typeof v.spec === 'string' ? v.spec : null;
  } catch {
    return null;
  }
}

/** Is the agent's command installed by us in $RALPH_HOME/agents, from this spec? */
function installedHere(paths: HomePaths, agent: string, spec: string | undefined): boolean {
  if (!isExecutable(join(agentsBinDir(paths), agentBinary(agent)))) return false;
  const marked = installedSpec(paths, agent);
  return marked !== null && (spec === undefined || marked === spec);
}

/**
 * Makes sure `agent`'s CLI can be run. Returns the extra bin dirs the runner should search
 * ($RALPH_HOME/agents/node_modules/.bin when it exists). Progress lines go to `progress`.
 * Throws an AgentInstallError (one or two lines) when the CLI is missing and cannot be installed.
 */
export async function ensureAgentInstalled(
  agent: string,
  paths: HomePaths,
  config: Config,
  progress: (line: string) => void,
): Promise<string[]> {
  const binDir = agentsBinDir(paths);
  const extra = () => (existsSync(binDir) ? [binDir] : []);
  if (CUSTOM_AGENTS.has(agent)) return extra();
  const bin = agentBinary(agent);
  const spec = agentPackage(agent, config);
  if (installedHere(paths, agent, spec)) return extra();
  if (findOnPath(bin)) return extra();
  if (spec === undefined) {
    throw new AgentInstallError(
      `agent ${agent}: no \`${bin}\` command on PATH and no npm package known for it; install it, or set agentPackages.${agent} in the config file`,
    );
  }

  await withLock(
    agentInstallLockPath(paths),
    async () => {
      // Whoever held the lock before us may have installed it.
      if (installedHere(paths, agent, spec)) return;
      progress(`ralph: installing ${agent} (${spec}) with npm…`);
      const started = Date.now();
      await npmInstall(paths, agent, spec);
      if (!isExecutable(join(binDir, bin))) {
        throw new AgentInstallError(`npm installed ${spec} but it provides no \`${bin}\` command; check agentPackages.${agent} in the config file`);
      }
      const picked = installedPackage(join(binDir, bin));
      // A package whose postinstall was skipped leaves a stub that only says the real binary is missing.
      const version = await checkRuns(join(binDir, bin), agent, spec);
      mkdirSync(dirname(markerPath(paths, agent)), { recursive: true });
      writeFileSync(markerPath(paths, agent), JSON.stringify({ spec, version: picked, installedAt: new Date().toISOString() }) + '\n');
      progress(
        `ralph: installed ${agent} ${version} in ${((Date.now() - started) / 1000).toFixed(1)}s` +
          (picked ? ` (npm picked ${picked} for Node ${process.versions.node})` : ''),
      );
    },
    { timeoutMs: INSTALL_LOCK_TIMEOUT_MS, onWait: () => progress(`ralph: waiting for another agent install to finish…`) },
  );
  return extra();
}

/** The package (name@version) npm installed that provides `binPath` (a link into node_modules). */
function installedPackage(binPath: string): string | null {
  try {
    let dir = dirname(realpathSync(binPath));
    for (let i = 0; i < 6 && dir !== dirname(dir); i++, dir = dirname(dir)) {
      const file = join(dir, 'package.json');
      if (!existsSync(file)) continue;
      const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; version?: unknown };
      if (typeof pkg.name === 'string' && typeof pkg.version === 'string') return `${pkg.name}@${pkg.version}`;
    }
  } catch {
    /* not said then */
  }
  return null;
}

/** Runs `<bin> --version`; returns its first line, or throws the one line saying why the CLI does not run. */
async function checkRuns(binPath: string, agent: string, spec: string): Promise<string> {
  const r = await run(binPath, ['--version'], dirname(binPath), { capture: 'both', timeoutMs: VERSION_CHECK_TIMEOUT_MS });
  const said = `${r.stdout ?? ''}\n${r.stderr}`.split('\n').map((l) => l.trim()).filter(Boolean);
  if (r.error || r.code !== 0 || said.some((l) => /not installed|cannot find|not found/i.test(l))) {
    const why = r.error ?? said.find((l) => /not installed|cannot find|not found|error/i.test(l)) ?? said[0] ?? `exit code ${r.code}`;
    throw new AgentInstallError(
      `npm installed ${spec}, but \`${agent} --version\` fails: ${why}; its install script may have been skipped (npm's allow-scripts / ignore-scripts) — reinstall it with scripts allowed`,
    );
  }
  return said[0] ?? '';
}

/** npm, next to this node when there is one there (a daemon under systemd may have a bare PATH). */
function npmCommand(): string {
  const beside = join(dirname(process.execPath), 'npm');
  return existsSync(beside) ? beside : 'npm';
}

async function npmInstall(paths: HomePaths, agent: string, spec: string): Promise<void> {
  mkdirSync(paths.agents, { recursive: true, mode: 0o700 });
  // A package.json of its own keeps npm from walking up to some enclosing project, and records
  // every installed agent so that installing the next one does not prune the others.
  const pkg = join(paths.agents, 'package.json');
  if (!existsSync(pkg)) {
    writeFileSync(pkg, JSON.stringify({ name: 'ralph-agents', private: true, description: 'agent CLIs installed by ralph' }, null, 2) + '\n');
  }
  // The marker goes first: from here until success the agent counts as not installed.
  rmSync(markerPath(paths, agent), { force: true });
  const args = ['install', '--prefix', paths.agents, '--no-audit', '--no-fund', '--no-update-notifier', spec];
  const { code, stderr, error } = await run(npmCommand(), args, paths.agents, {});
  if (error) throw new AgentInstallError(`installing ${agent} (${spec}) failed: cannot run npm: ${error}`);
  if (code !== 0) throw new AgentInstallError(`installing ${agent} (${spec}) with npm failed: ${summarizeNpmError(stderr, code)}`);
}

/**
 * Runs a one-shot command (npm, or an agent's `--version`) with a deadline: stderr (and stdout when
 * asked) captured, a command that cannot be started reported as `error`, not thrown.
 */
async function run(
  cmd: string,
  args: string[],
  cwd: string,
  opts: { capture?: 'stderr' | 'both'; timeoutMs?: number },
): Promise<{ code: number | null; stdout?: string; stderr: string; error?: string }> {
  const timeoutMs = opts.timeoutMs ?? NPM_INSTALL_TIMEOUT_MS;
  // execa: the timeout ends it with SIGTERM, then SIGKILL if it lingers.
  const r = await execa(cmd, args, {
    cwd,
    env: { npm_config_progress: 'false' },
    stdin: 'ignore',
    stdout: opts.capture === 'both' ? 'pipe' : 'ignore',
    reject: false,
    timeout: timeoutMs,
  });
  if (r.failed && r.exitCode === undefined && r.signal === undefined && !r.timedOut) {
    return { code: null, stderr: r.stderr ?? '', error: r.originalMessage ?? r.shortMessage ?? 'it did not start' };
  }
  const stderr = r.timedOut ? `${r.stderr ?? ''}\n${cmd} took longer than ${Math.round(timeoutMs / 1000)} s` : (r.stderr ?? '');
  return { code: r.exitCode ?? null, ...(typeof r.stdout === 'string' ? { stdout: r.stdout } : {}), stderr };
}

/**
 * npm's error output in one line: its `code`, then the first lines that say what went wrong
 * (not the syscall/path/errno details or the pointer to the debug log).
 */
export function summarizeNpmError(stderr: string, exitCode: number | null): string {
  const lines = stderr
    .split('\n')
    .map((l) => /^npm (?:error|ERR!)\s?(.*)$/.exec(l.trimEnd())?.[1])
    .filter((l): l is string => l !== undefined && l.trim() !== '');
  let code: string | undefined;
  const said: string[] = [];
  for (const l of lines) {
    const m = /^code (\S+)$/.exec(l);
    if (m) {
      code ??= m[1];
      continue;
    }
    if (/^(syscall|path|errno) /.test(l) || /^A complete log of this run/.test(l)) continue;
    // npm repeats the code as a prefix ("enoent ENOENT: no such file…"): drop it
    if (code && l.toLowerCase() === code.toLowerCase()) continue;
    const text = code && l.toLowerCase().startsWith(code.toLowerCase() + ' ') ? l.slice(code.length + 1) : l;
    if (text.trim() !== '' && !said.includes(text)) said.push(text.replace(/^command (?!failed)/, ''));
    if (said.length === 3) break;
  }
  const detail = said.join('; ').slice(0, 400);
  const head = code ? `npm error code ${code}` : `npm exited with ${exitCode ?? 'a signal'}`;
  return detail ? `${head}: ${detail}` : head;
}
