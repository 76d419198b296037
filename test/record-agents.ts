// Records what the real agent CLIs print (their JSON event streams) against the local fakes of their
// model APIs, into test/fixtures/recorded/, for the adapters' parser tests. Not a test: rerun it when
// a pinned CLI version changes (test/fixtures/agent-clis.json).
//   node dist/test/record-agents.js codex|opencode [scenario ...]

import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES } from './helpers/env.js';
import { codexWorld, FAKE_OPENAI_KEY, opencodeWorld, OutboundTrap, type AgentWorld } from './helpers/agent-clis.js';
import { makeTaskRepo, type TaskRepo } from './helpers/task.js';
import { answersTool, FakeResponsesApi, lastInputText, ralphWorker, runCommand, userTexts, type Script } from './fixtures/openai-responses-api.js';

const OUT = join(FIXTURES, 'recorded');

function run(world: AgentWorld, repo: TaskRepo, args: string[], input: string | null, opts: { interruptAfterMs?: number; cmd?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(opts.cmd ?? 'codex', args, { cwd: repo.dir, env: { ...process.env, ...world.env, PWD: repo.dir, RALPH_TASK_DIR: repo.taskDir }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => process.stderr.write(`  stderr: ${d}`));
    child.stdin.end(input ?? '');
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000);
    if (opts.interruptAfterMs) setTimeout(() => child.kill('SIGINT'), opts.interruptAfterMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      console.log(`  exit ${code}`);
      resolve(out);
    });
  });
}

const threadOf = (out: string) => /"thread_id":"([^"]+)"/.exec(out)?.[1] ?? '';
const COMMON = ['--json', '--dangerously-bypass-approvals-and-sandbox', '-c', 'features.unbounded_connection_retries=false'];

const codexScenarios: Record<string, { script?: Script; key?: string; stories?: number; baseUrl?: string; go: (w: AgentWorld, r: TaskRepo) => Promise<string> }> = {
  // One story of two: a shell call, its output, text, usage.
  work: { stories: 2, go: (w, r) => run(w, r, ['exec', ...COMMON, '-'], 'Do the next story.') },
  // The last story: the promise.
  promise: { stories: 1, go: (w, r) => run(w, r, ['exec', ...COMMON, '-'], 'Do the next story.') },
  // A turn, then the user's line through `exec resume` (one run, two processes).
  resume: {
    stories: 2,
    script: (req, n) => (userTexts(req).at(-1)?.includes('Also say hello') ? { items: [{ text: 'Hello, as you asked.' }] } : ralphWorker(req, n)),
    go: async (w, r) => {
      const first = await run(w, r, ['exec', ...COMMON, '-'], 'Do the next story.');
      return first + (await run(w, r, ['exec', 'resume', ...COMMON, threadOf(first), '-'], 'Also say hello'));
    },
  },
  // Reasoning, a failing command, a file written through apply_patch.
  tools: {
    stories: 2,
    script: (req) => {
      const last = lastInputText(req);
      if (!answersTool(req)) return { items: [{ reasoning: '**Checking the tests** first' }, ...(runCommand(req, 'Running the tests.', 'echo "1 test failed" >&2; exit 1') as { items: [] }).items] };
      if (last.includes('1 test failed')) return runCommand(req, 'Writing the fix.', "apply_patch <<'PATCH'\n*** Begin Patch\n*** Add File: fix.txt\n+fixed\n*** End Patch\nPATCH");
      return { items: [{ text: 'Fixed.' }] };
    },
    go: (w, r) => run(w, r, ['exec', ...COMMON, '-'], 'Fix the tests.'),
  },
  // A wrong key: the API's 401, retried by codex, then the turn fails.
  auth: { key: 'sk-wrong', go: (w, r) => run(w, r, ['exec', ...COMMON, '-'], 'Do the next story.') },
  // A rate limit that does not lift.
  ratelimit: {
    script: () => ({
      httpError: {
        status: 429,
        error: { message: 'Rate limit reached for requests. Please try again in 1s.', type: 'requests', code: 'rate_limit_exceeded' },
        headers: { 'retry-after': '1' },
      },
    }),
    go: (w, r) => run(w, r, ['exec', ...COMMON, '-'], 'Do the next story.'),
  },
  // Out of credit.
  quota: {
    script: () => ({ httpError: { status: 429, error: { message: 'You exceeded your current quota, please check your plan and billing details.', type: 'insufficient_quota', code: 'insufficient_quota' } } }),
    go: (w, r) => run(w, r, ['exec', ...COMMON, '-'], 'Do the next story.'),
  },
  // Nothing listens at the API's address.
  noconn: { baseUrl: 'http://127.0.0.1:9/v1', go: (w, r) => run(w, r, ['exec', ...COMMON, '-'], 'Do the next story.') },
  // Esc (SIGINT) while a command runs.
  interrupt: {
    script: (req) => (answersTool(req) ? { items: [{ text: 'done' }] } : runCommand(req, 'Waiting.', 'sleep 20')),
    go: (w, r) => run(w, r, ['exec', ...COMMON, '-'], 'Wait.', { interruptAfterMs: 6000 }),
  },
  // A command that outlives codex's wait for it: polled through write_stdin.
  slow: {
    script: (req) => (answersTool(req) ? { items: [{ text: 'done' }] } : runCommand(req, 'Waiting.', 'sleep 14; echo slept')),
    go: (w, r) => run(w, r, ['exec', ...COMMON, '-'], 'Wait.'),
  },
  // Esc, then the user's line: the interrupted thread goes on.
  'interrupt-resume': {
    script: (req) => (userTexts(req).at(-1)?.includes('Stop waiting') ? { items: [{ text: 'Stopped waiting.' }] } : answersTool(req) ? { items: [{ text: 'done' }] } : runCommand(req, 'Waiting.', 'sleep 20')),
    go: async (w, r) => {
      const first = await run(w, r, ['exec', ...COMMON, '-'], 'Wait.', { interruptAfterMs: 6000 });
      return first + (await run(w, r, ['exec', 'resume', ...COMMON, threadOf(first), '-'], 'Stop waiting'));
    },
  },
};

