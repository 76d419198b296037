// `ralph tui`: a thin client in the manner of a tmux client. It owns no loop state: the session DB
// (through LoopsWatcher) and the selected loop's feed (LiveView) feed one TuiState; keys become new
// states and effects; the renderer (pi-tui) draws renderFrame(state) and writes only what changed.
// No key waits on the network: every request is started and its answer becomes a later state.

import type { ChildProcess } from 'node:child_process';
import { StringDecoder } from 'node:string_decoder';
import { StdinBuffer, TUI, parseKey } from './renderer.js';
import { describeEnd } from '../client/describe.js';
import { extendLoop } from '../client/extend.js';
import { LoopsWatcher } from '../client/loop-watch.js';
import { runNotifyCommand } from '../client/notify.js';
import { resumeLoop } from '../client/resume.js';
import type { StatusEntry } from '../client/status-view.js';
import { stopLoop } from '../client/stop.js';
import { attachToLoop } from '../client/attach/session.js';
import type { Config } from '../store/config.js';
import type { LoopStore } from '../store/loops.js';
import { handleKey, type Effect } from './keys.js';
import { TerminalLender } from './lend.js';
import type { LiveView } from './live.js';
import type { PaneTerminal } from './pane.js';
import { pagerCommand, showInPager } from './pager.js';
import {
  initialState,
  layout,
  selectedEntry,
  unflagSelected,
  withFlag,
  withLoops,
  type LiveHeader,
  type Message,
  type TuiState,
} from './state.js';
import { warmUpWidths } from './style.js';
import { TuiTerminal, type TuiIo } from './terminal.js';
import { renderFrame } from './view.js';

export interface TuiOptions {
  io: TuiIo;
  store: LoopStore;
  config: Config;
  color: boolean;
  /** How long a remote daemon may take to answer a reconciliation. */
  timeoutMs: number;
  /** A problem to show at once (a config file that could not be read). */
  startMessage?: Message;
}

export interface TuiExit {
  code: number;
  /** A last line for stderr, after the terminal is restored. */
  line?: string;
}

/** Pane frames: at most one per this many ms (keys are drawn at once)… */
const PANE_FRAME_MS = 33;
/** …and while the pane skips output to keep up with a flood (nobody reads a flood; keys get the time). */
const FLOOD_FRAME_MS = 100;
/** A selection held this long connects to its loop (j j j does not dial every loop passed). */
const SELECT_SETTLE_MS = 60;
const SIGNAL_EXIT: Record<string, number> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };
const EMPTY_PANE = { cols: 0, lines: [], cursor: null };

export class TuiApp {
  private state: TuiState;
  private readonly term: TuiTerminal;
  private readonly tui: TUI;
  /** Enter and l lend it the whole terminal; while lent, nothing here reads keys or draws. */
  private readonly lender: TerminalLender;
  private readonly watcher: LoopsWatcher;
  private readonly keys = new StdinBuffer({ timeout: 10 });
  private readonly decoder = new StringDecoder('utf8');
  private live: LiveView | undefined;
  /** The log being scrolled through: the live pane of an ended loop, or a pane of its own. */
  private history: { pane: PaneTerminal; owned: boolean } | undefined;
  private historyLoad: Promise<void> | undefined;
  private switchTimer: NodeJS.Timeout | undefined;
  private paneTimer: NodeJS.Timeout | undefined;
  private lastPaneAt = 0;
  private skippedAtLastFrame = 0;
  private tick: NodeJS.Timeout | undefined;
  /** The live pane's code (it brings the terminal emulator): loaded after the first frame is out. */
  private liveModule: Promise<typeof import('./live.js')> | undefined;
  /** Loops stopped from here: their end is no news to the user (no bell, no notify.command). */
  private readonly stoppedHere = new Set<string>();
  private finished = false;
  private finish!: (exit: TuiExit) => void;
  private readonly exited = new Promise<TuiExit>((resolve) => (this.finish = resolve));
  private readonly onData = (chunk: Buffer) => this.input(chunk);
  /** The TUI runs on a terminal only, whose input ends only when it hangs up: as on SIGHUP. */
  private readonly onEnd = () => this.finish({ code: SIGNAL_EXIT.SIGHUP! });
  /** The terminal went away under us (EIO after a hang-up): leave quietly, as on SIGHUP. */
  private readonly onInputError = () => this.finish({ code: SIGNAL_EXIT.SIGHUP! });
  private readonly onResize = () => this.resized();
  /** The pager showing a log (l), while it runs. */
  private pagerChild: ChildProcess | undefined;
  private readonly onSignal = (signal: NodeJS.Signals) => {
    if (this.lender.borrowerSignal(signal)) return;
    // SIGTERM, SIGHUP: the pager goes with us rather than being left on a terminal nobody owns.
    this.pagerChild?.kill(signal);
    this.finish({ code: SIGNAL_EXIT[signal] ?? 1, line: `tui ended on ${signal}; loops run on` });
  };

