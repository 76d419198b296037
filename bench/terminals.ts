// Keystroke echo as a user feels it: a terminal client (the real `ralph attach --interactive`, or
// `tmux attach`) runs in a PTY that this process drives as its terminal; a key is written to that
// PTY and timed until its echo comes back out of it. Both clients reach the same far end, a PTY
// running `stty raw -echo; cat`, so the figures differ only by what sits in between.

import { spawnSync } from 'node:child_process';
import pty from 'node-pty';
import { percentiles, type Percentiles } from './measure.js';

/** Untimed keys through each client before its first timed one (BENCH_ECHO_WARMUP; see bench/local.ts). */
const ECHO_WARMUP = Number(process.env.BENCH_ECHO_WARMUP || 50);

/** The far end both clients type into: raw, no echo of its own, every byte back as it came. */
export const CAT_COMMAND = "stty raw -echo; printf 'ECHO READY\\r\\n'; exec cat";

/** Escape sequences (CSI, OSC, two-byte ESC) a client may send around an echoed key. */
const ESCAPES = /\x1b(?:\[[\x20-\x3f]*[\x40-\x7e]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[\x20-\x2f]*[\x30-\x7e])/g;

/** A terminal client in a PTY of ours, as a user's terminal runs it. */
export class PtyClient {
  private readonly term: pty.IPty;
  private text = '';
  private waiter: { needle: string; resolve: () => void } | null = null;
  private exited = false;

  constructor(file: string, args: string[], env: NodeJS.ProcessEnv) {
    this.term = pty.spawn(file, args, { name: 'xterm-256color', cols: 120, rows: 40, env: env as Record<string, string> });
    this.term.onData((d) => {
      this.text += d;
      this.check();
    });
    this.term.onExit(() => (this.exited = true));
  }

  get pid(): number {
    return this.term.pid;
  }

  /** Resolves once `needle` has appeared in the visible text (escape sequences left out). */
  seen(needle: string, timeoutMs = 20_000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new Error(`no "${needle}" within ${timeoutMs} ms; the client showed: ${JSON.stringify(this.text.slice(-400))}`));
      }, timeoutMs);
      this.waiter = {
        needle,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
      this.check();
    });
  }

  /**
   * Round trips of single keys, `count` of them after `warmup` untimed ones; with `pauseMs`, that
   * long a pause after the i-th key (a typist's pace, as bench/tui.ts types).
   */
  async echo(count: number, warmup = 50, pauseMs?: (i: number) => number): Promise<number[]> {
    const samples: number[] = [];
    const alphabet = 'abcdefgijknopqsuvwxyz';
    for (let i = 0; i < count + warmup; i++) {
      const ch = alphabet[i % alphabet.length]!;
      this.text = '';
      const echoed = this.seen(ch, 5000);
      const t0 = process.hrtime.bigint();
      this.term.write(ch);
      await echoed;
      if (i >= warmup) samples.push(Number(process.hrtime.bigint() - t0) / 1e6);
      if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs(i)));
    }
    return samples;
  }

  write(data: string): void {
    this.term.write(data);
  }

  kill(): void {
    if (!this.exited) this.term.kill();
  }

  private check(): void {
    const w = this.waiter;
    if (!w) return;
    if (this.text.replace(ESCAPES, '').includes(w.needle)) {
      this.waiter = null;
      w.resolve();
    }
  }
}

/** A tmux server of our own (own socket, no user config) with one session running `command`. */
export class TmuxSession {
  private readonly socket = `ralph-bench-${process.pid}`;

  constructor(private readonly env: NodeJS.ProcessEnv) {}

  static available(): boolean {
    return spawnSync('tmux', ['-V'], { stdio: 'ignore' }).status === 0;
  }

  start(command: string): void {
    this.tmux(['-f', '/dev/null', 'new-session', '-d', '-s', 'bench', '-x', '120', '-y', '40', command]);
    // No status line: its clock would redraw now and then, in the middle of a measurement.
    this.tmux(['set-option', '-g', 'status', 'off']);
  }

  /** `tmux attach` in a PTY of ours: the client a tmux user types into. */
  attach(): PtyClient {
    return new PtyClient('tmux', ['-L', this.socket, 'attach-session', '-t', 'bench'], this.env);
  }

  stop(): void {
    spawnSync('tmux', ['-L', this.socket, 'kill-server'], { env: this.env, stdio: 'ignore' });
  }

  private tmux(args: string[]): void {
    const r = spawnSync('tmux', ['-L', this.socket, ...args], { env: this.env, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`tmux ${args.join(' ')} failed: ${r.stderr}`);
  }
}

/**
 * Echo through several clients, interleaved in rounds so a change in the machine's load during the
 * run falls on all of them alike. Returns each client's percentiles, in the order given.
 */
export async function interleavedEcho(clients: PtyClient[], count: number, rounds = 10): Promise<Percentiles[]> {
  const samples = clients.map(() => [] as number[]);
  const perRound = Math.ceil(count / rounds);
  for (let r = 0; r < rounds; r++) {
    for (let c = 0; c < clients.length; c++) samples[c]!.push(...(await clients[c]!.echo(perRound, r === 0 ? ECHO_WARMUP : 5)));
  }
  return samples.map((s) => percentiles(s));
}
