#!/usr/bin/env node
// The `ralph` command line. Only parsing lives here: each command's module is loaded when it runs,
// so `ralph status` never pays for node-pty or the daemon.

import { Command, Option } from 'commander';
import { parseDuration, TIMEOUT_RANGE, timeoutInRange } from '../store/duration.js';
import { iterationsRangeMessage, MAX_ITERATIONS } from '../store/iteration-limit.js';
import { fail, outputError, skipRestoreOfHungUpTerminal } from './output.js';

// Output piped into `head` and the like: a closed pipe ends the command quietly, as it does for cat.
// Any other failure to write is the command's to handle (see whenOutputLost), never an uncaught throw.
process.stdout.on('error', (err: NodeJS.ErrnoException) => outputError('stdout', err));
process.stderr.on('error', (err: NodeJS.ErrnoException) => outputError('stderr', err));
skipRestoreOfHungUpTerminal();

const program = new Command();

program
  .name('ralph')
  .description('Run Ralph loops (an AI coding agent over a task, again and again) here and on remote boxes;\nwatch and steer every one of them from one place.')
  .version('0.1.0')
  .showHelpAfterError('(run with --help for usage)')
  .configureOutput({ outputError: (str, write) => write(str) });

const agentNames = ['claude', 'opencode', 'codex', 'amp'];
const duration = (flag: string) => (v: string) => {
  const ms = parseDuration(v);
  if (ms === null || !timeoutInRange(ms)) fail(`${flag} must be a duration ${TIMEOUT_RANGE}, such as 90s, 45m, 2h or 1d, got ${JSON.stringify(v)}`);
  return ms;
};
const positiveInt = (flag: string) => (v: string) => {
  if (!/^\d+$/.test(v) || Number(v) < 1) {
    fail(`${flag} must be a positive whole number, got ${JSON.stringify(v)}`);
  }
  return Number(v);
};
const iterationCount = (flag: string) => (v: string) => {
  if (!/^\d+$/.test(v) || Number(v) < 1 || Number(v) > MAX_ITERATIONS) fail(iterationsRangeMessage(flag, JSON.stringify(v)));
  return Number(v);
};

program
  .command('run')
  .description('start a loop on the task in DIR (default: the current directory)')
  .argument('[dir]', 'the checkout the agent works in', '.')
  // Not .choices(): `ralph run` reports an unknown agent as one `ralph: ...` line, like every bad input.
  .option('--agent <name>', `agent CLI to run each iteration: ${agentNames.join(', ')} (default: claude)`)
  .option('--agent-cmd <cmd>', 'run this shell command as the agent instead (gets RALPH_PROMPT_FILE, RALPH_ITERATION, RALPH_LOOP_ID, RALPH_TASK_DIR)')
  .option('--max-iterations <n>', 'stop (failed) after this many iterations', iterationCount('--max-iterations'), 10)
  .option('--task <path>', 'directory holding prd.json (default: DIR, else the one tasks/*/)')
  .option('--name <name>', 'a name to refer to the loop by (default: its id)')
  .option('--iteration-timeout <duration>', 'end an iteration that runs longer than this, as failed (default 60m)', duration('--iteration-timeout'))
  .option('--stall-timeout <duration>', 'end an iteration whose agent prints nothing for this long, as failed (default 20m)', duration('--stall-timeout'))
  .option('--fallback-agent <name>', `run this agent while the main one is rate-limited: ${agentNames.join(', ')}`)
  .option('--install-agent', 'install the agent CLI into $RALPH_HOME/agents with npm if it is missing')
  .option('--foreground', 'run attached to this terminal and exit with the loop\'s result')
  .action(async (dir: string, opts) => (await import('./commands/run.js')).run(dir, opts));

program
  .command('extend')
  .description('give a running loop N more iterations (local or remote)')
  .argument('<loop>', 'loop id or name')
  .argument('<n>', 'how many more iterations', iterationCount('<n>'))
  .action(async (loop: string, n: number) => (await import('./commands/extend.js')).run(loop, n));

program
  .command('resume')
  .description('go on with a loop that failed or was stopped, as a new loop on the same task; prints its id')
  .argument('<loop>', 'loop id or name')
  .option('--max-iterations <n>', 'iteration limit of the new loop (default: the old one\'s)', iterationCount('--max-iterations'))
  .action(async (loop: string, opts) => (await import('./commands/resume.js')).run(loop, opts));

