// The user's terminal while `ralph tui` runs: raw keys in, the alternate screen out, and the
// terminal given back exactly as it was on every way out (quit, error, signal, process.exit from
// anywhere). Also the renderer's view of it (pi-tui's Terminal interface): a plain writer with a size.
// Keys are not read through the renderer: app.ts routes them (interactive mode needs the raw bytes).

import type { Terminal } from './renderer.js';

export interface TuiIo {
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
}

const ALT_SCREEN_ON = '\x1b[?1049h';
const ALT_SCREEN_OFF = '\x1b[?1049l';
const HIDE_CURSOR = '\x1b[?25l';
const SHOW_CURSOR = '\x1b[?25h';
const CLEAR = '\x1b[2J\x1b[H';
// What the TUI, or an agent's output shown in it, may have left on: mouse reporting, bracketed paste,
// application cursor keys and keypad, synchronized output; then plain attributes.
const RESET_MODES = '\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?2004l\x1b[?1l\x1b>\x1b[?2026l\x1b[0m';

export class TuiTerminal implements Terminal {
  private entered = false;
  private rawMode = false;
  private resizeListener: (() => void) | undefined;
  private readonly onExit = () => this.restore();

  constructor(readonly io: TuiIo) {}

  /** Raw mode, the alternate screen, no cursor. */
  enter(): void {
    if (this.entered) return;
    this.entered = true;
    process.on('exit', this.onExit);
    this.setRaw(true);
    this.io.stdout.write(ALT_SCREEN_ON + HIDE_CURSOR + CLEAR);
  }

  /** Hands the terminal to someone else for a while (attach, the pager): cooked mode, a clean screen. */
  lend(): void {
    this.setRaw(false);
    this.io.stdout.write(RESET_MODES + CLEAR + SHOW_CURSOR);
  }

  /** Takes it back after lend(). */
  takeBack(): void {
    this.setRaw(true);
    // The borrower (attach) leaves the alternate screen if its agent's output had entered it.
    this.io.stdout.write(ALT_SCREEN_ON + RESET_MODES + HIDE_CURSOR + CLEAR);
  }

  /** Gives the terminal back as it was. Safe to call more than once, and when the terminal is gone. */
  restore(): void {
    if (!this.entered) return;
    this.entered = false;
    process.off('exit', this.onExit);
    if (this.resizeListener) this.io.stdout.off('resize', this.resizeListener);
    this.setRaw(false);
    try {
      this.io.stdout.write(RESET_MODES + SHOW_CURSOR + ALT_SCREEN_OFF);
    } catch {
      /* the terminal is gone (SIGHUP) */
    }
  }

  private setRaw(on: boolean): void {
    const { stdin } = this.io;
    if (!stdin.isTTY || this.rawMode === on) return;
    try {
      stdin.setRawMode(on);
      this.rawMode = on;
    } catch {
      /* the terminal is gone */
    }
  }

  // ---- pi-tui's Terminal ----

  start(_onInput: (data: string) => void, onResize: () => void): void {
    this.resizeListener = onResize;
    this.io.stdout.on('resize', onResize);
  }

  stop(): void {
    if (this.resizeListener) this.io.stdout.off('resize', this.resizeListener);
    this.resizeListener = undefined;
  }

  drainInput(): Promise<void> {
    return Promise.resolve();
  }

  write(data: string): void {
    this.io.stdout.write(data);
  }

  get columns(): number {
    return this.io.stdout.columns || 80;
  }

  get rows(): number {
    return this.io.stdout.rows || 24;
  }

  get kittyProtocolActive(): boolean {
    return false;
  }

  moveBy(lines: number): void {
    if (lines !== 0) this.write(lines > 0 ? `\x1b[${lines}B` : `\x1b[${-lines}A`);
  }

  hideCursor(): void {
    this.write(HIDE_CURSOR);
  }

  showCursor(): void {
    this.write(SHOW_CURSOR);
  }

  clearLine(): void {
    this.write('\x1b[K');
  }

  clearFromCursor(): void {
    this.write('\x1b[J');
  }

  clearScreen(): void {
    this.write(CLEAR);
  }

  setTitle(): void {}

  setProgress(): void {}
}
