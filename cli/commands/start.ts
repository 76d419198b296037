// `ralph start --remote NAME --branch B`: start a loop on a branch already pushed to a remote, without
// a push. Asks the daemon (`loop.start`), records the loop in the local session DB, prints its id.

import { findRemote } from '../../client/daemon.js';
import { defaultRepoName } from '../../client/local-repo.js';
import { RemoteStartError, startOnRemote } from '../../client/remote-start.js';
import { ControlMethods, type LoopStartParams } from '../../daemon/protocol.js';
import { readConfig } from '../../store/config.js';
import { openDb } from '../../store/db.js';
import { LoopStore } from '../../store/loops.js';
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
  iterationTimeout?: number;
  stallTimeout?: number;
  fallbackAgent?: LoopStartParams['fallbackAgent'];
}

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
  const repo = opts.repo ?? remote.repo ?? (await defaultRepoName());
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
  if (opts.iterationTimeout !== undefined) params.iterationTimeoutMs = opts.iterationTimeout;
  if (opts.stallTimeout !== undefined) params.stallTimeoutMs = opts.stallTimeout;
  if (opts.fallbackAgent) params.fallbackAgent = opts.fallbackAgent;

  const store = new LoopStore(openDb(homePaths().db));
  try {
    const { row, started } = await startOnRemote(store, remote, ControlMethods.loopStart, params, {
      describe: `start a loop on ${remote.name} (${repo} ${opts.branch})`,
      repo,
      branch: opts.branch,
      // What the daemon does meanwhile (installing the agent CLI, ...), as it happens.
      progress: (line) => process.stderr.write(`${line.startsWith('ralph: ') ? '' : 'ralph: '}${line}\n`),
    }).catch((err: unknown) => {
      throw err instanceof RemoteStartError ? new UserError(err.message) : err;
    });
    process.stdout.write(`${row.id}\n`);
    process.stderr.write(`ralph: started loop ${row.id} on ${remote.name} (${started.agent}, ${started.maxIterations} iterations) — ralph attach ${row.id}\n`);
  } finally {
    store.db.close();
  }
}