program
  .command('status')
  .description('every loop, local and remote, newest first')
  .option('--json', 'print a JSON array instead of a table (always every loop)')
  .option('--all', 'show every loop (the table shows the newest 50 and every loop still running)')
  .option('--limit <n>', 'show the newest N loops (and every loop still running)', positiveInt('--limit'))
  .option('--timeout <ms>', 'how long to wait for remote daemons', positiveInt('--timeout'), 3000)
  .action(async (opts) => (await import('./commands/status.js')).run(opts));

program
  .command('attach')
  .description('watch a loop live; press i to type into the agent, s to stop it, q to detach')
  .argument('<loop>', 'loop id or name')
  .option('--interactive', 'start in interactive mode (keys go to the agent; Ctrl-] returns to watch mode)')
  .option('--no-replay', 'do not redraw the current screen first; show only new output')
  .action(async (loop: string, opts) => (await import('./commands/attach.js')).run(loop, opts));

program
  .command('tui')
  .description('every loop, local and remote, live in one screen: watch, type into, stop and extend them')
  .option('--timeout <ms>', 'how long to wait for remote daemons (in the background)', positiveInt('--timeout'), 3000)
  .action(async (opts) => (await import('./commands/tui.js')).run(opts));

program
  .command('watch')
  .description('wait for the running loops to end, printing each as it ends (and running notify.command)')
  .option('--json', 'print each as a JSON object on one line (the keys of ralph status --json)')
  .option('--timeout <ms>', 'how long to wait for remote daemons each time they are asked', positiveInt('--timeout'), 3000)
  .action(async (opts) => (await import('./commands/watch.js')).run(opts));

program
  .command('stop')
  .description('stop a loop now, or when its current iteration ends')
  .argument('<loop>', 'loop id or name')
  .option('--after-iteration', 'let the current iteration finish first')
  .action(async (loop: string, opts) => (await import('./commands/stop.js')).run(loop, opts));

program
  .command('logs')
  .description("print a loop's output")
  .argument('<loop>', 'loop id or name')
  .option('-f, --follow', 'keep printing new output until the loop ends')
  .option('--raw', 'keep terminal escape sequences even when the output is not a terminal')
  .action(async (loop: string, opts) => (await import('./commands/logs.js')).run(loop, opts));

program
  .command('daemon')
  .description('run the daemon that receives pushes and runs loops for remote clients (foreground)')
  .option('--listen <address...>', 'also listen here (tcp://127.0.0.1:7420); loopback only unless --allow-public')
  .option('--allow-public', 'allow a --listen address that is not loopback')
  .option('--home <dir>', 'data directory (default: $RALPH_HOME)')
  .option('--max-loops <n>', 'most loops running at once', positiveInt('--max-loops'))
  .option('--ziti-service <name>', 'bind this OpenZiti service')
  .option('--ziti-identity <file>', 'OpenZiti identity file (or RALPH_ZITI_IDENTITY)')
  .option('--ziti-host-port <port>', "tunnel backend: the local port the service's host.v1 config forwards to (or RALPH_ZITI_HOST_PORT)", positiveInt('--ziti-host-port'))
  .addOption(new Option('--ziti-backend <backend>', 'how to reach OpenZiti').choices(['auto', 'sdk', 'tunnel']).default('auto'))
  .action(async (opts) => (await import('./commands/daemon.js')).run(opts));

program
  .command('bridge')
  .description("join stdin/stdout to this box's daemon socket (what an ssh remote runs here; see ralph remote add --ssh)")
  .action(async () => (await import('./commands/bridge.js')).run());

const remote = program.command('remote').description('manage remote daemons this machine can reach');
remote
  .command('add')
  .description('add a remote daemon and a git remote that pushes to it')
  .argument('<name>', 'a short name for the remote')
  .option('--address <address>', 'tcp://HOST:PORT of the daemon (with --token-file), or ssh://[USER@]HOST[:PORT]')
  .option('--token-file <file>', "a copy of the daemon's $RALPH_HOME/daemon.token, for a tcp address")
  .option('--ssh <target>', 'reach the daemon over ssh: [USER@]HOST[:PORT] (RALPH_SSH_COMMAND names the ssh program)')
  .option('--remote-ralph <path>', "the ralph program on the box, for --ssh (default: ralph on its PATH)")
  .option('--ziti-service <name>', 'the OpenZiti service the daemon binds')
  .option('--ziti-identity <file>', 'OpenZiti identity file to dial with (or RALPH_ZITI_IDENTITY)')
  .option('--git-remote <name>', 'name of the git remote to add', 'ralph-remote')
  .option('--repo <name>', 'repo name on the daemon (default: this repo\'s directory name)')
  .option('--no-check', 'do not contact the daemon now')
  .action(async (name: string, opts) => (await import('./commands/remote.js')).add(name, opts));
