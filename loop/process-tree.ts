// An agent's processes, as the process groups a signal must go to. The agent's own group is not
// enough: Claude Code runs each Bash tool in a session of its own (setsid: its pid is its group and
// session id), which a signal to the agent's group never reaches, and whose processes live on under
// init once the agent has gone. So, before signalling, walk the agent's descendants (Linux: the
// parent pid in /proc/<pid>/stat) and take every group among them, and every group in a session one
// of them started. What left the tree before the walk (a tool started as the agent exits: Claude
// Code 2.1.197, sent SIGTERM while a background task runs, stops the task, starts a turn about it
// and a tool, then exits) is found by a mark in its environment, inherited from the agent's
// (RALPH_AGENT_RUN). Elsewhere (no /proc) it is the agent's group only.
//
// The orphan guard (agent-guard.ts) does the same in sh, for when the runner is gone.

import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';

/** The environment variable that marks an agent's processes (a new value per agent process). */
export const RUN_MARK = 'RALPH_AGENT_RUN';

/**
 * After an agent has exited, what it left running (a dev server it started in the background, in a
 * session of its own) gets SIGTERM, and SIGKILL this long after: each iteration starts clean, and a
 * stream agent's run ends only when its stdout, which a leftover may hold, closes.
 */
export const LEFTOVER_GRACE_MS = 2000;

export function newRunMark(): string {
  return randomBytes(8).toString('hex');
}

interface Proc {
  pid: number;
  ppid: number;
  pgrp: number;
  sid: number;
}

function processes(): Proc[] {
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return [];
  }
  const out: Proc[] = [];
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid pgrp session …": comm may hold spaces and parentheses.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.push({ pid: Number(name), ppid: Number(f[1]), pgrp: Number(f[2]), sid: Number(f[3]) });
  }
  return out;
}

function marked(pid: number, mark: Buffer): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`).includes(mark);
  } catch {
    return false; // gone, or not ours to read
  }
}

/**
 * The process groups of `root` (null: it has exited, and its pid may be another's now), of every
 * process that carries `mark` in its environment, of every process descended from one of these,
 * and of every process in a session that one of them started. A session is taken only when its id
 * is the pid of one of them: one they merely inherited (the runner's) is never signalled, nor is
 * this process's own group.
 */
export function agentGroups(root: number | null, mark: string): Set<number> {
  const all = processes();
  const needle = Buffer.from(`${RUN_MARK}=${mark}\0`);
  const children = new Map<number, Proc[]>();
  for (const p of all) {
    const list = children.get(p.ppid);
    if (list) list.push(p);
    else children.set(p.ppid, [p]);
  }
  const tree = new Set<number>();
  const groups = new Set<number>();
  if (root !== null) {
    tree.add(root);
    groups.add(root);
  }
  for (const p of all) {
    if (p.pid !== process.pid && marked(p.pid, needle)) {
      tree.add(p.pid);
      groups.add(p.pgrp);
    }
  }
  const todo = [...tree];
  while (todo.length > 0) {
    for (const c of children.get(todo.pop()!) ?? []) {
      if (tree.has(c.pid)) continue;
      tree.add(c.pid);
      groups.add(c.pgrp);
      todo.push(c.pid);
    }
  }
  // What a tool left in its session after its shell exited (a server started with `&`) is under init now.
  for (const p of all) if (tree.has(p.sid)) groups.add(p.pgrp);
  const own = all.find((p) => p.pid === process.pid);
  if (own) groups.delete(own.pgrp);
  return groups;
}

/** Signals a process group; false when it has no process left. */
export function signalGroup(pgid: number | undefined, sig: NodeJS.Signals | 0): boolean {
  if (pgid === undefined || pgid <= 1) return false; // never -1 (every process) or 0 (our own group)
  try {
    process.kill(-pgid, sig);
    return true;
  } catch {
    return false; // already gone
  }
}

/** Agents' leftovers that have had their TERM and wait for their KILL. */
const ending = new Set<Promise<void>>();

/**
 * Resolves once every KILL promised to an agent's leftovers has been sent: a runner that exits
 * sooner would leave whatever ignored the TERM running (nothing else is left to send it).
 */
export async function leftoversEnded(): Promise<void> {
  while (ending.size > 0) await Promise.all(ending);
}

/**
 * One agent process and everything it started. The groups found are remembered: once the agent has
 * exited, its pid may be another process's and its tools are init's children, so the KILL that
 * follows a TERM goes to the groups seen while it lived.
 */
export class AgentProcesses {
  private readonly groups = new Set<number>();
  private exited = false;
  /** Set by end(): sends nothing more, and lets leftoversEnded() go on. */
  private ending: (() => void) | null = null;

  /**
   * `root` leads a process group of its own (spawned detached, or a PTY's session leader), and was
   * given `mark` as RALPH_AGENT_RUN; undefined: it never started.
   */
  constructor(
    private readonly root: number | undefined,
    private readonly mark: string,
  ) {
    if (root === undefined) this.exited = true;
    else this.groups.add(root);
  }

  /** The root process has exited (been reaped): its pid is no longer a way to find its tree. */
  rootExited(): void {
    this.exited = true;
  }

  /** Notes the groups of the agent's processes as they are now. */
  look(): void {
    for (const g of agentGroups(this.exited ? null : this.root!, this.mark)) this.groups.add(g);
  }

  /** Signals every group of the agent's (signal 0: only asks); false when none has a process left. */
  signal(sig: NodeJS.Signals | 0): boolean {
    if (sig !== 0) this.look();
    return this.send(sig);
  }

  /**
   * SIGTERM to all of it now, SIGKILL `graceMs` later to what is left (leftoversEnded waits for it).
   * `agentAtOnce`: the agent's own group gets SIGKILL at once instead, so that it starts nothing
   * more (Claude Code, sent SIGTERM, may start a turn about the tasks that stop: a paid request).
   */
  end(graceMs: number, agentAtOnce = false): void {
    if (this.ending !== null) return;
    this.look();
    if (agentAtOnce && !this.exited) signalGroup(this.root, 'SIGKILL');
    if (!this.send('SIGTERM')) return;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => (resolve = r));
    const timer = setTimeout(() => {
      this.signal('SIGKILL');
      settle();
    }, graceMs);
    const settle = () => {
      clearTimeout(timer);
      ending.delete(promise);
      resolve();
    };
    ending.add(promise);
    this.ending = settle;
  }

  /** Nothing is left of it: the KILL that end() promised is not needed. */
  forgetIfGone(): void {
    if (this.ending !== null && !this.send(0)) this.ending();
  }

  private send(sig: NodeJS.Signals | 0): boolean {
    let any = false;
    for (const g of this.groups) {
      if (signalGroup(g, sig)) any = true;
      // An empty group stays empty: forgetting it keeps a later reuse of its id out of reach.
      else this.groups.delete(g);
    }
    return any;
  }
}
