// `ralph doctor`: looks at everything ralph keeps on this machine — the home directory, the session
// DB, the sockets, the loops' rows, the config, the ziti CLI, the agent CLIs — says what it found,
// and repairs what it safely can: permissions, sockets nobody listens on, rows of loops whose runner
// is gone, and a damaged DB (its readable rows are copied into a new DB; the damaged file is kept
// beside it). Nothing is deleted that holds data, and the DB is only replaced while no ralph process
// uses it.

import Database from 'better-sqlite3';
import { chmodSync, existsSync, readdirSync, rmSync, statfsSync, statSync } from 'node:fs';
import { basename, delimiter, join } from 'node:path';
import { settleDeadRunners } from '../client/liveness.js';
import { DEFAULT_AGENT_PACKAGES, agentBinary, agentsBinDir, findOnPath } from '../install/agents.js';
import { isDbDamaged, sqliteCode } from '../store/db-fault.js';
import { latestSchemaVersion, openDb } from '../store/db.js';
import { readConfig } from '../store/config.js';
import { isFinal, LoopStore } from '../store/loops.js';
import { runnerAlive } from '../store/process.js';
import { liveRunnersIn, salvageDb } from '../store/salvage.js';
import type { HomePaths } from '../store/paths.js';
import { socketAnswers } from '../transport/index.js';
import { zitiBinary, zitiWorks } from '../transport/ziti/tunnel-process.js';

export type Verdict = 'ok' | 'fixed' | 'problem' | 'info';

export interface Finding {
  verdict: Verdict;
  topic: 'home' | 'db' | 'loops' | 'sockets' | 'config' | 'ziti' | 'agents';
  text: string;
}

export interface DoctorOptions {
  /** Repair what can safely be repaired (default true). */
  repair?: boolean;
}

/** Below this much free space under the home, loops are close to pausing for a full disk. */
const LOW_SPACE_BYTES = 64 * 1024 * 1024;

export async function runDoctor(paths: HomePaths, opts: DoctorOptions = {}): Promise<Finding[]> {
  const repair = opts.repair ?? true;
  const out: Finding[] = [];
  const say = (verdict: Verdict, topic: Finding['topic'], text: string) => out.push({ verdict, topic, text });

  if (!existsSync(paths.home)) {
    say('ok', 'home', `${paths.home} does not exist yet (ralph creates it on first use)`);
  } else {
    checkHome(paths, repair, say);
    const sockets = await probeSockets(paths);
    const dbOk = checkDb(paths, repair, sockets, say);
    if (dbOk) checkLoops(paths, repair, say);
    checkSockets(paths, repair, sockets, dbOk, say);
  }
  try {
    const config = readConfig();
    say('ok', 'config', `${Object.keys(config.remotes).length} remote(s) configured`);
  } catch (err) {
    say('problem', 'config', (err as Error).message);
  }
  checkZiti(say);
  checkAgents(paths, say);
  return out;
}

type Say = (verdict: Verdict, topic: Finding['topic'], text: string) => void;

function checkHome(paths: HomePaths, repair: boolean, say: Say): void {
  for (const dir of [paths.home, paths.sockets, paths.logs]) {
    if (!existsSync(dir)) continue;
    const mode = statSync(dir).mode & 0o777;
    if ((mode & 0o077) === 0) continue;
    if (repair) {
      chmodSync(dir, 0o700);
      say('fixed', 'home', `${dir} was open to others (${mode.toString(8)}); now 0700`);
    } else {
      say('problem', 'home', `${dir} is open to others (${mode.toString(8)}); it should be 0700`);
    }
  }
  try {
    const fs = statfsSync(paths.home);
    const free = fs.bavail * fs.bsize;
    const text = `${paths.home}: ${(free / 2 ** 20).toFixed(0)} MiB free`;
    if (free < LOW_SPACE_BYTES) say('problem', 'home', `${text}; loops pause while the disk is full: free some space`);
    else say('ok', 'home', text);
  } catch (err) {
    say('problem', 'home', `cannot check free space under ${paths.home}: ${(err as Error).message}`);
  }
}

