// The daemon's `git` channel: after a good hello, the connection carries raw git protocol bytes of
// `git receive-pack` / `git upload-pack` run on repos/<repo>.git. Argument arrays only; the repo name
// is checked before any path is built. The first push to a new name creates the bare repo (hooks in).
//
// Hook output reaches the pusher through receive-pack's own side-band (as `remote:` lines). What git
// writes on stderr outside the side-band goes to the daemon's log, and when git fails before saying
// anything on the wire, the pusher gets it as a git `ERR` packet (`fatal: remote error: ...`).

import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { Duplex } from 'node:stream';
import { cleanGitEnv } from '../worktrees/git.js';
import { checkRepoName } from '../worktrees/names.js';
import { ensureBareRepo, findBareRepo, fixUnbornHead } from '../worktrees/repos.js';
import type { DaemonContext } from './context.js';
import type { HelloParams } from './protocol.js';

export type GitHello = Extract<HelloParams, { channel: 'git' }>;

/** No byte either way for this long: the peer is taken as gone and git is ended. */
const IDLE_MS = 15 * 60_000;
/** After SIGTERM, git (and its hooks) get this long before SIGKILL. */
const KILL_GRACE_MS = 5_000;
const STDERR_KEEP = 8 * 1024;

/** A git pkt-line `ERR <message>`: what git daemon sends to refuse; clients print `remote error: ...`. */
export function errPacket(message: string): Buffer {
  const body = Buffer.from(`ERR ${message.replace(/\n/g, ' ')}\n`, 'utf8');
  return Buffer.concat([Buffer.from((body.length + 4).toString(16).padStart(4, '0'), 'ascii'), body]);
}

/**
 * Problems with a git hello that are known before anything runs (a bad repo name, fetching a repo
 * that does not exist), as one line; null when the channel can go ahead. The daemon may call it
 * before it answers the hello, to refuse with an error reply instead.
 */
export function gitHelloProblem(hello: GitHello, ctx: Pick<DaemonContext, 'paths'>): string | null {
  let name: string;
  try {
    name = checkRepoName(hello.repo);
  } catch (err) {
    return (err as Error).message;
  }
  if (hello.service === 'git-upload-pack' && !findBareRepo(ctx.paths, name)) {
    return `no repo ${JSON.stringify(name)} on this daemon; push to it first (git push <remote> <branch>)`;
  }
  return null;
}

function refuse(conn: Duplex, message: string): void {
  conn.end(errPacket(`ralph: ${message}`));
}

/**
 * Serves one git channel until git exits; resolves then. `conn` is the connection right after the
 * daemon's hello reply. The caller still catches: a rejection here would be unhandled and end the daemon.
 */
export async function handleGitChannel(conn: Duplex, hello: GitHello, ctx: DaemonContext): Promise<void> {
  // The pushing side half-closes after its pack (git closes the helper's stdin): our side must keep
  // writing the report and the hooks' output after that.
  if ('allowHalfOpen' in conn) (conn as Duplex & { allowHalfOpen: boolean }).allowHalfOpen = true;
  const problem = gitHelloProblem(hello, ctx);
  if (problem) {
    ctx.log.warn(`git ${hello.service} ${JSON.stringify(hello.repo)} refused: ${problem}`);
    refuse(conn, problem);
    return;
  }
  let dir: string;
  const name = checkRepoName(hello.repo);
  try {
    if (hello.service === 'git-receive-pack') {
      const repo = await ensureBareRepo(ctx.paths, name);
      if (repo.created) ctx.log.info(`repo ${name}: created ${repo.dir}`);
      dir = repo.dir;
    } else {
      dir = findBareRepo(ctx.paths, name)!.dir;
    }
  } catch (err) {
    ctx.log.error(`repo ${name}: ${(err as Error).message}`);
    refuse(conn, `repo ${name}: ${(err as Error).message}`);
    return;
  }
  if (conn.destroyed) return; // the client left while the repo was being made
  await runGit(conn, hello, name, dir, ctx);
}

