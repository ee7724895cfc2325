-- A browser's entry to one workspace on that workspace's own origin
-- (workspace-origin, SPEC.md section 3): the cookie set there after a
-- single-use ticket. It belongs to the feuilled session that asked for the
-- ticket, so a logout (the session row deleted) ends it too.
CREATE TABLE workspace_sessions (
  token_hash   bytea PRIMARY KEY CHECK (length(token_hash) = 32),  -- SHA-256 of the cookie value
  session_hash bytea NOT NULL REFERENCES sessions (token_hash) ON DELETE CASCADE,
  user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,  -- the caller
  owner_id     uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,  -- the workspace
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL
);
CREATE INDEX workspace_sessions_session_idx ON workspace_sessions (session_hash);
CREATE INDEX workspace_sessions_owner_idx ON workspace_sessions (owner_id, user_id);
CREATE INDEX workspace_sessions_expires_idx ON workspace_sessions (expires_at);
