// `ralph demo` (and `npm run demo`): ralph's whole job, end to end, on this machine, narrated — a
// throwaway project with a 3-story prd.json, a daemon in its own RALPH_HOME (the "box"; over a
// throwaway OpenZiti network on 127.0.0.1 when a ziti CLI is there, else loopback tcp), `ralph remote
// add`, `git push ralph-remote feature` starting a loop with the bundled stand-in agent, `ralph
// status`, its live output until it completes, `git fetch` bringing the agent's commits home. Every
// step is the real command a user types, run as a child process; what they print is shown as is.
// Everything it starts is recorded (demo/cleanup.ts) and ended and removed at the end, on Ctrl-C, on
// failure, and by a watchdog if the demo itself is killed.

import { execa, type ResultPromise } from 'execa';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { zitiBinary, zitiWorks } from '../transport/ziti/tunnel-process.js';
import { gitAt } from '../worktrees/git.js';
import { cleanUpDemo, writeDemoState, type DemoState } from './cleanup.js';

export interface DemoOptions {
  /** auto: OpenZiti when a ziti CLI is found, else tcp. */
  transport: 'auto' | 'ziti' | 'tcp';
}

export class DemoError extends Error {}

const ROOT = fileURLToPath(new URL('../..', import.meta.url)).replace(/\/$/, '');
const RALPH = join(ROOT, 'dist', 'cli', 'ralph.js');
const SERVICE = 'ralph-demo';

const PRD = {
  project: 'greeter',
  branchName: 'feature',
  description: 'A tiny greeter, built story by story',
  userStories: [
    { id: 'US-001', title: 'Say hello', description: 'greet.txt says hello', acceptanceCriteria: ['greet.txt exists'], priority: 1, passes: false, notes: '' },
    { id: 'US-002', title: 'Greet by name', description: 'the greeting names the user', acceptanceCriteria: ['a name is used'], priority: 2, passes: false, notes: '' },
    { id: 'US-003', title: 'Say goodbye', description: 'and a farewell', acceptanceCriteria: ['a goodbye line'], priority: 3, passes: false, notes: '' },
  ],
};

/** Writes the story of the run: step headings, the commands, their output. Colors only on a terminal. */
class Narrator {
  private readonly color = process.stdout.isTTY === true && !process.env.NO_COLOR;
  private n = 0;
  constructor(private readonly total: number) {}
  private paint(code: string, text: string): string {
    return this.color ? `\x1b[${code}m${text}\x1b[0m` : text;
  }
  line(text = ''): void {
    process.stdout.write(text + '\n');
  }
  step(title: string): void {
    this.line();
    this.line(this.paint('1', `[${++this.n}/${this.total}] ${title}`));
  }
  say(text: string): void {
    for (const l of text.split('\n')) this.line(`  ${l}`);
  }
  command(words: string[], display?: string): void {
    this.line(this.paint('36', `  $ ${display ?? words.map(shWord).join(' ')}`));
  }
  output(text: string): void {
    const clean = this.color ? text : text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
    for (const l of clean.replace(/\r/g, '').replace(/\n$/, '').split('\n')) this.line(`    ${l}`.trimEnd());
  }
}