interface SocketProbe {
  path: string;
  loopId: string | null;
  answers: boolean;
}

/** Every socket file under the home, and whether something listens on it. */
async function probeSockets(paths: HomePaths): Promise<SocketProbe[]> {
  const files: Array<{ path: string; loopId: string | null }> = [];
  if (existsSync(paths.daemonSocket)) files.push({ path: paths.daemonSocket, loopId: null });
  if (existsSync(paths.sockets)) {
    for (const name of readdirSync(paths.sockets)) {
      if (name.endsWith('.sock')) files.push({ path: join(paths.sockets, name), loopId: basename(name, '.sock') });
    }
  }
  return Promise.all(files.map(async (f) => ({ ...f, answers: await socketAnswers(f.path) })));
}

/** Checks the DB; salvages a damaged one when nothing uses it. True when the DB is usable now. */
function checkDb(paths: HomePaths, repair: boolean, sockets: SocketProbe[], say: Say): boolean {
  if (!existsSync(paths.db)) {
    say('ok', 'db', `no session DB yet (${paths.db} is created on first use)`);
    return false;
  }
  let problem: string | null = null;
  let db: Database.Database | undefined;
  try {
    // --no-repair changes nothing: not even the WAL files a read-write open may make.
    db = new Database(paths.db, { fileMustExist: true, readonly: !repair });
    db.pragma('busy_timeout = 5000');
    const check = db.pragma('quick_check', { simple: true }) as string;
    if (check !== 'ok') problem = `quick_check: ${check.replace(/\s+/g, ' ').slice(0, 200)}`;
    else {
      const { n } = db.prepare('SELECT count(*) AS n FROM loops').get() as { n: number };
      say('ok', 'db', `${paths.db}: intact, ${n} loop(s)`);
    }
  } catch (err) {
    // Only damage is salvaged: a locked, unreadable or foreign DB is reported and left as it is.
    if (!isDbDamaged(err)) {
      say('problem', 'db', `${paths.db}: ${(err as Error).message}${sqliteCode(err) === 'SQLITE_ERROR' ? ' (is it a ralph session DB?)' : ''}; it was left as it is`);
      return false;
    }
    problem = (err as Error).message;
  } finally {
    db?.close();
  }
  if (problem === null) return true;

  if (!repair) {
    say('problem', 'db', `${paths.db} is damaged (${problem}); \`ralph doctor\` without --no-repair recovers its readable loops`);
    return false;
  }
  // Replacing the file under a process that has it open would lose that process's writes (and the
  // new DB would be invisible to it): refuse while a daemon answers or a runner recorded in it lives.
  const users = sockets.filter((s) => s.answers).map((u) => basename(u.path));
  const runners = liveRunnersIn(paths.db).filter((r) => !users.includes(`${r.id}.sock`));
  if (users.length > 0 || runners.length > 0) {
    const who = [...users, ...runners.map((r) => `loop ${r.id} (runner pid ${r.pid})`)].join(', ');
    say('problem', 'db', `${paths.db} is damaged (${problem}), but ralph processes still use it: ${who}; stop them (ralph stop, stop the daemon) and run ralph doctor again`);
    return false;
  }
  const { recovered, aside } = salvageDb(paths.db);
  say('fixed', 'db', `${paths.db} was damaged (${problem}); recovered ${recovered} loop(s) into a new DB; the damaged file is kept as ${aside}`);
  return true;
}

/** The DB is at an older schema and --no-repair may not bring it up to date. */
class SchemaBehind extends Error {}

