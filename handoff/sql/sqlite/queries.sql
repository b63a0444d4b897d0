-- Human handoff's named queries (SQLite). Parameters are :named.

-- name: get_conversation
SELECT * FROM conversations WHERE id = :id;

-- name: lock_conversation
-- The write transaction already holds SQLite's single write lock (BEGIN IMMEDIATE).
SELECT * FROM conversations WHERE id = :id;

-- name: insert_conversation
INSERT OR IGNORE INTO conversations (id, page_id, user_id, state, paused_reason, paused_by, paused_at,
                                     last_activity_at)
VALUES (:id, :page_id, :user_id, :state, :reason, :by, :paused_at, :now);

-- name: pause
UPDATE conversations
SET state = 'paused', paused_reason = :reason, paused_by = :by, paused_at = :now, last_activity_at = :now
WHERE id = :id AND state = 'bot';

-- name: resume
UPDATE conversations
SET state = 'bot', paused_reason = NULL, paused_by = NULL, paused_at = NULL, assigned_to = NULL,
    last_activity_at = :now
WHERE id = :id AND state = 'paused';

-- name: assign
UPDATE conversations SET assigned_to = :agent, last_activity_at = :now WHERE id = :id;

-- name: note_user_message
UPDATE conversations
SET last_user_message_at = :at, last_message_text = :text, last_activity_at = :now
WHERE id = :id;

-- name: touch
UPDATE conversations SET last_activity_at = :now WHERE id = :id;

-- name: list_paused
SELECT * FROM conversations WHERE state = 'paused' ORDER BY last_activity_at DESC, id;

-- name: idle_paused
SELECT * FROM conversations
WHERE state = 'paused' AND COALESCE(last_activity_at, paused_at) < :cutoff
ORDER BY last_activity_at, id;

-- name: insert_log
INSERT INTO handoff_log (conversation_id, action, actor, reason, closing_note, at)
VALUES (:id, :action, :by, :reason, :closing_note, :now);

-- name: list_log
SELECT * FROM handoff_log WHERE conversation_id = :id ORDER BY id;

-- name: closes_since
-- Resumes by a person since a time: customer satisfaction catches up on them. The idle auto-resume is known by its
-- reason ('idle'), not by its actor's name.
SELECT l.conversation_id, c.page_id, c.user_id, l.actor, l.at FROM handoff_log l
JOIN conversations c ON c.id = l.conversation_id
WHERE l.action = 'resumed' AND COALESCE(l.reason, '') <> 'idle' AND l.at >= :since
ORDER BY l.at, l.id;  -- by time: handoff_log_resumed_at serves it

-- name: agent_of_close
-- The team member who last wrote to the customer between the conversation's last pause before :closed_at and
-- :closed_at ("agent:<username>"; no row: nobody of the team wrote, customer satisfaction asks nothing).
SELECT m.author FROM messages m
WHERE m.conversation_id = :id AND substr(m.author, 1, 6) = 'agent:' AND m.at <= :closed_at
  AND m.at >= COALESCE((SELECT MAX(l.at) FROM handoff_log l
                        WHERE l.conversation_id = :id AND l.action = 'paused' AND l.at <= :closed_at), '')
ORDER BY m.at DESC, m.id DESC
LIMIT 1;

-- name: insert_message
INSERT INTO messages (conversation_id, author, text, at, outbox_id) VALUES (:id, :author, :text, :at, :outbox_id);

-- name: message_of_outbox
SELECT id FROM messages WHERE conversation_id = :id AND outbox_id = :outbox_id LIMIT 1;

-- name: list_messages
SELECT * FROM (SELECT * FROM messages WHERE conversation_id = :id ORDER BY id DESC LIMIT :limit) ORDER BY id;

-- name: states_of
-- The console's inbox: the handoff rows of one page of conversations (a JSON list of ids), in one read.
SELECT * FROM conversations WHERE id IN (SELECT value FROM json_each(:ids));

-- name: ids_in_state
-- The inbox's state filters: "paused" (any, :assignment 'any'; to :agent, 'agent'; to nobody, 'none') or "bot" (a
-- conversation that was paused and closed since: a bot-state row exists only after a pause).
SELECT id FROM conversations
WHERE state = :state
  AND (:assignment = 'any' OR (:assignment = 'none' AND assigned_to IS NULL)
       OR (:assignment = 'agent' AND assigned_to = :agent));

-- name: insert_episode
-- A pause that really paused: a handoff episode starts (003_episodes.sql).
INSERT INTO handoff_episodes (conversation_id, page_id, user_id, paused_at, reason, paused_by)
SELECT id, page_id, user_id, :now, :reason, :by FROM conversations WHERE id = :id;

-- name: episode_replied
-- A person of the team wrote (the console or the Page inbox): the open episode's first reply, if it has none yet.
UPDATE handoff_episodes SET first_reply_at = :at, first_reply_by = :by
WHERE conversation_id = :id AND resumed_at IS NULL AND first_reply_at IS NULL;

-- name: episode_assigned
UPDATE handoff_episodes SET assigned_to = :agent WHERE conversation_id = :id AND resumed_at IS NULL;

-- name: episode_closed
UPDATE handoff_episodes SET resumed_at = :now, closed_by = :by WHERE conversation_id = :id AND resumed_at IS NULL;

-- name: episodes
-- The episodes paused in [since, until), of one page or all (:page_id NULL), oldest first.
SELECT * FROM handoff_episodes
WHERE paused_at >= :since AND paused_at < :until AND (:page_id IS NULL OR page_id = :page_id)
ORDER BY paused_at, id;
