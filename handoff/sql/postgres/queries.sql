-- Human handoff's named queries (PostgreSQL, psycopg2). Parameters are %(named)s; times arrive as ISO 8601 UTC
-- text and are cast by the columns they meet. The same names as handoff/sql/sqlite/queries.sql.

-- name: get_conversation
SELECT * FROM conversations WHERE id = %(id)s;

-- name: lock_conversation
-- A write transaction reads the conversation it changes through this: the row stays locked until COMMIT, so two
-- writers of one conversation (a retried agent reply, a pause and a resume) take turns, as SQLite's single writer.
SELECT * FROM conversations WHERE id = %(id)s FOR UPDATE;

-- name: insert_conversation
-- A conversation seen for the first time; a concurrent first sight waits for the other's COMMIT and inserts nothing.
INSERT INTO conversations (id, page_id, user_id, state, paused_reason, paused_by, paused_at, last_activity_at)
VALUES (%(id)s, %(page_id)s, %(user_id)s, %(state)s, %(reason)s, %(by)s, %(paused_at)s, %(now)s)
ON CONFLICT DO NOTHING;

-- name: pause
UPDATE conversations
SET state = 'paused', paused_reason = %(reason)s, paused_by = %(by)s, paused_at = %(now)s, last_activity_at = %(now)s
WHERE id = %(id)s AND state = 'bot';

-- name: resume
UPDATE conversations
SET state = 'bot', paused_reason = NULL, paused_by = NULL, paused_at = NULL, assigned_to = NULL,
    last_activity_at = %(now)s
WHERE id = %(id)s AND state = 'paused';

-- name: assign
UPDATE conversations SET assigned_to = %(agent)s, last_activity_at = %(now)s WHERE id = %(id)s;

-- name: note_user_message
UPDATE conversations
SET last_user_message_at = %(at)s, last_message_text = %(text)s, last_activity_at = %(now)s
WHERE id = %(id)s;

-- name: touch
UPDATE conversations SET last_activity_at = %(now)s WHERE id = %(id)s;

-- name: list_paused
-- NULLS LAST here and NULLS FIRST below: where SQLite puts them.
SELECT * FROM conversations WHERE state = 'paused' ORDER BY last_activity_at DESC NULLS LAST, id;

-- name: idle_paused
SELECT * FROM conversations
WHERE state = 'paused' AND COALESCE(last_activity_at, paused_at) < %(cutoff)s
ORDER BY last_activity_at NULLS FIRST, id;

-- name: insert_log
INSERT INTO handoff_log (conversation_id, action, actor, reason, closing_note, at)
VALUES (%(id)s, %(action)s, %(by)s, %(reason)s, %(closing_note)s, %(now)s);

-- name: list_log
SELECT * FROM handoff_log WHERE conversation_id = %(id)s ORDER BY id;

-- name: closes_since
-- Resumes by a person since a time: customer satisfaction catches up on them. The idle auto-resume is known by its
-- reason ('idle'), not by its actor's name.
SELECT l.conversation_id, c.page_id, c.user_id, l.actor, l.at FROM handoff_log l
JOIN conversations c ON c.id = l.conversation_id
WHERE l.action = 'resumed' AND l.reason IS DISTINCT FROM 'idle' AND l.at >= %(since)s
ORDER BY l.at, l.id;  -- by time: handoff_log_resumed_at serves it

-- name: agent_of_close
-- The team member who last wrote to the customer between the conversation's last pause before %(closed_at)s and
-- then ("agent:<username>"; no row: nobody of the team wrote, customer satisfaction asks nothing).
SELECT m.author FROM messages m
WHERE m.conversation_id = %(id)s AND left(m.author, 6) = 'agent:' AND m.at <= %(closed_at)s
  AND m.at >= COALESCE((SELECT MAX(l.at) FROM handoff_log l
                        WHERE l.conversation_id = %(id)s AND l.action = 'paused' AND l.at <= %(closed_at)s),
                       '-infinity'::timestamptz)
ORDER BY m.at DESC, m.id DESC
LIMIT 1;

-- name: insert_message
INSERT INTO messages (conversation_id, author, text, at, outbox_id)
VALUES (%(id)s, %(author)s, %(text)s, %(at)s, %(outbox_id)s);

-- name: message_of_outbox
SELECT id FROM messages WHERE conversation_id = %(id)s AND outbox_id = %(outbox_id)s LIMIT 1;

-- name: list_messages
SELECT * FROM (SELECT * FROM messages WHERE conversation_id = %(id)s ORDER BY id DESC LIMIT %(limit)s) AS newest
ORDER BY id;

-- name: states_of
-- The console's inbox: the handoff rows of one page of conversations (a JSON list of ids), in one read.
SELECT * FROM conversations WHERE id IN (SELECT jsonb_array_elements_text(%(ids)s::jsonb));

-- name: ids_in_state
-- The inbox's state filters: "paused" (any, assignment 'any'; to an agent, 'agent'; to nobody, 'none') or "bot" (a
-- conversation that was paused and closed since: a bot-state row exists only after a pause).
SELECT id FROM conversations
WHERE state = %(state)s
  AND (%(assignment)s = 'any' OR (%(assignment)s = 'none' AND assigned_to IS NULL)
       OR (%(assignment)s = 'agent' AND assigned_to = %(agent)s));

-- name: insert_episode
-- A pause that really paused: a handoff episode starts (003_episodes.sql).
INSERT INTO handoff_episodes (conversation_id, page_id, user_id, paused_at, reason, paused_by)
SELECT id, page_id, user_id, %(now)s::timestamptz, %(reason)s, %(by)s FROM conversations WHERE id = %(id)s;

-- name: episode_replied
-- A person of the team wrote (the console or the Page inbox): the open episode's first reply, if it has none yet.
UPDATE handoff_episodes SET first_reply_at = %(at)s, first_reply_by = %(by)s
WHERE conversation_id = %(id)s AND resumed_at IS NULL AND first_reply_at IS NULL;

-- name: episode_assigned
UPDATE handoff_episodes SET assigned_to = %(agent)s WHERE conversation_id = %(id)s AND resumed_at IS NULL;

-- name: episode_closed
UPDATE handoff_episodes SET resumed_at = %(now)s, closed_by = %(by)s
WHERE conversation_id = %(id)s AND resumed_at IS NULL;

-- name: episodes
-- The episodes paused in [since, until), of one page or all (NULL), oldest first.
SELECT * FROM handoff_episodes
WHERE paused_at >= %(since)s::timestamptz AND paused_at < %(until)s::timestamptz
  AND (%(page_id)s::text IS NULL OR page_id = %(page_id)s)
ORDER BY paused_at, id;
