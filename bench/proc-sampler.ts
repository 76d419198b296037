// Per-process CPU and memory of everything a soak runs, sampled from /proc (Linux): the processes
// under a set of roots (the soak itself, the daemon, every runner) plus any whose command line names
// one of `alsoMatching` (the OpenZiti controller and router, which run in their own sessions).
// Each process gets a role from its command line; the report sums CPU and memory per role.

import { readdirSync, readFileSync } from 'node:fs';

const TICKS_PER_S = 100; // USER_HZ

interface ProcInfo {
  pid: number;
  /** pid and start time: pids wrap (32,768 here) and a soak starts tens of thousands of processes. */
  key: string;
  ppid: number;
  /** utime + stime, seconds. */
  cpu: number;
  cmdline: string;
}

interface Seen {
  role: string;
  /** CPU seconds when first seen (0 for a process that started while we watched). */
  cpuAtStart: number;
  cpuLast: number;
  /** Peak resident set (VmHWM), KiB. */
  peakKiB: number;
}

export interface RoleReport {
  role: string;
  processes: number;
  cpuSeconds: number;
  /** Largest peak RSS of any one process of this role, MiB. */
  peakMiB: number;
  /** Largest RSS of the role's processes together at one sample, MiB. */
  peakTotalMiB: number;
}

function readProc(pid: number): ProcInfo | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (f[0] === 'Z') return null;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
    return { pid, key: `${pid}@${f[19]}`, ppid: Number(f[1]), cpu: (Number(f[11]) + Number(f[12])) / TICKS_PER_S, cmdline };
  } catch {
    return null;
  }
}

function memKiB(pid: number): { rss: number; hwm: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    return { rss: Number(/VmRSS:\s+(\d+)/.exec(s)?.[1] ?? 0), hwm: Number(/VmHWM:\s+(\d+)/.exec(s)?.[1] ?? 0) };
  } catch {
    return { rss: 0, hwm: 0 };
  }
}

/** What a process is, from its command line. */
export function roleOf(cmdline: string, selfPid: number, pid: number): string {
  if (pid === selfPid) return 'soak clients (this process)';
  if (/\bloop\/main\.js\b/.test(cmdline)) return 'loop runner';
  if (/agent\.mjs\b/.test(cmdline)) return 'fixture agent';
  if (/ralph\.js daemon\b/.test(cmdline)) return 'ralph daemon';
  if (/proxy-main\.js\b/.test(cmdline)) return 'ralph ziti proxy owner';
  if (/ralph\.js \w+/.test(cmdline)) return `ralph ${/ralph\.js (\w+)/.exec(cmdline)![1]} (CLI)`;
  const ziti = /(?:^|\/)ziti (edge |)(\w+)(?: (\w+))?/.exec(cmdline);
  if (ziti) return `ziti ${ziti[2]}${ziti[2] === 'tunnel' || ziti[2] === 'demo' ? ` ${ziti[3] ?? ''}` : ''}`.trim();
  if (/ralph-ziti-watchdog|^\/bin\/sh -c/.test(cmdline)) return 'watchdogs (sh)';
  if (/^git\b|\/git /.test(cmdline)) return 'git';
  return 'other';
}

export class ProcessSampler {
  private readonly seen = new Map<string, Seen>();
  private readonly peakTotal = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private first = true;

  constructor(
    private readonly roots: () => number[],
    private readonly alsoMatching: () => string[] = () => [],
    private readonly intervalMs = 1000,
  ) {}

  start(): void {
    this.sample();
    this.timer = setInterval(() => this.sample(), this.intervalMs);
  }

  stop(): RoleReport[] {
    clearInterval(this.timer);
    this.sample();
    const by = new Map<string, RoleReport>();
    for (const s of this.seen.values()) {
      const r = by.get(s.role) ?? { role: s.role, processes: 0, cpuSeconds: 0, peakMiB: 0, peakTotalMiB: 0 };
      r.processes += 1;
      r.cpuSeconds += s.cpuLast - s.cpuAtStart;
      r.peakMiB = Math.max(r.peakMiB, s.peakKiB / 1024);
      by.set(s.role, r);
    }
    for (const r of by.values()) r.peakTotalMiB = (this.peakTotal.get(r.role) ?? 0) / 1024;
    return [...by.values()].sort((a, b) => b.cpuSeconds - a.cpuSeconds);
  }

  private sample(): void {
    const all = new Map<number, ProcInfo>();
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      const p = readProc(Number(name));
      if (p) all.set(p.pid, p);
    }
    const children = new Map<number, number[]>();
    for (const p of all.values()) {
      const list = children.get(p.ppid) ?? [];
      list.push(p.pid);
      children.set(p.ppid, list);
    }
    const ours = new Set<number>();
    const stack = this.roots().filter((pid) => all.has(pid));
    const needles = this.alsoMatching();
    for (const p of all.values()) if (needles.some((n) => p.cmdline.includes(n))) stack.push(p.pid);
    while (stack.length > 0) {
      const pid = stack.pop()!;
      if (ours.has(pid)) continue;
      ours.add(pid);
      stack.push(...(children.get(pid) ?? []));
    }
    const totals = new Map<string, number>();
    for (const pid of ours) {
      const p = all.get(pid)!;
      let s = this.seen.get(p.key);
      if (!s) {
        // A process already running at the first sample counts from there; later ones from their start.
        s = { role: roleOf(p.cmdline, process.pid, pid), cpuAtStart: this.first ? p.cpu : 0, cpuLast: p.cpu, peakKiB: 0 };
        this.seen.set(p.key, s);
      }
      s.cpuLast = p.cpu;
      const mem = memKiB(pid);
      s.peakKiB = Math.max(s.peakKiB, mem.hwm);
      totals.set(s.role, (totals.get(s.role) ?? 0) + mem.rss);
    }
    for (const [role, kib] of totals) this.peakTotal.set(role, Math.max(this.peakTotal.get(role) ?? 0, kib));
    this.first = false;
  }
}
