// What the daemon hands to the code that serves its channels (control, loop, git): where its data
// lives, its session DB, its config, its log, and the one way to start a loop.
//
// The git channel: the daemon reads and checks the hello (repo name via worktrees/checkRepoName; for
// git-upload-pack the repo must exist), writes the hello reply itself, and only then calls
// daemon/git-service.ts `handleGitChannel(conn, hello, ctx)` with the stream positioned right after
// the reply (bytes the client sent after its hello are still in the stream). From there the git
// service owns the connection: git protocol bytes only, errors as git would show them.

import type { Config } from '../store/config.js';
import type { LoopStore } from '../store/loops.js';
import type { HomePaths } from '../store/paths.js';
import type { LoopResumeParams, LoopStartParams, LoopStartResult } from './protocol.js';

/** One line per event on the daemon's stderr, timestamped by the logger. */
export interface DaemonLogger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

export interface DaemonContext {
  /** The daemon's RALPH_HOME layout (repos/, worktrees/, agents/, daemon.sock, ...). */
  readonly paths: HomePaths;
  /** The daemon's own session DB. */
  readonly store: LoopStore;
  readonly config: Config;
  readonly log: DaemonLogger;
  /** Host label of this machine (what `hello` and `daemon.info` report). */
  readonly host: string;
  /**
   * Starts a loop on a branch of a bare repo under paths.repos: worktree, agent install, runner.
   * Progress lines (agent install, ...) go to `progress` as they happen and into the loop's log.
   * Rejects with an RpcError (code and one-line message fit for a `remote:` line) when it cannot start;
   * nothing is left half-done then.
   */
  startLoop(params: LoopStartParams, progress?: (line: string) => void): Promise<LoopStartResult>;
  /** Starts a new loop that goes on where a failed or stopped one ended (see LoopResumeParams). */
  resumeLoop(params: LoopResumeParams, progress?: (line: string) => void): Promise<LoopStartResult>;
  /**
   * Stops a loop this daemon is still making (no runner yet): true when its row is now `stopped` and
   * the start gives up; false when it is not being made or its runner is being launched right now.
   */
  stopStarting(loopId: string): boolean;
}
