// `ralph run [DIR]`: validate and record the loop, then start its runner — detached (print the id
// and return) or, with --foreground, in this process with its output on stdout.

import { AGENT_NAMES, isAgentName } from '../../agents/registry.js';
import { describeEnd } from '../../client/describe.js';
import { openLoopStore } from '../../client/lookup.js';
import { launchRunner } from '../../loop/launch.js';
import { DEFAULT_AGENT, prepareLoop, type PrepareRequest } from '../../loop/prepare.js';
import { homePaths } from '../../store/paths.js';
import { UserError, whenOutputLost } from '../output.js';

export interface RunOptions {
  agent?: string;
  agentCmd?: string;
  maxIterations?: number;
  task?: string;
  name?: string;
  foreground?: boolean;
  iterationTimeout?: number;
  stallTimeout?: number;
  fallbackAgent?: string;
  installAgent?: boolean;
}

export async function run(dir: string, opts: RunOptions): Promise<void> {
  const paths = homePaths();
  const store = openLoopStore(paths);
  // ralph's own install dir too: agents it installed (here or for a daemon) are found like those on PATH.
  const request: PrepareRequest = { dir, agentSearchDirs: [paths.agentsBin] };
  // prepareLoop checks the agent name and says which ones exist.
  if (opts.agent !== undefined) request.agent = opts.agent as NonNullable<PrepareRequest['agent']>;
  if (opts.agentCmd !== undefined) request.agentCmd = opts.agentCmd;
  if (opts.maxIterations !== undefined) request.maxIterations = opts.maxIterations;
  if (opts.task !== undefined) request.task = opts.task;
  if (opts.name !== undefined) request.name = opts.name;
  if (opts.iterationTimeout !== undefined) request.iterationTimeoutMs = opts.iterationTimeout;
  if (opts.stallTimeout !== undefined) request.stallTimeoutMs = opts.stallTimeout;
  if (opts.fallbackAgent !== undefined) request.fallbackAgent = opts.fallbackAgent as NonNullable<PrepareRequest['fallbackAgent']>;
  // Names first: --install-agent must not go looking for a package of a typo.
  checkAgentName('--agent', opts.agent, ' or --agent-cmd');
  checkAgentName('--fallback-agent', opts.fallbackAgent, '');
  if (opts.installAgent && opts.agentCmd === undefined) {
    const { installAgentsFor } = await import('../../client/install-agent.js');
    await installAgentsFor(paths, [opts.agent ?? DEFAULT_AGENT, ...(opts.fallbackAgent ? [opts.fallbackAgent] : [])], (line) =>
      process.stderr.write(`${line.startsWith('ralph: ') ? '' : 'ralph: '}${line}\n`),
    );
  }
  const row = prepareLoop(store, paths, request);

  if (opts.foreground) {
    process.stderr.write(`ralph: loop ${row.id} (${row.agent}) runs in the foreground; Ctrl-C stops it\n`);
    const { runLoopInProcess } = await import('../../loop/foreground.js');
    const size = process.stdout.isTTY ? { cols: process.stdout.columns, rows: process.stdout.rows } : undefined;
    // The loop lives in this process: when its output can no longer be written (`| head` has read
    // enough, the terminal is gone) it stops as on Ctrl-C, so its row ends with the reason and the
    // exit code says it did not complete, instead of the process vanishing with the row still open.
    const stopper = (stop: (reason: string) => void) => {
      let lost = false;
      whenOutputLost((err, stream) => {
        if (lost || stream !== 'stdout') return;
        lost = true;
        stop(`its output could not be written (${err.code ?? err.message}${err.code === 'EPIPE' ? ': the reading end was closed' : ''})`);
      }, { closedPipe: true });
    };
    const status = await runLoopInProcess(paths, row.id, { output: process.stdout, stopper, ...(size ? { size } : {}) });
    const final = store.get(row.id)!;
    store.db.close();
    process.stderr.write(`ralph: ${describeEnd(row.id, { status, reason: final.reason, iteration: final.iteration })}\n`);
    // The agent's PTY may leave handles behind; the loop is over, so is this process.
    process.exit(status === 'completed' ? 0 : 1);
  }

  store.db.close();
  await launchRunner(paths, row.id);
  // Only the id on stdout, so that `id=$(ralph run ...)` works.
  process.stdout.write(`${row.id}\n`);
  process.stderr.write(
    `ralph: started loop ${row.id} (${row.agent}, at most ${row.maxIterations} iterations) — watch it: ralph attach ${row.id}\n`,
  );
}

function checkAgentName(flag: string, name: string | undefined, orElse: string): void {
  if (name !== undefined && !isAgentName(name)) throw new UserError(`${flag}: unknown agent ${JSON.stringify(name)}; use one of ${AGENT_NAMES.join(', ')}${orElse}`);
}
