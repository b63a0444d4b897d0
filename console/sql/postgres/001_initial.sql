-- The console on PostgreSQL: people who log in, their sessions, failed logins (the rate limit) and the saved
-- replies ("Atajos"). The same tables as the SQLite file (console/sql/sqlite/001_initial.sql), with timestamptz
-- times and a boolean `active`; created in the store's schema (search_path).

CREATE TABLE users (
    username text PRIMARY KEY,             -- lowercase: letters, digits, '.', '_', '-'
    display_name text NOT NULL,
    role text NOT NULL CHECK (role IN ('admin', 'agent', 'editor')),
    password_hash text NOT NULL,           -- argon2id, PHC string (parameters included)
    active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL
);

-- The cookie carries a random session id; only its SHA-256 is stored, so a copy of this table does not log
-- anybody in.
CREATE TABLE sessions (
    id_sha256 text PRIMARY KEY,
    username text NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    csrf_token text NOT NULL,
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,
    last_seen_at timestamptz NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (username);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- One row per failed login, keyed by username and client address.
CREATE TABLE login_failures (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    throttle_key text NOT NULL,
    at timestamptz NOT NULL
);
CREATE INDEX login_failures_by_key ON login_failures (throttle_key, at);

CREATE TABLE snippets (
    name text PRIMARY KEY,                 -- typed as /name in the reply box
    text text NOT NULL,
    created_by text NOT NULL,
    updated_at timestamptz NOT NULL
);
