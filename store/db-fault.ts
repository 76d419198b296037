// Faults of the session DB (damaged, full, locked, unreadable) told in the user's terms. No SQLite
// import here: the CLI's error printer uses it on every failure and must stay light.

/** An error of SQLite itself (better-sqlite3's SqliteError): `code` is SQLITE_*. */
export function sqliteCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined;
}

/** The DB cannot be used as it stands: damaged, full, locked, unreadable. */
export function isDbFault(err: unknown): boolean {
  return sqliteCode(err) !== undefined && !/^SQLITE_(CONSTRAINT|MISMATCH|RANGE|ERROR)/.test(sqliteCode(err)!);
}

/** Faults that pass: another writer lets go, space comes back. A write is worth retrying later. */
export function isTransientDbFault(err: unknown): boolean {
  return /^SQLITE_(BUSY|LOCKED|FULL|IOERR)/.test(sqliteCode(err) ?? '');
}

export function isDbDamaged(err: unknown): boolean {
  return /^SQLITE_(CORRUPT|NOTADB)/.test(sqliteCode(err) ?? '');
}

/** What went wrong with the session DB, in the user's terms, and what to do (one line). */
export function dbFaultMessage(path: string, err: unknown): string {
  const code = sqliteCode(err) ?? '';
  const what = (err as Error)?.message ?? String(err);
  if (isDbDamaged(err)) return `the session DB ${path} is damaged (${what}); run \`ralph doctor\` to check it and recover its loops`;
  if (code.startsWith('SQLITE_FULL')) return `no space left to write the session DB ${path}; free some space on its disk and try again`;
  if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) {
    return `the session DB ${path} is locked by another process (${what}); try again in a moment`;
  }
  if (code.startsWith('SQLITE_READONLY') || code.startsWith('SQLITE_CANTOPEN') || code.startsWith('SQLITE_PERM') || code.startsWith('SQLITE_AUTH')) {
    return `cannot open the session DB ${path} for writing (${what}); check its owner and permissions, or run \`ralph doctor\``;
  }
  if (code.startsWith('SQLITE_IOERR')) return `cannot read or write the session DB ${path} (${what}); is its disk full or failing? \`ralph doctor\` checks`;
  return `the session DB ${path}: ${what}`;
}

/** A fault of the session DB as the user should hear it; `cause` keeps SQLite's error. */
export class DbFaultError extends Error {
  readonly code: string | undefined;
  constructor(
    readonly path: string,
    override readonly cause: unknown,
  ) {
    super(dbFaultMessage(path, cause));
    this.name = 'DbFaultError';
    this.code = sqliteCode(cause);
  }
}
