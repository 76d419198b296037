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
