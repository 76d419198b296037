#!/usr/bin/env node
// Installs the real agent CLIs the tests drive (test/fixtures/agent-clis.json: package, pinned
// version) from npm into a cache dir, one folder per CLI and version, so a test run and CI reuse
// them. A folder counts only once its CLI answered --version; two installs at once (parallel test
// files) wait for each other on a lock dir. Prints each CLI's bin dir.
// Usage: node scripts/install-test-agents.mjs [name ...]   (default: all)
// The cache dir is $RALPH_TEST_AGENTS_DIR, else ~/.cache/ralph-test-agents.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const PINS = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'agent-clis.json'), 'utf8'));
const LOCK_STALE_MS = 10 * 60_000;

export function cacheDir(env = process.env) {
  return env.RALPH_TEST_AGENTS_DIR || join(homedir(), '.cache', 'ralph-test-agents');
}

function sleep(ms) {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Installs one CLI if it is not there yet; returns its bin dir. */
export function installAgent(name, env = process.env) {
  const pin = PINS[name];
  if (!pin) throw new Error(`no pinned agent CLI named ${name} (test/fixtures/agent-clis.json has ${Object.keys(PINS).join(', ')})`);
  const dir = join(cacheDir(env), `${name}-${pin.version}`);
  const binDir = join(dir, 'node_modules', '.bin');
  const ready = join(dir, '.ready');
  if (existsSync(ready)) return binDir;
  mkdirSync(cacheDir(env), { recursive: true });
  const lock = `${dir}.lock`;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      if (existsSync(ready)) return binDir;
      try {
        if (Date.now() - statSync(lock).mtimeMs > LOCK_STALE_MS) rmSync(lock, { recursive: true, force: true });
      } catch {
        /* released meanwhile */
      }
      sleep(500);
    }
  }
  try {
    if (existsSync(ready)) return binDir;
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    writeFileSync(join(tmp, 'package.json'), '{ "private": true }\n');
    execFileSync('npm', ['install', '--prefix', tmp, '--no-audit', '--no-fund', '--loglevel=error', `${pin.package}@${pin.version}`], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...env, npm_config_update_notifier: 'false' },
    });
    // Its own HOME: a first start may write config there.
    const home = mkdtempSync(join(tmpdir(), `ralph-agent-home-`));
    let version;
    try {
      version = execFileSync(join(tmp, 'node_modules', '.bin', pin.bin), ['--version'], { env: { ...env, HOME: home }, stdio: ['ignore', 'pipe', 'pipe'] })
        .toString()
        .trim();
    } finally {
      rmSync(home, { recursive: true, force: true });
    }
    if (!version.includes(pin.version)) throw new Error(`${pin.package}@${pin.version} installed, but \`${pin.bin} --version\` says ${JSON.stringify(version)}`);
    rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
    writeFileSync(ready, `${version}\n`);
    return binDir;
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const names = process.argv.length > 2 ? process.argv.slice(2) : Object.keys(PINS);
  for (const name of names) {
    try {
      console.log(installAgent(name));
    } catch (err) {
      console.error(`install-test-agents: ${name}: ${err.message}`);
      process.exitCode = 1;
    }
  }
}
