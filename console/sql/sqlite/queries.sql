-- The console's named queries (SQLite). Parameters are :named.

-- name: insert_user
-- An existing username inserts nothing (no row changed: the store says the user exists).
INSERT INTO users (username, display_name, role, password_hash, active, created_at, updated_at)
VALUES (:username, :display_name, :role, :password_hash, 1, :now, :now)
ON CONFLICT (username) DO NOTHING;

-- name: get_user
SELECT username, display_name, role, password_hash, active, created_at FROM users WHERE username = :username;

-- name: list_users
SELECT username, display_name, role, password_hash, active, created_at FROM users ORDER BY username;

-- name: set_password
UPDATE users SET password_hash = :password_hash, updated_at = :now WHERE username = :username;

-- name: set_role
UPDATE users SET role = :role, updated_at = :now WHERE username = :username;

-- name: set_active
UPDATE users SET active = :active, updated_at = :now WHERE username = :username;

-- name: delete_user_sessions
DELETE FROM sessions WHERE username = :username;

-- name: insert_session
INSERT INTO sessions (id_sha256, username, csrf_token, created_at, expires_at, last_seen_at)
VALUES (:id_sha256, :username, :csrf_token, :now, :expires_at, :now);

-- name: get_session
SELECT s.id_sha256, s.username, s.csrf_token, s.created_at, s.expires_at, s.last_seen_at,
       u.display_name, u.role, u.active
FROM sessions s JOIN users u ON u.username = s.username
WHERE s.id_sha256 = :id_sha256 AND s.expires_at > :now;

-- name: touch_session
UPDATE sessions SET last_seen_at = :now WHERE id_sha256 = :id_sha256;

-- name: delete_session
DELETE FROM sessions WHERE id_sha256 = :id_sha256;

-- name: delete_expired_sessions
DELETE FROM sessions WHERE expires_at <= :now;

-- name: insert_login_failure
INSERT INTO login_failures (throttle_key, at) VALUES (:throttle_key, :at);

-- name: login_failures_since
SELECT at FROM login_failures WHERE throttle_key = :throttle_key AND at > :since ORDER BY at;

-- name: clear_login_failures
DELETE FROM login_failures WHERE throttle_key = :throttle_key;

-- name: forget_old_login_failures
DELETE FROM login_failures WHERE at <= :before;

-- name: list_snippets
SELECT name, text, created_by, updated_at FROM snippets ORDER BY name;

-- name: upsert_snippet
INSERT INTO snippets (name, text, created_by, updated_at) VALUES (:name, :text, :created_by, :now)
ON CONFLICT (name) DO UPDATE SET text = excluded.text, created_by = excluded.created_by, updated_at = excluded.updated_at;

-- name: delete_snippet
DELETE FROM snippets WHERE name = :name;

-- name: mark_read
-- A later look wins; an earlier one (a slow request) changes nothing.
-- message_count: how many messages the person had written then (NULL: unknown).
INSERT INTO conversation_reads (conversation_id, read_at, read_by, message_count)
VALUES (:id, :at, :by, :message_count)
ON CONFLICT (conversation_id) DO UPDATE SET read_at = excluded.read_at, read_by = excluded.read_by,
                                            message_count = excluded.message_count
WHERE excluded.read_at > conversation_reads.read_at;

-- name: reads_of
SELECT conversation_id, read_at FROM conversation_reads WHERE conversation_id IN (SELECT value FROM json_each(:ids));

-- name: read_marks_of
SELECT conversation_id, read_at, message_count FROM conversation_reads
WHERE conversation_id IN (SELECT value FROM json_each(:ids));

-- name: read_marks_after
-- Every look, a chunk at a time by conversation id (the inbox's count of unread conversations); :prefix narrows
-- to one page ("<page_id>:"), '' for all.
SELECT conversation_id, read_at, message_count FROM conversation_reads
WHERE conversation_id > :after AND substr(conversation_id, 1, length(:prefix)) = :prefix
ORDER BY conversation_id LIMIT :limit;
