-- The session DB: every loop this machine knows of, its own and remote ones. Rows are never deleted.
-- Applied by store/db.ts. Each "-- version: N" section runs once, in order, inside a transaction,
-- and PRAGMA user_version records the last one applied. Append new sections; never edit old ones.

-- version: 1
CREATE TABLE loops (
  id              TEXT PRIMARY KEY,            -- e.g. feature-3f2a
  name            TEXT NOT NULL,               -- user-facing name (defaults to the id's stem)
  location        TEXT NOT NULL CHECK (location IN ('local', 'remote')),
  remote          TEXT,                        -- remote name from the config (remote rows)
  ziti_service    TEXT,                        -- OpenZiti service that reaches the remote's daemon
  identity_path   TEXT,                        -- identity file used to dial it
  host            TEXT,                        -- host label (hostname of the machine running the loop)
  remote_loop_id  TEXT,                        -- the loop's id in the remote daemon's own DB
  repo            TEXT,                        -- repo name (remote) or path
  branch          TEXT,
  base_commit     TEXT,
  work_dir        TEXT NOT NULL,               -- the checkout the agent works in
  task_dir        TEXT,                        -- where prd.json / prompt.md / progress.txt live
  agent           TEXT NOT NULL,               -- profile name (claude, opencode, codex, amp) or "custom"
  agent_cmd       TEXT,                        -- the shell command of a custom agent (--agent-cmd)
  status          TEXT NOT NULL CHECK (status IN ('starting', 'running', 'completed', 'failed', 'stopped')),
  iteration       INTEGER NOT NULL DEFAULT 0,
  max_iterations  INTEGER NOT NULL,
  current_story   TEXT,
  pid             INTEGER,                     -- the loop runner's process id (local rows)
  socket_path     TEXT,
  log_path        TEXT,
  started_at      TEXT NOT NULL,               -- ISO-8601 UTC
  updated_at      TEXT NOT NULL,
  ended_at        TEXT,
  reason          TEXT,                        -- why it ended (or a note while running)
  last_seen_at    TEXT,                        -- last time a remote daemon confirmed this row
  push_id         TEXT                         -- the push that started it (remote loops)
);
CREATE UNIQUE INDEX loops_name ON loops (name);
CREATE INDEX loops_started ON loops (started_at DESC);
CREATE INDEX loops_open ON loops (status) WHERE status IN ('starting', 'running');
CREATE INDEX loops_remote ON loops (remote, remote_loop_id);
CREATE INDEX loops_push ON loops (push_id);

-- version: 2
-- Real agents: a loop may be `paused` (rate or usage limit; `paused_until` says when it goes on),
-- has per-loop iteration/stall timeouts and a fallback agent, may continue an earlier loop
-- (`resumed_from`), and carries token/cost totals (null: not known, e.g. a custom agent). SQLite
-- cannot change a CHECK constraint in place, so the table is rebuilt.
CREATE TABLE loops_v2 (
  id              TEXT PRIMARY KEY,
  name            TEXT NOT NULL,
  location        TEXT NOT NULL CHECK (location IN ('local', 'remote')),
  remote          TEXT,
  ziti_service    TEXT,
  identity_path   TEXT,
  host            TEXT,
  remote_loop_id  TEXT,
  repo            TEXT,
  branch          TEXT,
  base_commit     TEXT,
  work_dir        TEXT NOT NULL,
  task_dir        TEXT,
  agent           TEXT NOT NULL,
  agent_cmd       TEXT,
  status          TEXT NOT NULL CHECK (status IN ('starting', 'running', 'paused', 'completed', 'failed', 'stopped')),
  iteration       INTEGER NOT NULL DEFAULT 0,
  max_iterations  INTEGER NOT NULL,
  current_story   TEXT,
  pid             INTEGER,
  socket_path     TEXT,
  log_path        TEXT,
  started_at      TEXT NOT NULL,
  updated_at      TEXT NOT NULL,
  ended_at        TEXT,
  reason          TEXT,
  last_seen_at    TEXT,
  push_id         TEXT,
  iteration_timeout_ms INTEGER,                -- an iteration running longer fails (null: the default)
  stall_timeout_ms     INTEGER,                -- an iteration silent this long fails (null: the default)
  fallback_agent  TEXT,                        -- agent profile run while the main agent is rate-limited
  resumed_from    TEXT,                        -- the loop this one continues (ralph resume)
  paused_until    TEXT,                        -- ISO-8601 UTC: when a paused loop goes on by itself
  input_tokens    INTEGER,                     -- totals over the loop's iterations (null: unknown)
  output_tokens   INTEGER,
  cache_read_tokens  INTEGER,
  cache_write_tokens INTEGER,
  cost_usd        REAL
);
INSERT INTO loops_v2 (id, name, location, remote, ziti_service, identity_path, host, remote_loop_id, repo, branch,
  base_commit, work_dir, task_dir, agent, agent_cmd, status, iteration, max_iterations, current_story, pid,
  socket_path, log_path, started_at, updated_at, ended_at, reason, last_seen_at, push_id)
SELECT id, name, location, remote, ziti_service, identity_path, host, remote_loop_id, repo, branch,
  base_commit, work_dir, task_dir, agent, agent_cmd, status, iteration, max_iterations, current_story, pid,
  socket_path, log_path, started_at, updated_at, ended_at, reason, last_seen_at, push_id FROM loops;
DROP TABLE loops;
ALTER TABLE loops_v2 RENAME TO loops;
CREATE UNIQUE INDEX loops_name ON loops (name);
CREATE INDEX loops_started ON loops (started_at DESC);
CREATE INDEX loops_open ON loops (status) WHERE status IN ('starting', 'running', 'paused');
CREATE INDEX loops_remote ON loops (remote, remote_loop_id);
CREATE INDEX loops_push ON loops (push_id);
-- `ralph resume` looks up who went on from a loop (IF NOT EXISTS: a v2 DB made before this line was
-- added simply goes without it).
CREATE INDEX IF NOT EXISTS loops_resumed ON loops (resumed_from) WHERE resumed_from IS NOT NULL;

-- One row per agent run of a local loop: what it cost and how it ended. A run cut short by a rate
-- limit is recorded too, but does not use up an iteration (the next run has the same number).
CREATE TABLE iterations (
  id              INTEGER PRIMARY KEY,
  loop_id         TEXT NOT NULL,
  iteration       INTEGER NOT NULL,
  agent           TEXT NOT NULL,               -- the profile that ran (the fallback agent, when it did)
  model           TEXT,
  story           TEXT,
  started_at      TEXT NOT NULL,
  ended_at        TEXT,
  duration_ms     INTEGER,
  outcome         TEXT CHECK (outcome IN ('ok', 'failed', 'timeout', 'stalled', 'rate-limited', 'stopped')),
  exit_code       INTEGER,
  reason          TEXT,                        -- the agent's own last error line, or the timeout's
  input_tokens    INTEGER,
  output_tokens   INTEGER,
  cache_read_tokens  INTEGER,
  cache_write_tokens INTEGER,
  cost_usd        REAL
);
CREATE INDEX iterations_loop ON iterations (loop_id, iteration);