function runGit(conn: Duplex, hello: GitHello, name: string, dir: string, ctx: DaemonContext): Promise<void> {
  const service = hello.service === 'git-receive-pack' ? 'receive-pack' : 'upload-pack';
  const env: NodeJS.ProcessEnv = {
    ...cleanGitEnv(process.env),
    RALPH_HOME: ctx.paths.home,
    RALPH_DAEMON_SOCKET: ctx.paths.daemonSocket,
    RALPH_REPO: name,
  };
  if (hello.pushId) env.RALPH_PUSH_ID = hello.pushId;
  const what = `git ${service} ${name}${hello.pushId ? ` (push ${hello.pushId})` : ''}`;
  ctx.log.info(`${what}: start`);

  return new Promise((resolve) => {
    let child: ChildProcessWithoutNullStreams;
    try {
      // Its own process group, so a dead peer ends git and any hook it is running, all together.
      child = spawn('git', [service, dir], { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    } catch (err) {
      // spawn throws (rather than emitting 'error') on arguments it cannot pass, e.g. a NUL in the env.
      ctx.log.error(`${what}: cannot start git: ${(err as Error).message}`);
      if (!conn.destroyed) refuse(conn, `git ${service} could not start on this daemon`);
      resolve();
      return;
    }
    let wroteToPeer = false;
    let exited = false;
    let stderr = '';
    let killTimer: NodeJS.Timeout | undefined;

    const killGit = (why: string) => {
      if (exited || child.pid === undefined) return;
      ctx.log.warn(`${what}: ${why}; ending git`);
      const signalGroup = (sig: NodeJS.Signals) => {
        try {
          process.kill(-child.pid!, sig);
        } catch {
          /* gone */
        }
      };
      signalGroup('SIGTERM');
      killTimer ??= setTimeout(() => signalGroup('SIGKILL'), KILL_GRACE_MS);
    };

    let idle = setTimeout(() => killGit(`no traffic for ${IDLE_MS / 60_000} minutes`), IDLE_MS);
    const touch = () => idle.refresh();

    // peer → git
    conn.on('data', (chunk: Buffer) => {
      touch();
      if (!child.stdin.write(chunk)) {
        conn.pause();
        child.stdin.once('drain', () => conn.resume());
      }
    });
    conn.on('end', () => child.stdin.end()); // the client half-closed: git sees EOF, keeps writing
    conn.on('error', (err) => killGit(`connection error: ${err.message}`));
    conn.on('close', () => killGit('the peer went away'));
    conn.resume(); // the hello reader leaves the connection paused
    child.stdin.on('error', () => {
      /* git exited before reading everything: its exit says the rest */
    });

    // git → peer
    child.stdout.on('data', (chunk: Buffer) => {
      touch();
      wroteToPeer = true;
      if (!conn.write(chunk)) {
        child.stdout.pause();
        conn.once('drain', () => child.stdout.resume());
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      touch();
      stderr = (stderr + d).slice(-STDERR_KEEP);
    });

    const finish = async (code: number | null, signal: NodeJS.Signals | null, spawnError?: Error) => {
      if (exited) return;
      exited = true;
      if (code === 0 && service === 'receive-pack') {
        await fixUnbornHead(dir).catch((err: Error) => ctx.log.warn(`repo ${name}: could not set HEAD: ${err.message}`));
      }
      clearTimeout(idle);
      clearTimeout(killTimer);
      const lines = stderr.split('\n').map((l) => l.trim()).filter(Boolean);
      for (const l of lines) ctx.log.info(`${what}: ${l}`);
      if (spawnError || code !== 0) {
        const why = spawnError?.message ?? lines.filter((l) => !l.startsWith('hint:')).at(-1) ?? `exit ${code ?? signal}`;
        ctx.log.warn(`${what}: failed: ${why}`);
        if (!wroteToPeer && !conn.destroyed) {
          refuse(conn, `git ${service} failed: ${why.replace(/^fatal: /, '')}`);
          resolve();
          return;
        }
      } else {
        ctx.log.info(`${what}: done`);
      }
      if (!conn.destroyed) conn.end();
      resolve();
    };
    child.on('error', (err) => void finish(null, null, err));
    // 'close': git exited and its stdout is drained into the connection.
    child.on('close', (code, signal) => void finish(code, signal));
  });
}