const OC = ['run', '--format', 'json', '--auto'];
const sessionOf = (out: string) => /"sessionID":"([^"]+)"/.exec(out)?.[1] ?? '';
const oc = (w: AgentWorld, r: TaskRepo, args: string[], input: string | null, opts: { interruptAfterMs?: number } = {}) => run(w, r, args, input, { ...opts, cmd: 'opencode' });

const opencodeScenarios: typeof codexScenarios = {
  work: { stories: 2, go: (w, r) => oc(w, r, OC, 'Do the next story.') },
  promise: { stories: 1, go: (w, r) => oc(w, r, [...OC, 'Do the next story.'], null) },
  resume: {
    stories: 2,
    script: (req, n) => (userTexts(req).at(-1)?.includes('Also say hello') ? { items: [{ text: 'Hello, as you asked.' }] } : ralphWorker(req, n)),
    go: async (w, r) => {
      const first = await oc(w, r, OC, 'Do the next story.');
      return first + (await oc(w, r, [...OC, '--session', sessionOf(first)], 'Also say hello'));
    },
  },
  tools: codexScenarios.tools!,
  auth: { key: 'sk-wrong', go: (w, r) => oc(w, r, OC, 'Do the next story.') },
  ratelimit: codexScenarios.ratelimit!,
  noconn: { baseUrl: 'http://127.0.0.1:9/v1', go: (w, r) => oc(w, r, OC, 'Do the next story.') },
};
for (const name of ['tools', 'ratelimit']) {
  const sc = opencodeScenarios[name]!;
  opencodeScenarios[name] = { ...sc, go: (w, r) => oc(w, r, OC, name === 'tools' ? 'Fix the tests.' : 'Do the next story.') };
}

async function record(agent: 'codex' | 'opencode', names: string[]): Promise<void> {
  const scenarios = agent === 'codex' ? codexScenarios : opencodeScenarios;
  for (const name of names.length ? names : Object.keys(scenarios)) {
    const sc = scenarios[name];
    if (!sc) throw new Error(`no ${agent} scenario ${name}`);
    console.log(`${agent} ${name}`);
    const trap = await new OutboundTrap().start();
    const api = new FakeResponsesApi(sc.script ?? ralphWorker, FAKE_OPENAI_KEY);
    const baseUrl = sc.baseUrl ?? (await api.start());
    const key = sc.key ?? FAKE_OPENAI_KEY;
    const world = agent === 'codex' ? codexWorld({ baseUrl, trap, key, model: 'ralph-fake-model' }) : opencodeWorld({ baseUrl, trap, key });
    const repo = makeTaskRepo({ stories: sc.stories ?? 1 });
    try {
      const out = await sc.go(world, repo);
      if (process.env.SHOW_LAST_INPUT) for (const r of api.requests) console.log(JSON.stringify(r.input.at(-1)).slice(0, 600));
      writeFileSync(join(OUT, `${agent}-${name}.jsonl`), out);
      if (trap.attempts.length > 0) console.log(`  tried to leave: ${trap.attempts.join(', ')}`);
    } finally {
      await api.close().catch(() => {});
      await trap.close();
      world.cleanup();
      repo.cleanup();
    }
  }
}

const [agent, ...names] = process.argv.slice(2);
if (agent === 'codex' || agent === 'opencode') await record(agent, names);
else console.error('usage: node dist/test/record-agents.js codex|opencode [scenario ...]');
