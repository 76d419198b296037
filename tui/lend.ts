// Lending the terminal: `ralph tui` gives the whole terminal (keys, screen, raw mode) to someone else
// for a while (Enter: `ralph attach`; l: the pager) and takes it back afterwards. While it is lent,
// no key is read here, nothing is drawn, and Ctrl-C and Ctrl-\ are the borrower's.

import type { TUI } from './renderer.js';
import type { TuiIo, TuiTerminal } from './terminal.js';

/** What the controller does around a loan: the lender knows the terminal, not the TUI's state. */
export interface LendHooks {
  /** Before the terminal goes: let go of what would draw on it (the live pane). */
  release(): Promise<void>;
  /** The borrower failed: its problem, to show once the terminal is back. */
  failed(text: string): void;
  /** A signal ended the TUI meanwhile: then shutdown() has the terminal, and it is not taken back. */
  ended(): boolean;
  /** The terminal is back: start over from the list (a full frame follows). */
  takenBack(): void;
}

export interface LendTerminalOptions {
  io: TuiIo;
  term: TuiTerminal;
  tui: TUI;
  /** The controller's listeners on stdin: off while the terminal is lent. */
  onData: (chunk: Buffer) => void;
  onEnd: () => void;
  hooks: LendHooks;
}

export class TerminalLender {
  private lentNow = false;
  /** The borrower answers signals itself (attach) and returns. */
  private answersSignals = false;
  private readonly ignoreSignal = () => {};

  constructor(private readonly opts: LendTerminalOptions) {}

  /** The terminal is someone else's now. */
  get lent(): boolean {
    return this.lentNow;
  }

  /** Whether a signal is the borrower's, and so none of ours. */
  borrowerSignal(signal: NodeJS.Signals): boolean {
    // While the terminal is lent, Ctrl-C and Ctrl-\ are the borrower's (as git does with its pager):
    // cooked mode sends them to us too. During attach, attach answers the signal itself and returns;
    // then we leave with its code.
    if (this.lentNow && (signal === 'SIGINT' || signal === 'SIGQUIT')) return true;
    return this.answersSignals;
  }

  /**
   * Gives the whole terminal to `use` (keys, screen, raw mode) and takes it back afterwards.
   * `answersSignals`: the borrower answers every signal itself (attach), not only Ctrl-C and Ctrl-\.
   */
  async lend<T>(use: () => Promise<T>, { answersSignals = false } = {}): Promise<T | undefined> {
    if (this.lentNow) return undefined;
    this.lentNow = true;
    const { io, term, tui, onData, onEnd, hooks } = this.opts;
    const { stdin } = io;
    stdin.off('data', onData);
    stdin.off('end', onEnd);
    // Not reading the terminal at all meanwhile: every key is the borrower's.
    stdin.pause();
    // Ctrl-\ would end us with a core dump by default (SIGINT the controller answers already).
    process.on('SIGQUIT', this.ignoreSignal);
    await hooks.release();
    // The renderer stops first: a frame it had scheduled must not land on the borrower's screen.
    tui.stop();
    term.lend();
    try {
      this.answersSignals = answersSignals;
      try {
        return await use();
      } finally {
        this.answersSignals = false;
      }
    } catch (err) {
      hooks.failed((err as Error).message);
      return undefined;
    } finally {
      process.off('SIGQUIT', this.ignoreSignal);
      if (hooks.ended()) return undefined; // a signal ended us meanwhile: shutdown() has the terminal
      term.takeBack();
      tui.start();
      stdin.on('data', onData);
      stdin.on('end', onEnd);
      stdin.resume();
      this.lentNow = false;
      hooks.takenBack();
      tui.requestRender(true);
    }
  }
}