  constructor(private readonly opts: TuiOptions) {
    this.term = new TuiTerminal(opts.io);
    this.tui = new TUI(this.term);
    this.lender = new TerminalLender({
      io: opts.io,
      term: this.term,
      tui: this.tui,
      onData: this.onData,
      onEnd: this.onEnd,
      hooks: {
        release: async () => {
          const old = this.live;
          this.live = undefined;
          this.dropHistory();
          await old?.close();
        },
        failed: (text) => {
          this.state = { ...this.state, message: { text, tone: 'error' } };
        },
        ended: () => this.finished,
        takenBack: () => {
          this.state = { ...this.state, live: null, pane: EMPTY_PANE, history: null, mode: 'list' };
          this.watcher.refresh();
          this.switchLive();
        },
      },
    });
    this.state = initialState({
      cols: this.term.columns,
      rows: this.term.rows,
      color: opts.color,
      now: Date.now(),
    });
    if (opts.startMessage) this.state = { ...this.state, message: opts.startMessage };
    this.watcher = new LoopsWatcher(opts.store, {
      timeoutMs: opts.timeoutMs,
      onChange: (loops) => this.set(withLoops(this.state, loops)),
      onRemotes: (remotes) => this.set({ ...this.state, remotes: new Map(remotes) }),
      onEnded: (entry) => this.ended(entry),
    });
    this.keys.on('data', (seq) => this.key(seq));
  }

  /** Runs until quit, a signal or a fatal error; the terminal is restored before this resolves. */
  async run(): Promise<TuiExit> {
    const { stdin, stdout } = this.opts.io;
    for (const s of Object.keys(SIGNAL_EXIT)) process.on(s, this.onSignal);
    try {
      this.term.enter();
      this.tui.addChild({ render: (width) => this.frame(width), invalidate: () => {} });
      this.set(withLoops(this.state, this.watcher.start({ askRemotesNow: false })));
      this.tui.start();
      stdout.on('resize', this.onResize);
      stdin.on('data', this.onData);
      stdin.on('end', this.onEnd);
      stdin.on('error', this.onInputError);
      stdin.resume();
      this.tick = setInterval(() => this.set({ ...this.state, now: Date.now() }), 1000);
      return await this.exited;
    } finally {
      await this.shutdown();
      for (const s of Object.keys(SIGNAL_EXIT)) process.off(s, this.onSignal);
    }
  }

  /** The last resort of a fatal error: the terminal back, nothing else. */
  restoreTerminal(): void {
    this.term.restore();
  }

  // ---- state ----

  private set(next: TuiState): void {
    if (next === this.state || this.finished) return;
    const before = this.state;
    this.state = next;
    if (next.selectedId !== before.selectedId) {
      this.state = unflagSelected(this.state);
      clearTimeout(this.switchTimer);
      this.switchTimer = setTimeout(() => this.switchLive(), SELECT_SETTLE_MS);
    }
    if (next.mode !== before.mode) {
      this.tui.setShowHardwareCursor(next.mode === 'interactive');
      if (next.mode === 'interactive' || before.mode === 'interactive') this.snapshotPane();
    }
    if (!this.lender.lent) this.tui.requestRender();
  }

  private message(text: string, tone: Message['tone'] = 'info'): void {
    this.set({ ...this.state, message: { text, tone } });
  }

  /** What waits for the first frame: the emulator for the pane, and asking the remotes. */
  private afterFirstFrame(): void {
    warmUpWidths();
    this.liveModule = import('./live.js');
    this.liveModule.catch(() => {}); // its failure surfaces where it is awaited
    this.switchLive();
    void this.watcher.reconcileNow();
  }

