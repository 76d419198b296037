// install/build-ziti-sdk.sh as a user meets it: a build that exists is found at once (path on stdout,
// nothing built), and sources that are missing or not the pinned ones are refused in one line before
// anything is compiled or installed. (The build itself runs in CI before the suite, from the vendored
// sources; the SDK suites then use it.)

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cachedBuildDir } from '../transport/ziti/sdk.js';
import { makeTempHome, ROOT, runCommand, skipped } from './helpers/env.js';
import { zitiSdkOrSkip } from './helpers/ziti-network.js';

const SCRIPT = join(ROOT, 'install', 'build-ziti-sdk.sh');
const t = makeTempHome('ralph-zsb');

test.after(() => t.cleanup());

const build = (args: string[], env: NodeJS.ProcessEnv = {}) => runCommand('bash', [SCRIPT, ...args], { env: { ...t.env, ...env }, timeoutMs: 60_000 });

test('a build for these fixes is found at once: its path on stdout, nothing rebuilt', async () => {
  if (!(await zitiSdkOrSkip())) return skipped('no ziti SDK build');
  const started = Date.now();
  const r = await build([]);
  assert.is(r.code, 0, r.stderr);
  assert.is(r.stdout, `${cachedBuildDir()}\n`);
  assert.is(r.stderr, '');
  assert.ok(Date.now() - started < 10_000, `${Date.now() - started} ms`);
});

test('sources that are missing or not the pinned archives: one line, nothing built or installed', async () => {
  const cache = join(t.home, 'cache');
  const missing = await build(['--sources', join(t.home, 'nowhere')], { RALPH_ZITI_CACHE: cache });
  assert.is(missing.code, 1);
  assert.is(missing.stdout, '');
  assert.is(missing.stderr, `build-ziti-sdk: error: --sources ${join(t.home, 'nowhere')}: no such directory\n`);

  const empty = join(t.home, 'empty');
  mkdirSync(empty);
  const none = await build(['--sources', empty], { RALPH_ZITI_CACHE: cache });
  assert.is(none.code, 1);
  assert.match(none.stderr, new RegExp(`^build-ziti-sdk: error: --sources ${empty} has no ziti-sdk-c-28fdbf85\\.tar\\.gz$`, 'm'));

  const forged = join(t.home, 'forged');
  mkdirSync(forged);
  writeFileSync(join(forged, 'ziti-sdk-c-28fdbf85.tar.gz'), 'not the C SDK\n');
  const bad = await build(['--sources', forged], { RALPH_ZITI_CACHE: cache });
  assert.is(bad.code, 1);
  assert.is(bad.stdout, '');
  assert.match(
    bad.stderr,
    new RegExp(`^build-ziti-sdk: error: ${forged}/ziti-sdk-c-28fdbf85\\.tar\\.gz does not have the pinned sha256 c5c185834ece26a84efc13d28b2903c82b8c9513cec724235fc78193fc516a07$`, 'm'),
  );
  const installed = existsSync(join(cache, 'sdk')) ? readdirSync(join(cache, 'sdk')).filter((n) => n.startsWith('ziti-sdk-nodejs-')) : [];
  assert.equal(installed, [], 'nothing installed');
});

test('unknown arguments: the usage line', async () => {
  const r = await build(['--frobnicate']);
  assert.is(r.code, 2);
  assert.is(r.stderr, 'usage: build-ziti-sdk.sh [--sources DIR] [--force]\n');
});

test.run();
