import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FakeResponsesApi, ralphWorker } from './fixtures/openai-responses-api.js';
import { OutboundTrap, FAKE_OPENAI_KEY } from './helpers/agent-clis.js';
import { makeTaskRepo } from './helpers/task.js';
import { makeTempHome } from './helpers/env.js';

const trap = await new OutboundTrap().start();
const api = new FakeResponsesApi(ralphWorker, FAKE_OPENAI_KEY);
const base = await api.start();
const h = makeTempHome('oc-home');
const cfgDir = join(h.home, '.config', 'opencode');
mkdirSync(cfgDir, { recursive: true });
writeFileSync(join(cfgDir, 'opencode.json'), JSON.stringify({
  $schema: 'https://opencode.ai/config.json',
  autoupdate: false, share: 'disabled',
  model: 'fake/fake-model',
  provider: { fake: { npm: process.env.NPM ?? '@ai-sdk/openai', name: 'fake', options: { baseURL: base, apiKey: FAKE_OPENAI_KEY }, models: { 'fake-model': { name: 'Fake model' } } } },
}, null, 2));
const repo = makeTaskRepo({ stories: 2 });
const t0 = Date.now();
const bin = '/root/.cache/ralph-test-agents/opencode-explore/node_modules/.bin/opencode';
const args = process.argv.slice(2).length ? process.argv.slice(2) : ['run', '--format', 'json', '--auto', 'Do the next story.'];
const child = spawn(bin, args, { cwd: repo.dir, env: { ...process.env, HOME: h.home, XDG_CONFIG_HOME: join(h.home, '.config'), XDG_DATA_HOME: join(h.home, '.local/share'), XDG_CACHE_HOME: join(h.home, '.cache'), XDG_STATE_HOME: join(h.home, '.local/state'), OPENCODE_DISABLE_AUTOUPDATE: '1', OPENCODE_DISABLE_MODELS_FETCH: '1', OPENCODE_DISABLE_DEFAULT_PLUGINS: '1', OPENCODE_DISABLE_LSP_DOWNLOAD: '1', OPENCODE_DISABLE_SHARE: '1', OPENCODE_DISABLE_CLAUDE_CODE: '1', OPENCODE_DISABLE_EXTERNAL_SKILLS: '1', PWD: repo.dir, ...(process.env.PURE ? { OPENCODE_PURE: '1' } : {}), RALPH_TASK_DIR: repo.taskDir, ...trap.env }, stdio: ['pipe', 'pipe', 'pipe'] });
child.stdin.end();
child.stdout.on('data', (d) => process.stdout.write(`[${Date.now() - t0}ms] ${d}`));
child.stderr.on('data', (d) => process.stdout.write(`[${Date.now() - t0}ms] ERR ${d}`));
const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
child.on('close', async (code, sig) => {
  clearTimeout(timer);
  console.log(`--- exit ${code} ${sig} after ${Date.now() - t0} ms; requests ${api.requests.length}; seen ${api.seen.join(', ')}; trap ${trap.attempts.join(', ')}`);
  console.log('tools:', (api.requests[0]?.tools ?? []).map((t: any) => t.name ?? t.type).join(','));
  await api.close(); await trap.close(); console.log("home", h.home); repo.cleanup();
});