  private frame(width: number): string[] {
    if (!this.liveModule && !this.finished) setImmediate(() => !this.liveModule && this.afterFirstFrame());
    const rows = this.term.rows;
    // A resize not yet seen by resized(): draw at the terminal's size, never past it.
    const s = width === this.state.cols && rows === this.state.rows ? this.state : { ...this.state, cols: width, rows };
    return renderFrame(s);
  }

  // ---- keys ----

  private input(chunk: Buffer): void {
    if (this.lender.lent) return;
    let rest = chunk;
    if (this.state.mode === 'interactive') {
      // Every byte goes to the agent as typed (Esc, Ctrl-C and all), up to Ctrl-].
      const leave = rest.indexOf(0x1d);
      const text = this.decoder.write(leave === -1 ? rest : rest.subarray(0, leave));
      if (text !== '') this.live?.send(text);
      if (leave === -1) return;
      this.decoder.end();
      this.leaveInteractive();
      rest = rest.subarray(leave + 1);
      if (rest.length === 0) return;
    }
    this.keys.process(this.decoder.write(rest));
  }

  private key(seq: string): void {
    if (this.lender.lent) return;
    if (this.state.mode === 'interactive') {
      // Keys that arrived in one read with the `i` that turned interactive mode on.
      if (seq === '\x1d') this.leaveInteractive();
      else this.live?.send(seq);
      return;
    }
    if (seq.length === 2 && seq[0] === '\x1b' && seq[1]! >= ' ' && seq[1] !== '[' && seq[1] !== 'O') {
      // Esc and the next key in one read (typed fast, or a script): nothing here is bound to Alt, so two keys.
      this.key('\x1b');
      this.key(seq[1]!);
      return;
    }
    const { state, effects } = handleKey(this.state, { id: keyName(seq), text: seq });
    this.set(state);
    for (const effect of effects) this.carryOut(effect);
  }

  private carryOut(effect: Effect): void {
    switch (effect.kind) {
      case 'quit':
        this.finish({ code: 0 });
        return;
      case 'scroll':
        void this.scroll(effect.by);
        return;
      case 'interactive':
        void this.enterInteractive(effect.id);
        return;
      case 'stop':
        void this.stop(effect.id);
        return;
      case 'extend':
        void this.extend(effect.id, effect.n);
        return;
      case 'resume':
        void this.resume(effect.id);
        return;
      case 'attach':
        void this.attach(effect.id);
        return;
      case 'pager':
        void this.pager(effect.id);
        return;
    }
  }

  // ---- the selected loop ----

  private switchLive(): void {
    clearTimeout(this.switchTimer);
    const id = this.state.selectedId;
    if (this.live?.loopId === id || this.lender.lent || !this.liveModule) return;
    const old = this.live;
    this.live = undefined;
    void old?.close();
    this.dropHistory();
    const entry = selectedEntry(this.state);
    const row = entry && this.opts.store.get(entry.id);
    if (!entry || !row) {
      this.set({ ...this.state, live: null, pane: EMPTY_PANE, history: null });
      return;
    }
    this.set({ ...this.state, live: { ...headerOf(entry), story: row.currentStory }, pane: EMPTY_PANE, history: null, mode: this.state.mode === 'interactive' ? 'list' : this.state.mode });
    this.liveModule.then(
      ({ LiveView }) => this.openLive(LiveView, entry.id),
      (err: Error) => this.message(`cannot show loops live: ${err.message}`, 'error'),
    );
  }

  private openLive(View: typeof LiveView, id: string): void {
    const row = this.opts.store.get(id);
    // The selection may have moved on while the code loaded.
    if (!row || this.state.selectedId !== id || this.live !== undefined || this.lender.lent || this.finished) return;
    const { paneRows } = layout(this.state.cols, this.state.rows);
    const live: LiveView = new View(this.opts.store, row, this.state.cols, Math.max(1, paneRows), {
      header: (patch) => this.live === live && this.header(patch),
      changed: () => this.live === live && !this.history && this.paneChanged(),
    });
    this.live = live;
    live.start();
  }

  private header(patch: Partial<LiveHeader>): void {
    if (!this.state.live) return;
    const live = { ...this.state.live, ...patch };
    const leave = this.state.mode === 'interactive' && (live.connection === 'ended' || live.connection === 'reconnecting');
    this.set({ ...this.state, live, ...(leave ? { mode: 'list' as const } : {}) });
    // Back in the list, the loop is not to be typed to: a reconnect must not turn interactive mode on again.
    if (leave) this.live?.setInteractive(false).catch(() => {});
  }

