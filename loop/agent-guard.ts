// The orphan guard: a few lines of sh that end an agent's processes once the runner is gone, in
// whatever way it went (SIGKILL and the OOM killer included). The guard holds a pipe from the runner
// on fd 3; the kernel closes it when the runner dies, and the guard then ends the agent's process
// group and the groups of every process descended from the agent or carrying its mark
// (RALPH_AGENT_RUN), or in a session one of them started: process-tree.ts does the same for the
// runner while it lives, and says why.
//
// A stream agent runs under the guard (spawnGuarded). A PTY agent leads its terminal's session and
// is watched from beside it (guardPtyAgent): nothing comes between the agent and its terminal, and
// the PTY's hangup, which reaches that session only, still does what it did.

import { spawn, type ChildProcess, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { RUN_MARK } from './process-tree.js';

/**
 * `agent_groups ROOT MARK` sets g to the groups to end (not the guard's own): one pass over /proc
 * ("pid (comm) state ppid pgrp sid …", comm may hold ") "), then the tree from ROOT (empty: none)
 * and from every process with MARK in its environment (grep, the one fork), then the groups of its
 * sessions. `watch_runner ROOT MARK` waits for the end of fd 3, then ends them: TERM, and 3 s later
 * KILL, also to what the agent started meanwhile (found by its mark: by then ROOT may be another's).
 * A TERM before the end of fd 3 is the runner's own doing (a stop, sent to the guard's group): it
 * just goes.
 * After end-of-file it must outlive its own TERM to send the KILL, its own group's last (it is in it).
 */
const WATCHER_FUNCTIONS = [
  'agent_groups() {',
  '  a= t=" $1 " g=',
  `  [ "$2" ] && for f in $(grep -lsaF "${RUN_MARK}=$2" /proc/[0-9]*/environ); do`,
  '    f=${f#/proc/}; t="$t${f%/environ} "',
  '  done',
  '  for f in /proc/[0-9]*/stat; do',
  '    { read -r s <"$f"; } 2>/dev/null || continue',
  '    f=${f#/proc/}; set -- ${s##*") "}; a="$a ${f%/stat},$2,$3,$4"',
  '  done',
  '  n=1',
  '  while [ "$n" ]; do',
  '    n=',
  '    for e in $a; do',
  '      IFS=,; set -- $e; unset IFS',
  '      case $t in *" $1 "*) continue;; esac',
  '      case $t in *" $2 "*) t="$t$1 " n=1;; esac',
  '    done',
  '  done',
  '  for e in $a; do',
  '    IFS=,; set -- $e; unset IFS',
  '    case $t in *" $1 "*|*" $4 "*) case " $$ $g " in *" $3 "*) ;; *) g="$g $3";; esac;; esac',
  '  done',
  '}',
  'watch_runner() {',
  "  trap 'exit 0' TERM",
  '  while read -r _ <&3; do :; done',
  "  trap '' TERM",
  '  agent_groups "$1" "$2"',
  '  for x in $g; do kill -TERM "-$x"; done',
  '  kill -TERM 0',
  '  sleep 3',
  '  k=$g',
  '  agent_groups "" "$2"',
  '  for x in $k $g; do kill -KILL "-$x"; done',
  '  kill -KILL 0',
  '}',
];

/**
 * The stream agent runs in the guard's foreground with the signal dispositions the runner had (a
 * background job of a non-interactive sh would ignore SIGINT and SIGQUIT, and so would everything
 * it starts): Esc as SIGINT ends an agent that has no handler of its own, as Ctrl-C in a terminal.
 * Only the watcher is a background job; the tree it ends starts at the guard ($$).
 */
const STREAM_GUARD = [
  // The group's SIGINT (Esc) is for the agent: sh stays to report its end. A caught signal is reset
  // to its default for the agent (an ignored one would not be).
  'trap : INT QUIT',
  ...WATCHER_FUNCTIONS,
  `{ watch_runner $$ "$${RUN_MARK}"; } </dev/null >/dev/null 2>&1 &`,
  'w=$!',
  'exec 3<&-',
  '"$@"',
  'rc=$?',
  'kill -KILL "$w" 2>/dev/null',
  'exit "$rc"',
].join('\n');

/** Beside a PTY agent: $1 is the agent's pid (its group and session), $2 its mark. */
const PTY_GUARD = [...WATCHER_FUNCTIONS, 'watch_runner "$1" "$2"'].join('\n');

/**
 * Starts `file args` under the guard, detached (a process group and session of its own, led by the
 * guard, for process-tree.ts to start from), with pipes for stdin, stdout and stderr. `env` carries
 * the agent's mark. The guard exits with the agent's status (128+n when a signal ended it).
 */
export function spawnGuarded(file: string, args: string[], o: { cwd: string; env: Record<string, string> }): ChildProcessWithoutNullStreams {
  const proc = spawn('/bin/sh', ['-c', STREAM_GUARD, 'ralph-agent-guard', file, ...args], {
    cwd: o.cwd,
    env: o.env,
    detached: true,
    stdio: ['pipe', 'pipe', 'pipe', 'pipe'],
  }) as ChildProcessWithoutNullStreams;
  (proc.stdio[3] as NodeJS.WritableStream | null)?.on('error', () => {});
  return proc;
}

/**
 * Watches the PTY agent `pid` (given `mark` as its RALPH_AGENT_RUN) from a process of its own, for
 * as long as the agent runs: call release() once it has exited. The watcher leads a session of its
 * own (its `kill 0` reaches itself only, never the runner's group: a foreground runner shares the
 * user's), in / (it holds no worktree), and gets the mark as an argument, not in its environment:
 * a stop's walk of the agent's processes leaves it watching, in case the runner dies before the KILL.
 */
export function guardPtyAgent(pid: number, mark: string, onError: (err: Error) => void): { release(): void } {
  // Nor an outer loop's (ralph run by an agent): ending that loop reaches this runner by its mark,
  // and this watch must outlive the runner.
  const { [RUN_MARK]: _outerMark, ...env } = process.env;
  const watcher: ChildProcess = spawn('/bin/sh', ['-c', PTY_GUARD, 'ralph-pty-guard', String(pid), mark], {
    cwd: '/',
    env,
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
  });
  watcher.on('error', onError);
  (watcher.stdio[3] as NodeJS.WritableStream | null)?.on('error', () => {});
  return {
    // KILL: its TERM trap would do the same, but nothing of the script needs to run for it.
    release: () => watcher.kill('SIGKILL'),
  };
}
