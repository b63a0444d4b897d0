-- The console's named queries (PostgreSQL, psycopg2). Parameters are %(named)s; times arrive as ISO 8601 UTC text
-- and are cast by the columns they meet. The same names as console/sql/sqlite/queries.sql.

-- name: insert_user
-- An existing username inserts nothing (no row changed: the store says the user exists).
INSERT INTO users (username, display_name, role, password_hash, active, created_at, updated_at)
VALUES (%(username)s, %(display_name)s, %(role)s, %(password_hash)s, true, %(now)s, %(now)s)
ON CONFLICT (username) DO NOTHING;

-- name: get_user
SELECT username, display_name, role, password_hash, active, created_at FROM users WHERE username = %(username)s;

-- name: list_users
SELECT username, display_name, role, password_hash, active, created_at FROM users ORDER BY username;

-- name: set_password
UPDATE users SET password_hash = %(password_hash)s, updated_at = %(now)s WHERE username = %(username)s;

-- name: set_role
UPDATE users SET role = %(role)s, updated_at = %(now)s WHERE username = %(username)s;

-- name: set_active
UPDATE users SET active = %(active)s, updated_at = %(now)s WHERE username = %(username)s;

-- name: delete_user_sessions
DELETE FROM sessions WHERE username = %(username)s;

-- name: insert_session
INSERT INTO sessions (id_sha256, username, csrf_token, created_at, expires_at, last_seen_at)
VALUES (%(id_sha256)s, %(username)s, %(csrf_token)s, %(now)s, %(expires_at)s, %(now)s);

-- name: get_session
SELECT s.id_sha256, s.username, s.csrf_token, s.created_at, s.expires_at, s.last_seen_at,
       u.display_name, u.role, u.active
FROM sessions s JOIN users u ON u.username = s.username
WHERE s.id_sha256 = %(id_sha256)s AND s.expires_at > %(now)s;

-- name: touch_session
UPDATE sessions SET last_seen_at = %(now)s WHERE id_sha256 = %(id_sha256)s;

-- name: delete_session
DELETE FROM sessions WHERE id_sha256 = %(id_sha256)s;

-- name: delete_expired_sessions
DELETE FROM sessions WHERE expires_at <= %(now)s;

-- name: insert_login_failure
INSERT INTO login_failures (throttle_key, at) VALUES (%(throttle_key)s, %(at)s);

-- name: login_failures_since
SELECT at FROM login_failures WHERE throttle_key = %(throttle_key)s AND at > %(since)s ORDER BY at;

-- name: clear_login_failures
DELETE FROM login_failures WHERE throttle_key = %(throttle_key)s;

-- name: forget_old_login_failures
DELETE FROM login_failures WHERE at <= %(before)s;

-- name: list_snippets
SELECT name, text, created_by, updated_at FROM snippets ORDER BY name;

-- name: upsert_snippet
INSERT INTO snippets (name, text, created_by, updated_at) VALUES (%(name)s, %(text)s, %(created_by)s, %(now)s)
ON CONFLICT (name) DO UPDATE
SET text = excluded.text, created_by = excluded.created_by, updated_at = excluded.updated_at;

-- name: delete_snippet
DELETE FROM snippets WHERE name = %(name)s;

-- name: mark_read
-- A later look wins; an earlier one (a slow request) changes nothing.
-- message_count: how many messages the person had written then (NULL: unknown).
INSERT INTO conversation_reads (conversation_id, read_at, read_by, message_count)
VALUES (%(id)s, %(at)s, %(by)s, %(message_count)s)
ON CONFLICT (conversation_id) DO UPDATE SET read_at = excluded.read_at, read_by = excluded.read_by,
                                            message_count = excluded.message_count
WHERE excluded.read_at > conversation_reads.read_at;

-- name: reads_of
SELECT conversation_id, read_at FROM conversation_reads
WHERE conversation_id IN (SELECT jsonb_array_elements_text(%(ids)s::jsonb));

-- name: read_marks_of
SELECT conversation_id, read_at, message_count FROM conversation_reads
WHERE conversation_id IN (SELECT jsonb_array_elements_text(%(ids)s::jsonb));

-- name: read_marks_after
-- Every look, a chunk at a time by conversation id (the inbox's count of unread conversations); %(prefix)s narrows
-- to one page ("<page_id>:"), '' for all.
SELECT conversation_id, read_at, message_count FROM conversation_reads
WHERE conversation_id COLLATE "C" > %(after)s AND left(conversation_id, length(%(prefix)s)) = %(prefix)s
ORDER BY conversation_id COLLATE "C" LIMIT %(limit)s;