/** The DB for the loop and socket checks: brought up to date when repairing; else read as it is. */
function openForChecks(paths: HomePaths, repair: boolean): Database.Database {
  if (repair) return openDb(paths.db, { busyTimeoutMs: 5000 });
  const db = new Database(paths.db, { fileMustExist: true, readonly: true });
  db.pragma('busy_timeout = 5000');
  const have = db.pragma('user_version', { simple: true }) as number;
  if (have < latestSchemaVersion()) {
    db.close();
    throw new SchemaBehind(`${paths.db} has schema version ${have} (this ralph's is ${latestSchemaVersion()}): loops not checked; the next ralph command (or ralph doctor without --no-repair) brings it up to date`);
  }
  return db;
}

function checkLoops(paths: HomePaths, repair: boolean, say: Say): void {
  let db;
  try {
    db = openForChecks(paths, repair);
  } catch (err) {
    say(err instanceof SchemaBehind ? 'info' : 'problem', 'loops', (err as Error).message);
    return;
  }
  try {
    const store = new LoopStore(db);
    if (repair) {
      const marked = settleDeadRunners(store);
      if (marked.length > 0) say('fixed', 'loops', `marked ${marked.length} loop(s) whose runner is gone as failed: ${marked.join(', ')}`);
    }
    const running = store.listOpen().filter((r) => r.location === 'local');
    say('ok', 'loops', `${running.length} local loop(s) running`);
  } catch (err) {
    say('problem', 'loops', (err as Error).message);
  } finally {
    db.close();
  }
}

function checkSockets(paths: HomePaths, repair: boolean, sockets: SocketProbe[], dbOk: boolean, say: Say): void {
  let store: LoopStore | undefined;
  let db;
  if (dbOk) {
    try {
      db = openForChecks(paths, repair);
      store = new LoopStore(db);
    } catch {
      store = undefined;
    }
  }
  try {
    const stale = sockets.filter((s) => {
      if (s.answers) return false;
      if (s.loopId === null || !store) return true;
      // A socket nobody answers on whose loop still runs (a runner busy right now) is left alone.
      const row = store.get(s.loopId);
      return !row || isFinal(row.status) || row.pid === null || !runnerAlive(row.pid, row.id);
    });
    const live = sockets.filter((s) => s.answers);
    const daemon = live.some((s) => s.loopId === null) ? '; the daemon answers' : '';
    if (stale.length === 0) {
      say('ok', 'sockets', `${live.filter((s) => s.loopId !== null).length} loop socket(s) answer${daemon}`);
      return;
    }
    const names = stale.map((s) => basename(s.path)).join(', ');
    if (repair) {
      for (const s of stale) rmSync(s.path, { force: true });
      say('fixed', 'sockets', `removed ${stale.length} socket(s) nobody listens on: ${names}${daemon}`);
    } else {
      say('problem', 'sockets', `${stale.length} socket(s) nobody listens on: ${names}`);
    }
  } finally {
    db?.close();
  }
}

function checkZiti(say: Say): void {
  let bin: string;
  try {
    bin = zitiBinary('ziti:doctor');
  } catch {
    say('info', 'ziti', 'no ziti CLI found (needed only for OpenZiti remotes; bash install/get-ziti.sh builds one)');
    return;
  }
  if (zitiWorks(bin)) say('ok', 'ziti', `${bin} runs`);
  else say('problem', 'ziti', `${bin} does not run \`ziti version\`: rebuild it with bash install/get-ziti.sh`);
}

function checkAgents(paths: HomePaths, say: Say): void {
  const search = [agentsBinDir(paths), process.env.PATH ?? ''].join(delimiter);
  const found: string[] = [];
  const missing: string[] = [];
  for (const agent of Object.keys(DEFAULT_AGENT_PACKAGES)) {
    const p = findOnPath(agentBinary(agent), search);
    if (p) found.push(`${agent} (${p})`);
    else missing.push(agent);
  }
  say('info', 'agents', `${found.length > 0 ? `installed: ${found.join(', ')}` : 'no agent CLI installed'}${missing.length > 0 ? `; not installed: ${missing.join(', ')}` : ''}`);
}
