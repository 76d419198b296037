// CLI start-up stays light: `ralph status` (and `ralph --help`) run with a module-load hook that
// records every module Node loads, and none of the heavy or occasional packages is among them
// (simple-git, execa, node-pty, @xterm). They are loaded only by the commands that use them.

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { makeTempHome, ralph } from './helpers/env.js';

const t = makeTempHome('ralph-su');
let calls = 0;

// A loader (run on Node's hooks thread) that appends each loaded module's URL to $RALPH_TEST_LOADED.
const HOOKS = `
import { appendFileSync } from 'node:fs';
export async function load(url, context, next) {
  appendFileSync(process.env.RALPH_TEST_LOADED, url + '\\n');
  return next(url, context);
}`;
const REGISTER = `import { register } from 'node:module'; register(${JSON.stringify('data:text/javascript,' + encodeURIComponent(HOOKS))});`;

const loadedBy = async (args: string[], cwd?: string): Promise<string[]> => {
  const loaded = join(t.home, `loaded-${++calls}.txt`);
  const env = { ...t.env, RALPH_TEST_LOADED: loaded, NODE_OPTIONS: `--import=${'data:text/javascript,' + encodeURIComponent(REGISTER)}` };
  const r = await ralph(args, { env, ...(cwd ? { cwd } : {}) });
  assert.is(r.code, 0, r.stderr);
  return readFileSync(loaded, 'utf8').split('\n').filter(Boolean);
};

test.after(() => t.cleanup());

test('ralph status loads neither simple-git, execa, node-pty nor @xterm (checked at run time)', async () => {
  const urls = await loadedBy(['status']);
  assert.ok(urls.some((u) => u.endsWith('/dist/cli/commands/status.js')), 'the hook saw the status command load');
  assert.ok(urls.some((u) => u.includes('/node_modules/commander/')), 'the hook sees packages too');
  assert.equal(
    urls.filter((u) => /\/node_modules\/(simple-git|@simple-git|execa|node-pty|@xterm)\//.test(u)),
    [],
  );
});

test('the hook does see them where they are used: ralph remote add loads simple-git', async () => {
  const repo = join(t.home, 'repo');
  mkdirSync(repo);
  execFileSync('git', ['init', '--quiet', repo]);
  const urls = await loadedBy(['remote', 'add', 'box', '--address', 'tcp://127.0.0.1:9', '--no-check'], repo);
  assert.ok(urls.some((u) => u.includes('/node_modules/simple-git/')), 'simple-git was loaded and seen');
});

test.run();