  /** Frames for pane output come at a bounded rate; everything else is drawn at once. */
  private paneChanged(): void {
    if (this.paneTimer) return;
    const skipped = this.live?.pane.skipped ?? 0;
    const flooding = skipped !== this.skippedAtLastFrame;
    this.skippedAtLastFrame = skipped;
    const wait = Math.max(0, (flooding ? FLOOD_FRAME_MS : PANE_FRAME_MS) - (performance.now() - this.lastPaneAt));
    this.paneTimer = setTimeout(() => {
      this.paneTimer = undefined;
      this.snapshotPane();
    }, wait);
  }

  private snapshotPane(): void {
    this.lastPaneAt = performance.now();
    const pane = this.history?.pane ?? this.live?.pane;
    if (!pane) return;
    const view = pane.view(this.state.history?.offset ?? 0, this.state.color, this.state.mode === 'interactive');
    this.set({ ...this.state, pane: view });
  }

  private async scroll(by: number | 'top' | 'live'): Promise<void> {
    const live = this.live;
    if (!live) return;
    if (by === 'live') {
      this.dropHistory();
      this.set({ ...this.state, history: null });
      this.snapshotPane();
      return;
    }
    if (!this.history) {
      if (!live.following) {
        this.history = { pane: live.pane, owned: false };
      } else {
        this.historyLoad ??= this.loadHistory(live);
        await this.historyLoad;
        if (!this.history || this.live !== live) return;
      }
    }
    const above = this.history.pane.above;
    const at = this.state.history?.offset ?? 0;
    const offset = by === 'top' ? above : Math.min(above, Math.max(0, at + by));
    if (offset === 0 && live.following) {
      this.dropHistory();
      this.set({ ...this.state, history: null });
    } else {
      this.set({ ...this.state, history: { offset, above, loading: false } });
    }
    this.snapshotPane();
  }

  private async loadHistory(live: LiveView): Promise<void> {
    this.set({ ...this.state, history: { offset: 0, above: 0, loading: true } });
    try {
      const pane = await live.history();
      if (this.live !== live) pane.dispose();
      else this.history = { pane, owned: true };
    } catch (err) {
      if (this.live === live) this.set({ ...this.state, history: null, message: { text: `cannot read the log of ${live.loopId}: ${(err as Error).message}`, tone: 'error' } });
    } finally {
      this.historyLoad = undefined;
    }
  }

  private dropHistory(): void {
    if (this.history?.owned) this.history.pane.dispose();
    this.history = undefined;
  }

  private resized(): void {
    const cols = this.term.columns;
    const rows = this.term.rows;
    this.dropHistory();
    this.set(withLoops({ ...this.state, cols, rows, history: null }, this.state.loops));
    const { paneRows } = layout(cols, rows);
    this.live?.resize(cols, Math.max(1, paneRows));
    this.snapshotPane();
  }

  // ---- actions (each started at once; its answer comes back as a message) ----

  private async enterInteractive(id: string): Promise<void> {
    const live = this.live;
    if (!live || live.loopId !== id) return;
    try {
      await live.setInteractive(true);
      if (this.live !== live) return;
      this.set({ ...this.state, mode: 'interactive', message: null });
    } catch (err) {
      this.message(`cannot type to loop ${id}: ${(err as Error).message}`, 'error');
    }
  }

  private leaveInteractive(): void {
    this.set({ ...this.state, mode: 'list' });
    this.live?.setInteractive(false).catch(() => {});
  }

  private async stop(id: string): Promise<void> {
    const row = this.opts.store.get(id);
    if (!row) return;
    this.message(`stopping loop ${id}…`);
    this.stoppedHere.add(id);
    try {
      const outcome = await stopLoop(this.opts.store, row, { when: 'now' });
      this.watcher.refresh();
      switch (outcome.kind) {
        case 'stopped':
        case 'already-ended':
          this.message(describeEnd(id, outcome.end));
          break;
        case 'still-stopping':
          this.message(`loop ${id} was asked to stop and is still finishing`);
          break;
        case 'will-stop-after-iteration':
          break;
      }
    } catch (err) {
      this.message(`cannot stop loop ${id}: ${(err as Error).message}`, 'error');
    }
  }

