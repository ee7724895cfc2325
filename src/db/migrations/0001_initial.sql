-- feuilled schema, version 1: every table of SPEC.md section 6.

CREATE TABLE users (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  -- The public name in /@handle (a GitHub login, "-2", "-3"... on a collision).
  handle        text NOT NULL CHECK (handle ~ '^[A-Za-z0-9-]{1,39}(-[0-9]{1,6})?$'),
  name          text,
  email         text,
  avatar_url    text,
  github_id     bigint UNIQUE,
  google_id     text UNIQUE,
  plan          text NOT NULL DEFAULT 'free',
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  last_login_at timestamptz
);
-- Handles are unique whatever their case (GitHub logins are case-insensitive).
CREATE UNIQUE INDEX users_handle_key ON users (lower(handle));

CREATE TABLE sessions (
  token_hash   bytea PRIMARY KEY CHECK (length(token_hash) = 32),  -- SHA-256 of the cookie value
  user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL,
  refreshed_at timestamptz NOT NULL DEFAULT now(),
  client       text,
  user_agent   text
);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

CREATE TABLE invites (
  id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  token_hash bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
  owner_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  project    text NOT NULL,
  role       text NOT NULL CHECK (role IN ('viewer', 'editor')),
  created_at timestamptz NOT NULL DEFAULT now(),
  revoked_at timestamptz
);
CREATE INDEX invites_owner_idx ON invites (owner_id, created_at DESC);

CREATE TABLE memberships (
  owner_id   uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  member_id  uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  project    text NOT NULL,
  role       text NOT NULL CHECK (role IN ('viewer', 'editor')),
  invite_id  uuid REFERENCES invites (id) ON DELETE SET NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (owner_id, member_id, project)
);
CREATE INDEX memberships_member_idx ON memberships (member_id);

-- One row per user: the workspace's state and the ports it keeps for life.
CREATE TABLE workspaces (
  user_id          uuid PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
  state            text NOT NULL DEFAULT 'stopped'
                   CHECK (state IN ('stopped', 'starting', 'running', 'sleeping', 'waking', 'migrating', 'stopping', 'failed')),
  state_reason     text,
  host             text,
  runtime_port     integer UNIQUE CHECK (runtime_port BETWEEN 40000 AND 59999),
  last_activity_at timestamptz,
  updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Containers feuilled made: one editor and one runtime per user, sandboxes apart.
CREATE TABLE runtimes (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  kind         text NOT NULL CHECK (kind IN ('editor', 'runtime', 'sandbox')),
  name         text NOT NULL UNIQUE,   -- container name: feuille-ed-/feuille-rt-/feuille-sb-...
  host         text NOT NULL,          -- compute-host name
  port         integer NOT NULL,       -- host port
  token        text,                   -- the editor's X-Token (editors only)
  container_id text,
  state        text NOT NULL DEFAULT 'created',
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX runtimes_one_editor ON runtimes (user_id) WHERE kind = 'editor';
CREATE UNIQUE INDEX runtimes_one_runtime ON runtimes (user_id) WHERE kind = 'runtime';
CREATE UNIQUE INDEX runtimes_port_key ON runtimes (port);
CREATE INDEX runtimes_user_idx ON runtimes (user_id);

CREATE TABLE snapshots (
  id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  name         text NOT NULL,
  kind         text NOT NULL DEFAULT 'manual' CHECK (kind IN ('manual', 'sleep', 'sandbox')),
  path         text NOT NULL,
  size_bytes   bigint,
  runtime_port integer,
  host         text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (user_id, name)
);
CREATE INDEX snapshots_user_idx ON snapshots (user_id, created_at DESC);

CREATE TABLE migrations (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id       uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  from_host     text NOT NULL,
  to_host       text NOT NULL,
  reason        text NOT NULL,
  status        text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed')),
  error         text,
  checkpoint_ms integer,
  restore_ms    integer,
  switch_ms     integer,
  total_ms      integer,
  bytes         bigint,
  started_at    timestamptz NOT NULL DEFAULT now(),
  finished_at   timestamptz
);
CREATE INDEX migrations_user_idx ON migrations (user_id, started_at DESC);

-- Everything that happened to a workspace, for the dashboard and operators.
CREATE TABLE events (
  id      bigserial PRIMARY KEY,
  at      timestamptz NOT NULL DEFAULT now(),
  user_id uuid REFERENCES users (id) ON DELETE CASCADE,
  kind    text NOT NULL,
  detail  jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX events_user_idx ON events (user_id, at DESC);
CREATE INDEX events_at_idx ON events (at);
