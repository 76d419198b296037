// Repo names and loop ids: the names that become paths under RALPH_HOME (repos/<name>.git,
// worktrees/<id>, sockets/<id>.sock, logs/<id>.log) and git refs (ralph/<id>). One rule for every
// side: the CLI checks a name before it sends it, the daemon, worktrees/ and the loop runner check
// what they are given. Pure: no I/O.

export class RepoNameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RepoNameError';
  }
}

const SEGMENT = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
export const MAX_REPO_NAME = 100;

/**
 * Checks a repo name (`ralph://box/<repo>`, `--repo`) and returns it normalized (a trailing `.git`
 * dropped). Letters, digits, `.`, `_`, `-`; at most one `/`; no `..`; no leading `-` or `.`.
 * Throws a RepoNameError: `bad repo name "<raw>": <why> (use …)`.
 */
export function checkRepoName(raw: string): string {
  const bad = (why: string) =>
    new RepoNameError(`bad repo name ${JSON.stringify(raw)}: ${why} (use letters, digits, '.', '_', '-' and at most one '/')`);
  if (typeof raw !== 'string' || raw === '') throw bad('it is empty');
  const name = raw.endsWith('.git') ? raw.slice(0, -'.git'.length) : raw;
  if (name.length > MAX_REPO_NAME) throw bad(`longer than ${MAX_REPO_NAME} characters`);
  if (name.includes('..')) throw bad("'..' is not allowed");
  const segments = name.split('/');
  if (segments.length > 2) throw bad('more than one level of folders');
  for (const s of segments) {
    if (s === '') throw bad('an empty path segment');
    if (s.startsWith('-') || s.startsWith('.')) throw bad("a part starts with '-' or '.'");
    if (!SEGMENT.test(s)) throw bad('a character that is not allowed');
    if (s.endsWith('.lock')) throw bad("a part ends with '.lock'");
  }
  return name;
}

const LOOP_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** Checks a loop id: letters, digits, '.', '_', '-', at most 100, no '..', not ending in '.lock'. */
export function checkLoopId(id: string): string {
  if (typeof id !== 'string' || !LOOP_ID.test(id) || id.includes('..') || id.endsWith('.lock')) {
    throw new Error(`bad loop id ${JSON.stringify(id)} (use letters, digits, '.', '_', '-', at most 100, no '..')`);
  }
  return id;
}
