-- The console's own SQLite file (<data_dir>/console.sqlite3): people who log in, their sessions,
-- failed logins (the rate limit) and the saved replies ("Atajos"). Times are UTC ISO-8601 text with
-- microseconds, fixed width, so text order is time order. PRAGMA user_version is the schema version.

CREATE TABLE users (
    username TEXT PRIMARY KEY,             -- lowercase: letters, digits, '.', '_', '-'
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('admin', 'agent', 'editor')),
    password_hash TEXT NOT NULL,           -- argon2id, PHC string (parameters included)
    active INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

-- The cookie carries a random session id; only its SHA-256 is stored, so a copy of this file
-- does not log anybody in.
CREATE TABLE sessions (
    id_sha256 TEXT PRIMARY KEY,
    username TEXT NOT NULL REFERENCES users (username) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL
);
CREATE INDEX sessions_by_user ON sessions (username);
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- One row per failed login, keyed by username and client address.
CREATE TABLE login_failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    throttle_key TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX login_failures_by_key ON login_failures (throttle_key, at);

CREATE TABLE snippets (
    name TEXT PRIMARY KEY,                 -- typed as /name in the reply box
    text TEXT NOT NULL,
    created_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
