// The user's terminal during `ralph attach`: raw mode in, the agent's bytes out, short notes on
// stderr, and a restore that runs on every way out (normal, error, signal, process exit).
// Without a TTY (scripts, tests) there is no raw mode and no size; keys are read from the pipe.

export interface AttachIo {
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
}

// What an agent's TUI may have turned on and a shell would not want left on: mouse reporting,
// bracketed paste, focus reporting, application cursor keys and keypad; then plain attributes and a
// visible cursor.
const RESET_MODES = '\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?2004l\x1b[?1004l\x1b[?1l\x1b>\x1b[0m\x1b[?25h';
/** The alternate screen's modes: 1049 (xterm's, with the cursor saved), 1047 and 47 (older). */
const ALT_SCREEN_MODES = ['1049', '1047', '47'];
// Leaving it is written only if the output entered it: on the normal screen, 1049l would also
// restore a cursor position nobody saved (the top left corner, on xterm).
const LEAVE_ALT_SCREEN = '\x1b[?1049l';

export class AttachTerminal {
  private restored = false;
  private rawMode = false;
  /** The output left the terminal on the alternate screen (a full-screen agent, or its replayed screen). */
  private altScreen = false;
  private readonly onExit = () => this.restore();
  private keyListener: ((chunk: Buffer) => void) | undefined;
  private endListener: (() => void) | undefined;
  private resizeListener: (() => void) | undefined;

  constructor(readonly io: AttachIo) {}

  get isTty(): boolean {
    return Boolean(this.io.stdout.isTTY);
  }

  /** Starts reading keys (raw when stdin is a terminal); `onEnd` when stdin ends (a pipe's EOF). */
  enter(onKeys: (chunk: Buffer) => void, onEnd: () => void = () => {}): void {
    const { stdin } = this.io;
    if (stdin.isTTY) {
      stdin.setRawMode(true);
      this.rawMode = true;
    }
    // Even process.exit() from elsewhere (fail(), an uncaught error) gives the terminal back.
    process.on('exit', this.onExit);
    this.keyListener = onKeys;
    this.endListener = onEnd;
    stdin.on('data', onKeys);
    stdin.once('end', onEnd);
    stdin.resume();
  }

  /** The terminal's size, when there is a terminal. */
  size(): { cols: number; rows: number } | undefined {
    const { stdout } = this.io;
    return stdout.isTTY && stdout.columns > 0 && stdout.rows > 0 ? { cols: stdout.columns, rows: stdout.rows } : undefined;
  }

  /** Calls back on every resize (SIGWINCH). */
  onResize(listener: () => void): void {
    if (!this.isTty) return;
    this.resizeListener = listener;
    this.io.stdout.on('resize', listener);
  }

  /** The agent's output (or a screen to redraw); false when the terminal wants the writer to wait for 'drain'. */
  write(data: string | Uint8Array): boolean {
    this.followAltScreen(data);
    return this.io.stdout.write(data);
  }

  /** Whether `data` enters or leaves the alternate screen (the last switch in it counts). */
  private followAltScreen(data: string | Uint8Array): void {
    const text = typeof data === 'string' ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (text.indexOf('\x1b[?') === -1) return; // most output: one fast scan
    let on = -1;
    let off = -1;
    for (const mode of ALT_SCREEN_MODES) {
      on = Math.max(on, text.lastIndexOf(`\x1b[?${mode}h`));
      off = Math.max(off, text.lastIndexOf(`\x1b[?${mode}l`));
    }
    if (on !== off) this.altScreen = on > off;
  }

  /** A short line of ours, on its own line, so the agent's output is not mixed into it. */
  note(text: string): void {
    this.io.stderr.write(this.isTty ? `\r\n\x1b[7m ralph \x1b[0m ${text}\r\n` : `[ralph] ${text}\n`);
  }

  restore(): void {
    if (this.restored) return;
    this.restored = true;
    process.off('exit', this.onExit);
    const { stdin, stdout } = this.io;
    if (this.resizeListener) stdout.off('resize', this.resizeListener);
    if (this.rawMode) {
      try {
        stdin.setRawMode(false);
      } catch {
        /* the terminal is gone (SIGHUP) */
      }
    }
    if (this.isTty) {
      try {
        stdout.write((this.altScreen ? LEAVE_ALT_SCREEN : '') + RESET_MODES);
      } catch {
        /* the terminal is gone */
      }
    }
    if (this.keyListener) stdin.off('data', this.keyListener);
    if (this.endListener) stdin.off('end', this.endListener);
    stdin.pause();
  }
}
