// `ralph start --remote NAME --branch B`: start a loop on a branch already pushed to a remote, without
// a push. Asks the daemon (`loop.start`), records the loop in the local session DB, prints its id.

import { checkDaemonLoops, controlRequest, findRemote, openControl } from '../../client/daemon.js';
import { defaultRepoName } from '../../client/local-repo.js';
import { recordPushedLoops } from '../../client/record.js';
import { ControlMethods, ControlNotifications, type DaemonLoop, type LoopStartParams, type LoopStartResult } from '../../daemon/protocol.js';
import { readConfig } from '../../store/config.js';
import { openDb } from '../../store/db.js';
import { LoopStore, NO_USAGE, nowIso } from '../../store/loops.js';
import { checkRepoName } from '../../store/names.js';
import { homePaths } from '../../store/paths.js';
import { UserError } from '../output.js';

export interface StartOptions {
  remote: string;
  branch: string;
  repo?: string;
  agent?: LoopStartParams['agent'];
  agentCmd?: string;
  maxIterations?: number;
  task?: string;
}

/** Connecting and saying hello: short. Starting may install the agent CLI first: long. */
const CONNECT_TIMEOUT_MS = 10_000;
const START_TIMEOUT_MS = 15 * 60_000;

function checkBranch(branch: string): void {
  // The daemon checks it against its repo; this catches what could never be a branch name.
  if (branch === '' || branch.startsWith('-') || /[\s~^:?*[\\\x00-\x1f\x7f]/.test(branch) || branch.includes('..')) {
    throw new UserError(`bad branch name ${JSON.stringify(branch)}`);
  }
}

export async function run(opts: StartOptions): Promise<void> {
  const config = readConfig();
  let remote;
  try {
    remote = findRemote(config, opts.remote);
  } catch (err) {
    throw new UserError((err as Error).message);
  }
  const repo = opts.repo ?? remote.repo ?? defaultRepoName();
  if (!repo) throw new UserError(`which repo on ${remote.name}? give --repo NAME (remote ${remote.name} has none saved)`);
  try {
    checkRepoName(repo);
  } catch (err) {
    throw new UserError((err as Error).message);
  }
  checkBranch(opts.branch);

  const params: LoopStartParams = { repo, branch: opts.branch };
  if (opts.agent) params.agent = opts.agent;
  if (opts.agentCmd) params.agentCmd = opts.agentCmd;
  if (opts.maxIterations !== undefined) params.maxIterations = opts.maxIterations;
  if (opts.task) params.task = opts.task;

  const store = new LoopStore(openDb(homePaths().db));
  const conn = await openControl(remote, { timeoutMs: CONNECT_TIMEOUT_MS }).catch((err: Error) => {
    throw new UserError(err.message);
  });
  // What the daemon does meanwhile (installing the agent CLI, ...), as it happens.
  conn.peer.onNotification(ControlNotifications.progress, (p) => {
    const line = typeof (p as { line?: unknown })?.line === 'string' ? (p as { line: string }).line : '';
    if (line) process.stderr.write(`${line.startsWith('ralph: ') ? '' : 'ralph: '}${line.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, '')}\n`);
  });
  try {
    let started: LoopStartResult;
    try {
      started = await controlRequest<LoopStartResult>(conn, ControlMethods.loopStart, params, { timeoutMs: START_TIMEOUT_MS });
    } catch (err) {
      throw new UserError(`cannot start a loop on ${remote.name} (${repo} ${opts.branch}): ${(err as Error).message.replace(/^remote \S+ \([^)]*\): /, '')}`);
    }
    // The daemon's own record of the loop (status, commit, worktree); a minimal one if it is not listed yet.
    let loop: DaemonLoop | undefined;
    try {
      const all = checkDaemonLoops(await controlRequest(conn, ControlMethods.loopList, {}, { timeoutMs: CONNECT_TIMEOUT_MS }), remote);
      loop = all.find((l) => l.loopId === started.loopId);
    } catch {
      /* recorded from the start answer below */
    }
    const now = nowIso();
    loop ??= {
      loopId: started.loopId,
      name: started.loopId,
      repo,
      branch: opts.branch,
      baseCommit: null,
      worktree: started.worktree,
      agent: started.agent,
      status: 'starting',
      iteration: 0,
      maxIterations: started.maxIterations,
      currentStory: null,
      startedAt: now,
      updatedAt: now,
      endedAt: null,
      reason: null,
      pushId: null,
      pausedUntil: null,
      resumedFrom: null,
      usage: NO_USAGE,
    };
    const [row] = recordPushedLoops(store, remote, [loop], { host: conn.hello.host });
    process.stdout.write(`${row!.id}\n`);
    process.stderr.write(
      `ralph: started loop ${row!.id} on ${remote.name} (${started.agent}, ${started.maxIterations} iterations) — ralph attach ${row!.id}\n`,
    );
  } finally {
    conn.peer.close('done');
    store.db.close();
  }
}