remote
  .command('list')
  .description('list remotes')
  .option('--json', 'print JSON')
  .action(async (opts) => (await import('./commands/remote.js')).list(opts));
remote
  .command('remove')
  .description('forget a remote (and its git remote)')
  .argument('<name>')
  .action(async (name: string) => (await import('./commands/remote.js')).remove(name));
remote
  .command('test')
  .description("check that a remote's daemon answers")
  .argument('<name>')
  .action(async (name: string) => (await import('./commands/remote.js')).test(name));
remote
  .command('disconnect')
  .description("close the remote's shared connection now: its OpenZiti proxy or ssh master (each ends by itself after a minute unused)")
  .argument('<name>', 'the remote')
  .action(async (name: string) => (await import('./commands/remote.js')).disconnect(name));

program
  .command('demo')
  .description('see ralph work: a throwaway project, a daemon, a push that starts a loop, its output, the commits fetched back (a minute, nothing leaves this machine)')
  .addOption(new Option('--transport <how>', 'how the laptop reaches the daemon: OpenZiti when a ziti CLI is found, else tcp').choices(['auto', 'ziti', 'tcp']).default('auto'))
  .action(async (opts) => (await import('./commands/demo.js')).run(opts));

const ziti = program.command('ziti').description('OpenZiti administration for ralph');
ziti
  .command('setup')
  .description('create (or bring up to date) the service, configs, policies and identities a box and its laptops need, on the controller of `ziti edge login`')
  .option('--service <name>', 'the OpenZiti service the daemon binds', 'ralph')
  .option('--box <name>', "the box's identity (default: SERVICE-box)")
  .option('--laptop <name...>', 'laptop identities (default: SERVICE-laptop)')
  .option('--host-port <port>', "the port on the box's 127.0.0.1 the service forwards to (the daemon's --ziti-host-port)", positiveInt('--host-port'), 7420)
  .option('--out <dir>', 'where the enrolled identity files go (NAME.json, 0600)', '.')
  .option('--edge-router-roles <roles>', 'the edge routers they may use, as OpenZiti roles', '#all')
  .option('--dry-run', 'print the `ziti` commands it would run; change nothing')
  .action(async (opts) => (await import('./commands/ziti.js')).setup(opts));

program
  .command('start')
  .description('start a loop on a branch already pushed to a remote')
  .requiredOption('--remote <name>', 'the remote')
  .requiredOption('--branch <branch>', 'the pushed branch')
  .option('--repo <name>', 'repo name on the daemon (default: the remote\'s)')
  .addOption(new Option('--agent <name>', 'agent CLI').choices(agentNames))
  .option('--agent-cmd <cmd>', 'shell command to run as the agent')
  .option('--max-iterations <n>', 'iteration limit', iterationCount('--max-iterations'))
  .option('--task <path>', 'task directory inside the repo')
  .option('--iteration-timeout <duration>', 'end an iteration that runs longer than this (default 60m)', duration('--iteration-timeout'))
  .option('--stall-timeout <duration>', 'end an iteration whose agent prints nothing for this long (default 20m)', duration('--stall-timeout'))
  .addOption(new Option('--fallback-agent <name>', 'agent to run while the main one is rate-limited').choices(agentNames))
  .action(async (opts) => (await import('./commands/start.js')).run(opts));

program
  .command('prune')
  .description('remove worktrees of finished loops (never of running ones)')
  .option('--older-than <duration>', 'only loops that ended this long ago (e.g. 7d, 12h, 30m)')
  .action(async (opts) => (await import('./commands/prune.js')).run(opts));

program
  .command('doctor')
  .description("check ralph's home, session DB, sockets, config, ziti CLI and agents; repair what is safe")
  .option('--no-repair', 'only report; change nothing')
  .action(async (opts) => (await import('./commands/doctor.js')).run(opts));

try {
  await program.parseAsync(process.argv);
} catch (err) {
  fail(err);
}
// The command's work is done: exit now, whatever a library still holds open (the OpenZiti SDK keeps
// the event loop alive for good once it has signed in), after what was printed has been written.
const written = (s: NodeJS.WriteStream) => new Promise<void>((resolve) => (s.destroyed || s.writableEnded ? resolve() : s.write('', () => resolve())));
await Promise.all([written(process.stdout), written(process.stderr)]);
// A write that failed just now has its 'error' event still to come: see to it before exiting 0.
if (process.stdout.errored) outputError('stdout', process.stdout.errored as NodeJS.ErrnoException);
if (process.stderr.errored) outputError('stderr', process.stderr.errored as NodeJS.ErrnoException);
process.exit(process.exitCode ?? 0);