  private async extend(id: string, n: number): Promise<void> {
    const row = this.opts.store.get(id);
    if (!row) return;
    try {
      const maxIterations = await extendLoop(this.opts.store, row, n);
      this.watcher.refresh();
      this.message(`loop ${id}: ${n} more iteration${n === 1 ? '' : 's'}, ${maxIterations} in all`);
    } catch (err) {
      this.message(`cannot extend loop ${id}: ${(err as Error).message}`, 'error');
    }
  }

  /** r: the loop goes on as a new loop on the same task (its daemon's, for a remote one); selected when it starts. */
  private async resume(id: string): Promise<void> {
    const row = this.opts.store.get(id);
    if (!row) return;
    this.message(`resuming loop ${id}…`);
    try {
      const next = await resumeLoop(this.opts.store, row, { progress: (line) => this.message(line.replace(/^ralph: /, '')) });
      this.watcher.refresh();
      this.set(withLoops({ ...this.state, selectedId: next.id, filter: '', message: { text: `loop ${id} goes on as loop ${next.id}${next.location === 'remote' ? ` on ${next.remote}` : ''}`, tone: 'notice' } }, this.state.loops));
    } catch (err) {
      this.message(`cannot resume loop ${id}: ${(err as Error).message}`, 'error');
    }
  }

  private ended(entry: StatusEntry): void {
    if (entry.status === 'stopped' && this.stoppedHere.delete(entry.id)) return;
    this.set({
      ...withFlag(this.state, entry),
      message: { text: `loop ${entry.id} ${entry.status}${entry.reason ? `: ${entry.reason}` : ''}`, tone: entry.status === 'completed' ? 'notice' : 'error' },
    });
    if (!this.lender.lent) this.opts.io.stdout.write('\x07');
    void runNotifyCommand(this.opts.config, entry).then((problem) => {
      if (problem) this.message(problem, 'error');
    });
  }

  /** Enter: `ralph attach` on the whole terminal; back here when it detaches or the loop ends. */
  private async attach(id: string): Promise<void> {
    const row = this.opts.store.get(id);
    if (!row) return;
    const { stdin, stdout, stderr } = this.opts.io;
    const outcome = await this.lender.lend(
      () => attachToLoop(this.opts.store, row, { interactive: false, replay: true }, { stdin, stdout, stderr }),
      { answersSignals: true },
    );
    if (!outcome) return;
    if (outcome.kind === 'signal') this.finish({ code: SIGNAL_EXIT[outcome.signal] ?? 1, line: outcome.line });
    else this.message(outcome.line);
  }

  /** l: the loop's whole log in the user's pager. */
  private async pager(id: string): Promise<void> {
    const row = this.opts.store.get(id);
    if (!row) return;
    const problem = await this.lender.lend(() =>
      showInPager(row, pagerCommand(process.env), (child) => {
        this.pagerChild = child;
        child.on('close', () => this.pagerChild === child && (this.pagerChild = undefined));
      }),
    );
    if (problem) this.message(problem, 'error');
  }

  private async shutdown(): Promise<void> {
    this.finished = true;
    const { stdin, stdout } = this.opts.io;
    clearInterval(this.tick);
    clearTimeout(this.switchTimer);
    clearTimeout(this.paneTimer);
    this.watcher.close();
    this.keys.destroy();
    stdin.off('data', this.onData);
    stdin.off('end', this.onEnd);
    stdin.off('error', this.onInputError);
    stdout.off('resize', this.onResize);
    this.dropHistory();
    await this.live?.close();
    this.tui.stop();
    this.term.restore();
    stdin.pause();
  }
}

/** The key name of one input sequence (the renderer's parser, plus Home/End as tmux and screen send them). */
function keyName(seq: string): string | undefined {
  if (seq === '\x1b[1~' || seq === '\x1b[7~') return 'home';
  if (seq === '\x1b[4~' || seq === '\x1b[8~') return 'end';
  return parseKey(seq);
}

function headerOf(e: StatusEntry): LiveHeader {
  return {
    loopId: e.id,
    status: e.status,
    iteration: e.iteration,
    maxIterations: e.maxIterations,
    story: null,
    reason: e.reason,
    pausedUntil: e.pausedUntil,
    interactive: false,
    connection: 'connecting',
    note: null,
  };
}
