#!/usr/bin/env node
// A stand-in for an agent CLI (claude, opencode, …), run in a real PTY via --agent-cmd "node
// agent.mjs [steps]": by `ralph demo` (which is why it lives here and ships with ralph), by the tests
// (as test/fixtures/agent.mjs) and by the README's first loop. No account, no network. Steps run in
// order; join them with commas ("echo,work"). The steps come from argv, else FIXTURE_MODE, else "work".
//
//   think          print a few "thinking" lines, FIXTURE_THINK_MS (350) ms apart, as an agent at work would
//   work           read the prompt ($RALPH_PROMPT_FILE) and prd.json ($RALPH_TASK_DIR), mark the next
//                  story passing, append to progress.txt, commit if in a git repo, print some colored
//                  lines, print <promise>COMPLETE</promise> when every story passes
//   echo           print "ECHO READY", then echo every byte typed at the terminal (raw mode) until a
//                  line "q" or Ctrl-D
//   crash          print a line and exit 3
//   false-promise  print the completion promise without doing anything
//   slow           print "slow line N" every FIXTURE_SLOW_MS (100) ms, FIXTURE_SLOW_COUNT (600) times
//   flood          write FIXTURE_FLOOD_MB (16) MB of colored, multi-byte lines as fast as the PTY takes them
//   noop           nothing
//   wait           wait until the file FIXTURE_GATE exists (a harness lets the agent go once its clients are there)
//
// FIXTURE_PID_FILE: write this process's pid there first. FIXTURE_IGNORE_TERM=1: ignore SIGTERM.

import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const GREEN = '\x1b[32m';
const BOLD = '\x1b[1m';
const RESET = '\x1b[0m';

const out = (text) => process.stdout.write(text);
const steps = (process.argv[2] ?? process.env.FIXTURE_MODE ?? 'work').split(/[,+]/).filter(Boolean);
const num = (name, dflt) => (process.env[name] ? Number(process.env[name]) : dflt);

if (process.env.FIXTURE_PID_FILE) writeFileSync(process.env.FIXTURE_PID_FILE, String(process.pid));
if (process.env.FIXTURE_IGNORE_TERM === '1') process.on('SIGTERM', () => out('fixture: ignoring SIGTERM\n'));