function shWord(w: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

/** The ziti CLI when it is there and works, else null (auto), or an error (ziti asked for). */
function findZiti(transport: DemoOptions['transport']): string | null {
  if (transport === 'tcp') return null;
  try {
    const bin = zitiBinary('demo');
    if (zitiWorks(bin)) return bin;
    if (transport === 'ziti') throw new DemoError(`${bin} does not run \`ziti version\``);
  } catch (err) {
    if (transport === 'ziti') throw new DemoError((err as Error).message.replace(/^demo: /, ''));
  }
  return null;
}

export async function runDemo(opts: DemoOptions): Promise<number> {
  const started = Date.now();
  const ziti = findZiti(opts.transport);
  const dir = realpathSync(mkdtempSync(join(tmpdir(), 'ralph-demo-')));
  const say = new Narrator(7);
  const state: DemoState = { root: ROOT, boxHome: join(dir, 'box') };
  writeDemoState(dir, state);

  // If this process is killed outright, the pipe on the watchdog's fd 3 closes and it cleans up.
  const watchdog = execa('/bin/sh', ['-c', 'while read -r _ <&3; do :; done; exec "$0" "$1" "$2"', process.execPath, join(ROOT, 'dist', 'demo', 'cleanup.js'), dir], {
    detached: true,
    cleanup: false,
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    reject: false,
  });
  watchdog.unref();
  (watchdog.stdio[3] as unknown as { unref?: () => void } | null)?.unref?.();

  let cleaning: Promise<string[]> | undefined;
  const cleanUp = () => (cleaning ??= cleanUpDemo(dir).finally(() => watchdog.kill('SIGKILL')));
  // Listeners that stay until the end: a second Ctrl-C does not cut the cleanup short, and execa's own
  // exit hook (which re-raises a signal nobody else listens to) leaves the ending to us.
  // Aborting also ends whatever child the story is waiting for, and no new one starts (cancelSignal).
  const abort = new AbortController();
  let stop!: (signal: NodeJS.Signals) => void;
  const interrupted = new Promise<never>((_, reject) => {
    stop = (signal) => {
      abort.abort();
      reject(Object.assign(new DemoError(`interrupted (${signal})`), { signal }));
    };
  });
  interrupted.catch(() => {});
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  say.line(`ralph demo: a loop started by \`git push\`, end to end, on this machine. Nothing leaves it.`);
  say.line(`Working in ${dir}; all of it is removed at the end (Ctrl-C stops the demo and cleans up too).`);
  let code = 0;
  try {
    await Promise.race([story(dir, state, ziti, opts.transport, say, abort.signal), interrupted]);
    say.line();
    say.line(`Demo done in ${((Date.now() - started) / 1000).toFixed(0)} s. Cleaning up:`);
  } catch (err) {
    const signal = (err as { signal?: NodeJS.Signals }).signal;
    code = signal ? 130 : 1;
    say.line();
    process.stderr.write(`ralph demo: ${signal ? 'interrupted' : `failed: ${(err as Error).message}`}; cleaning up\n`);
  }
  for (const what of await cleanUp()) say.say(what);
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  return code;
}

/** The demo proper. Each step is the command a user would type. */
async function story(
  dir: string,
  state: DemoState,
  zitiBin: string | null,
  transport: DemoOptions['transport'],
  say: Narrator,
  cancelSignal: AbortSignal,
): Promise<void> {
  const app = join(dir, 'app');
  const laptopHome = join(dir, 'laptop');
  const bin = join(dir, 'bin');
  for (const d of [app, laptopHome, state.boxHome, bin]) mkdirSync(d, { recursive: true, mode: 0o700 });
  // `ralph`, git's `git-remote-ralph` and the stand-in agent, on PATH for every command below.
  symlinkSync(RALPH, join(bin, 'ralph'));
  symlinkSync(join(ROOT, 'dist', 'cli', 'git-remote-ralph.js'), join(bin, 'git-remote-ralph'));
  writeFileSync(join(bin, 'demo-agent'), `#!/bin/sh\nexec ${shWord(process.execPath)} ${shWord(join(ROOT, 'demo', 'agent.mjs'))} "$@"\n`);
  chmodSync(join(bin, 'demo-agent'), 0o755);
  const base: Record<string, string> = {
    PATH: `${bin}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    GIT_AUTHOR_NAME: 'ralph demo',
    GIT_AUTHOR_EMAIL: 'demo@ralph.invalid',
    GIT_COMMITTER_NAME: 'ralph demo',
    GIT_COMMITTER_EMAIL: 'demo@ralph.invalid',
    RALPH_STOP_GRACE_MS: '1000',
    ...(zitiBin ? { RALPH_ZITI_BIN: zitiBin } : {}),
  };
  const boxEnv = { ...base, RALPH_HOME: state.boxHome, RALPH_CONFIG: join(state.boxHome, 'config.json') };
  const laptopEnv = { ...base, RALPH_HOME: laptopHome, RALPH_CONFIG: join(laptopHome, 'config.json'), RALPH_ZITI_PROXY_DIR: join(dir, 'zp') };
  /** Runs a laptop-side command in the project and shows it and its output. */
  const laptop = async (words: string[], display?: string): Promise<string> => {
    say.command(words, display);
    const r = await execa(words[0]!, words.slice(1), { cwd: app, env: laptopEnv, all: true, reject: false, timeout: 60_000, cancelSignal });
    if (r.all) say.output(r.all);
    if (r.failed) throw new DemoError(`\`${words.join(' ')}\` ${r.timedOut ? 'took longer than 60 s' : `exited ${r.exitCode ?? r.signal}`}`);
    return r.all ?? '';
  };

  // 1. The project.
  say.step('A project to work on: a git repo with a task of three user stories (prd.json)');
  writeFileSync(join(app, 'prd.json'), JSON.stringify(PRD, null, 2) + '\n');
  writeFileSync(join(app, 'README.md'), '# greeter\n\nBuilt by a Ralph loop, one story per iteration.\n');
  const g = gitAt(app, { env: { ...process.env, ...laptopEnv } });
  await g.init(false, ['--quiet', '--initial-branch=main']);
  await g.add(['prd.json', 'README.md']);
  await g.commit('a task for the agent');
  await g.checkoutLocalBranch('feature');
  say.say(`${app}  (branch feature)`);
  for (const s of PRD.userStories) say.say(`  ${s.id}  ${s.title}`);

  // 2. The box.
  let daemonArgs: string[];
  let remoteArgs: string[];
  if (zitiBin) {
    say.step('A throwaway OpenZiti network: a controller and an edge router on 127.0.0.1');
    say.say('(install/ziti-dev-network.sh: a service for the daemon, an identity for the box and one for this laptop; ~15 s)');
    const zitiDir = join(dir, 'ziti');
    state.zitiDir = zitiDir;
    writeDemoState(dir, state);
    const r = await execa('bash', [join(ROOT, 'install', 'ziti-dev-network.sh'), 'start', zitiDir, '--service', SERVICE, '--ziti', zitiBin, '--timeout', '120'], { reject: false, timeout: 180_000, cancelSignal });
    if (r.failed) throw new DemoError(`the OpenZiti dev network did not start: ${r.stderr.trim().split('\n').pop()}`);
    const net = JSON.parse(r.stdout.trim().split('\n').pop()!) as { controller: string; identities: { daemon: string; client: string }; hostPort: number };
    say.say(`controller ${net.controller}, service ${SERVICE}, identities ${net.identities.daemon} and ${net.identities.client}`);
    daemonArgs = ['--ziti-service', SERVICE, '--ziti-identity', net.identities.daemon, '--ziti-host-port', String(net.hostPort)];
    remoteArgs = ['--ziti-service', SERVICE, '--ziti-identity', net.identities.client];
    state.zitiRemote = 'box';
    state.laptopEnv = { ...process.env, ...laptopEnv } as Record<string, string>;
  } else {
    say.step('The transport: loopback tcp');
    say.say(
      transport === 'tcp'
        ? '(as asked: --transport tcp; without it the demo uses OpenZiti when a ziti CLI is found)'
        : '(no ziti CLI here, so no OpenZiti network: `bash install/get-ziti.sh` builds one, and the demo uses it next time)',
    );
    daemonArgs = ['--listen', 'tcp://127.0.0.1:0'];
    remoteArgs = [];
  }

  say.step('The box: a ralph daemon in its own RALPH_HOME, receiving pushes and running loops');
  say.command(['ralph', 'daemon', ...daemonArgs]);
  const daemon = execa(process.execPath, [RALPH, 'daemon', ...daemonArgs], {
    cwd: state.boxHome,
    env: boxEnv,
    stdin: 'ignore',
    stderr: { file: join(state.boxHome, 'daemon.log') },
    reject: false,
    buffer: false,
    cancelSignal,
  });
  state.daemonPid = daemon.pid;
  writeDemoState(dir, state);
  const ready = await daemonReady(daemon, join(state.boxHome, 'daemon.log'));
  say.output(ready);
  if (!zitiBin) {
    const address = ready.split(/\s+/).find((a) => a.startsWith('tcp://'));
    if (!address) throw new DemoError(`the daemon listens on no tcp address: ${ready}`);
    // The tcp listener wants the daemon's token (made on its first start); from a real box you would copy it.
    remoteArgs = ['--address', address, '--token-file', join(state.boxHome, 'daemon.token')];
  }

  // 3. The laptop.
  say.step('The laptop: add the box as a remote of the project');
  if (!zitiBin) say.say("(a daemon's tcp port takes only clients with its token, $RALPH_HOME/daemon.token on the box: here it is next door)");
  await laptop(['ralph', 'remote', 'add', 'box', ...remoteArgs]);

  say.step('Push: `git push ralph-remote feature` starts a loop on the box');
  say.say('(demo-agent stands in for claude: each run it marks one story done and commits)');
  const push = ['git', 'push', '-o', 'ralph.agent-cmd=demo-agent think,work', 'ralph-remote', 'feature'];
  const pushed = await laptop(push, `git push -o 'ralph.agent-cmd=demo-agent think,work' ralph-remote feature`);
  const id = /^remote: ralph: started loop (\S+) /m.exec(pushed)?.[1];
  if (!id) throw new DemoError('the push started no loop (no "remote: ralph: started loop" line)');

  say.step(`Watch it: \`ralph status\`, then its live output until it completes`);
  await laptop(['ralph', 'status']);
  say.command(['ralph', 'logs', '-f', id]);
  const follow = execa(process.execPath, [RALPH, 'logs', '-f', id], { cwd: app, env: laptopEnv, reject: false, all: true, buffer: false, timeout: 120_000, cancelSignal });
  for await (const line of follow.iterable({ from: 'all' })) say.output(line);
  const end = await follow;
  if (end.failed) throw new DemoError(`\`ralph logs -f ${id}\` exited ${end.exitCode ?? end.signal}`);
  await laptop(['ralph', 'status']);

  say.step("Bring the agent's work home: `git fetch`");
  await laptop(['git', 'fetch', 'ralph-remote']);
  await laptop(['git', 'log', '--oneline', `feature..ralph-remote/ralph/${id}`]);

  say.line();
  say.line('What just happened');
  say.say(
    [
      `git push carried the branch to the box's daemon (git-remote-ralph, ${zitiBin ? 'over OpenZiti' : 'over tcp'}). The box's`,
      `post-receive hook asked the daemon for a loop: a worktree of its own on branch ralph/${id},`,
      'and a runner that ran the agent again and again, one story per iteration, until every story',
      'passed. The laptop recorded the loop in its session DB, so `ralph status`, `ralph logs` and',
      '`ralph attach` treat it like a local loop; `git fetch` brought the commits back.',
    ].join('\n'),
  );
  say.line();
  say.line('What to type next');
  say.say(
    [
      'npm link                                # `ralph` and `git-remote-ralph` on your PATH (or: npm install -g .)',
      'ralph run . --agent claude              # a loop here, in your own checkout with a prd.json',
      'ralph remote add box --ssh you@your-box # a box you reach by SSH, ralph installed there; then git push',
      'ralph ziti setup                        # or: all a box needs, on an OpenZiti controller you are logged in to',
      'ralph attach <id>                       # watch a loop live and type into its agent',
    ].join('\n'),
  );
}


/** Resolves with the daemon's ready line; rejects with its log's tail if it exits first. */
function daemonReady(daemon: ResultPromise, logFile: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => fail('it was not ready within 90 s'), 90_000);
    const onData = (d: Buffer) => {
      text += d.toString();
      const m = /^ralph daemon: listening on (.+)$/m.exec(text);
      if (m) {
        clearTimeout(timer);
        daemon.off('exit', onExit);
        resolve(m[0]);
      }
    };
    const onExit = () => fail('it exited before it was ready');
    function fail(why: string) {
      clearTimeout(timer);
      let tail = '';
      try {
        tail = readFileSync(logFile, 'utf8').trim().split('\n').slice(-3).join(' | ');
      } catch {}
      reject(new DemoError(`the daemon did not start: ${why}${tail ? `: ${tail}` : ''} (its log: ${logFile})`));
    }
    // Read stdout to its end, ready line or not: a daemon must never block on a full pipe.
    daemon.stdout!.on('data', onData);
    daemon.once('exit', onExit);
  });
}
