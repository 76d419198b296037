// How long each step of an agent install may take. A file of its own, without imports, so that the
// post-receive hook (a short-lived process that must start fast) derives its wait from the same numbers.

/** Longest an `npm install` of an agent CLI may run before it is given up. */
export const NPM_INSTALL_TIMEOUT_MS = 15 * 60_000;
/** Longest a start waits for another process's agent install (the cross-process lock). */
export const INSTALL_LOCK_TIMEOUT_MS = 15 * 60_000;
/** Longest the installed CLI's `--version` check may run. */
export const VERSION_CHECK_TIMEOUT_MS = 60_000;
/** Longest one agent's ensureAgentInstalled may take: the wait for the lock, npm, then `--version`. */
export const AGENT_INSTALL_MAX_MS = INSTALL_LOCK_TIMEOUT_MS + NPM_INSTALL_TIMEOUT_MS + VERSION_CHECK_TIMEOUT_MS;