function inGitRepo(cwd) {
  try {
    return execFileSync('git', ['rev-parse', '--is-inside-work-tree'], { cwd, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() === 'true';
  } catch {
    return false;
  }
}

function work() {
  const promptFile = process.env.RALPH_PROMPT_FILE;
  const taskDir = process.env.RALPH_TASK_DIR;
  if (!promptFile || !taskDir) {
    out('fixture: RALPH_PROMPT_FILE and RALPH_TASK_DIR must be set\n');
    process.exit(2);
  }
  const prompt = readFileSync(promptFile, 'utf8');
  out(`${BOLD}fixture agent${RESET}: iteration ${process.env.RALPH_ITERATION} of loop ${process.env.RALPH_LOOP_ID}\n`);
  out(`read a prompt of ${prompt.length} characters\n`);
  const prdPath = join(taskDir, 'prd.json');
  const prd = JSON.parse(readFileSync(prdPath, 'utf8'));
  const open = prd.userStories.filter((s) => !s.passes);
  open.sort((a, b) => (a.priority ?? Infinity) - (b.priority ?? Infinity));
  const story = open[0];
  if (story) {
    out(`working on ${GREEN}${story.id}${RESET}: ${story.title}\n`);
    story.passes = true;
    writeFileSync(prdPath, JSON.stringify(prd, null, 2) + '\n');
    appendFileSync(join(taskDir, 'progress.txt'), `## ${story.id} - ${story.title}\ndone by the fixture agent in iteration ${process.env.RALPH_ITERATION}\n\n`);
    const cwd = process.cwd();
    if (inGitRepo(cwd)) {
      execFileSync('git', ['add', '-A'], { cwd, stdio: 'ignore' });
      execFileSync('git', ['commit', '-q', '-m', `feat: ${story.id} - ${story.title}`], { cwd, stdio: 'ignore' });
      out(`committed ${GREEN}✓${RESET}\n`);
    }
  } else {
    out('no open story left\n');
  }
  if (prd.userStories.every((s) => s.passes)) out(`all stories pass\n<promise>COMPLETE</promise>\n`);
}

function echo() {
  return new Promise((resolve) => {
    process.stdin.setRawMode(true);
    process.stdin.resume();
    let line = '';
    const done = () => {
      process.stdin.setRawMode(false);
      process.stdin.pause();
      process.stdin.off('data', onData);
      out('\r\necho done\r\n');
      resolve();
    };
    const onData = (buf) => {
      out(buf);
      for (const ch of buf.toString('utf8')) {
        if (ch === '\x04') return done();
        if (ch === '\r' || ch === '\n') {
          if (line === 'q') return done();
          line = '';
          out('\n');
        } else {
          line += ch;
        }
      }
    };
    process.stdin.on('data', onData);
    out('ECHO READY\r\n');
  });
}

async function think() {
  const every = num('FIXTURE_THINK_MS', 350);
  for (const line of ['reading the task and progress.txt', 'choosing the next open story', 'editing files', 'running the checks']) {
    out(`  … ${line}\n`);
    await new Promise((r) => setTimeout(r, every));
  }
}

function slow() {
  const every = num('FIXTURE_SLOW_MS', 100);
  const count = num('FIXTURE_SLOW_COUNT', 600);
  return new Promise((resolve) => {
    let i = 0;
    const tick = () => {
      i += 1;
      out(`slow line ${i}\n`);
      if (i >= count) resolve();
      else setTimeout(tick, every);
    };
    tick();
  });
}

function flood() {
  const total = num('FIXTURE_FLOOD_MB', 16) * 1024 * 1024;
  let line = '';
  for (let i = 0; line.length < 200; i++) line += `flöod ✓ ${GREEN}${i}${RESET} 日本 `;
  // Lines of varying length, so multi-byte characters land on every chunk boundary sooner or later.
  const block = Array.from({ length: 64 }, (_, i) => `${i} ${line.slice(0, 100 + i)}\n`).join('');
  const blockBytes = Buffer.byteLength(block);
  let written = 0;
  return new Promise((resolve) => {
    const more = () => {
      while (written < total) {
        written += blockBytes;
        if (!process.stdout.write(block)) return process.stdout.once('drain', more);
      }
      out(`\nflood done: ${written} bytes\n`);
      resolve();
    };
    more();
  });
}

function wait() {
  const gate = process.env.FIXTURE_GATE;
  if (!gate) {
    out('fixture: the wait step needs FIXTURE_GATE\n');
    process.exit(2);
  }
  return new Promise((resolve) => {
    const look = () => (existsSync(gate) ? resolve() : setTimeout(look, 20));
    look();
  });
}

for (const spec of steps) {
  // "step@N": only in iteration N (e.g. "echo@1,work": type into the first iteration only).
  const [step, only] = spec.split('@');
  if (only !== undefined && only !== process.env.RALPH_ITERATION) continue;
  switch (step) {
    case 'work':
      work();
      break;
    case 'echo':
      await echo();
      break;
    case 'crash':
      out(`fixture: ${BOLD}crashing${RESET} on purpose\n`);
      process.exit(3);
      break;
    case 'false-promise':
      out('fixture: claiming completion without doing anything\n<promise>COMPLETE</promise>\n');
      break;
    case 'slow':
      await slow();
      break;
    case 'flood':
      await flood();
      break;
    case 'think':
      await think();
      break;
    case 'noop':
      break;
    case 'wait':
      await wait();
      break;
    default:
      out(`fixture: unknown step ${step}\n`);
      process.exit(2);
  }
}
process.exit(0);
