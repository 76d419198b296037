// A real terminal for tests: one tmux server of our own (a private socket, no user config), sessions
// running the real CLI, keys sent as a user types them, and the screen read back. Waiting for the
// screen polls capture-pane under a deadline (the screen has no event to await).

import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { RALPH_BIN, runCommand, waitUntil } from './env.js';

/** The exit code of a process that has exited and is not reaped yet (a zombie); undefined otherwise. */
function zombieExitStatus(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from the 3rd (state) on
    if (fields[0] !== 'Z') return undefined;
    const wait = Number(fields[52 - 3]);
    return Number.isInteger(wait) && (wait & 0x7f) === 0 ? String((wait >> 8) & 0xff) : undefined;
  } catch {
    return undefined;
  }
}

export class Tmux {
  readonly socket = `ralph-test-${process.pid}-${randomBytes(3).toString('hex')}`;
  constructor(private readonly env: NodeJS.ProcessEnv) {}

  async run(args: string[]): Promise<string> {
    const r = await runCommand('tmux', ['-f', '/dev/null', '-L', this.socket, ...args], { env: this.env, timeoutMs: 10_000 });
    if (r.code !== 0) throw new Error(`tmux ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  }

  /** A detached session (120x40 unless said) running `ralph <args>`; its pane stays after the command exits. */
  async start(session: string, ralphArgs: string[], size: { cols: number; rows: number } = { cols: 120, rows: 40 }): Promise<void> {
    await this.run(['new-session', '-d', '-s', session, '-x', String(size.cols), '-y', String(size.rows), process.execPath, RALPH_BIN, ...ralphArgs, ';', 'set-option', '-t', session, 'remain-on-exit', 'on']);
  }

  /** A detached session running a shell (`sh`), for commands typed as a user would. */
  async shell(session: string, size: { cols: number; rows: number } = { cols: 120, rows: 40 }, env: Record<string, string> = {}): Promise<void> {
    const vars = Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]);
    await this.run(['new-session', '-d', '-s', session, '-x', String(size.cols), '-y', String(size.rows), ...vars, 'sh']);
  }

  screen(session: string, opts: { escapes?: boolean } = {}): Promise<string> {
    return this.run(['capture-pane', '-p', '-J', ...(opts.escapes ? ['-e'] : []), '-t', session]);
  }

  keys(session: string, ...keys: string[]): Promise<string> {
    return this.run(['send-keys', '-t', session, ...keys]);
  }

  text(session: string, text: string): Promise<string> {
    return this.run(['send-keys', '-t', session, '-l', text]);
  }

  /** A tmux format about the session's pane (`#{pane_dead}`, `#{alternate_on}`, `#{cursor_flag}`, …). */
  async format(session: string, format: string): Promise<string> {
    return (await this.run(['display-message', '-p', '-t', session, format])).trim();
  }

  async waitForScreen(session: string, what: string, check: (screen: string) => boolean, timeoutMs = 20_000): Promise<string> {
    let last = '';
    try {
      return await waitUntil(
        async () => {
          last = await this.screen(session);
          return check(last) ? last : undefined;
        },
        { what, timeoutMs, intervalMs: 50 },
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}; the screen:\n${last}`);
    }
  }

  /** The exit status of the session's command, once it has exited and tmux has reaped it (pane_dead comes first). */
  async exitStatus(session: string, timeoutMs = 20_000): Promise<string> {
    try {
      return await waitUntil(
        async () => {
          const [dead, status, pid] = (await this.format(session, '#{pane_dead}|#{pane_dead_status}|#{pane_pid}')).split('|');
          if (status) return status;
          // tmux reaps a pane's process on SIGCHLD, which can lag behind the pane's end on a loaded
          // machine: a zombie's exit status is readable meanwhile (/proc/PID/stat field 52, as waitpid has it).
          return dead === '1' && pid ? zombieExitStatus(Number(pid)) : undefined;
        },
        { what: `the command in ${session} to exit`, timeoutMs },
      );
    } catch (err) {
      const state = await this.format(session, 'dead=#{pane_dead} signal=#{pane_dead_signal} pid=#{pane_pid}').catch(() => '?');
      const pid = /pid=(\d+)/.exec(state)?.[1];
      let proc = '';
      try {
        proc = pid ? readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').slice(0, 3).join(' ') : '';
      } catch {
        proc = 'no such process';
      }
      throw new Error(`${(err as Error).message} (${state}; ${proc}); the screen:\n${await this.screen(session).catch(() => '?')}`);
    }
  }

  async paneDead(session: string): Promise<boolean> {
    return (await this.format(session, '#{pane_dead}')) === '1';
  }

  async kill(): Promise<void> {
    await runCommand('tmux', ['-L', this.socket, 'kill-server'], { env: this.env, timeoutMs: 10_000 }).catch(() => {});
  }
}
