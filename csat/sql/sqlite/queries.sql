-- The csat store's named queries (SQLite). Parameters are :named. The same names as ../postgres/queries.sql.

-- name: lock_person
-- The write transaction already holds SQLite's single write lock (BEGIN IMMEDIATE).
SELECT 1;

-- name: recent_ask
-- An ask that reached this person (or is on its way) since then: a second survey so soon is not made.
SELECT id FROM csat_asks
WHERE page_id = :page_id AND user_id = :user_id AND status <> 'not_sent' AND asked_at >= :since
LIMIT 1;

-- name: insert_ask
-- A close seen twice (the same conversation and time) inserts nothing.
INSERT INTO csat_asks (page_id, user_id, conversation_id, agent, closed_by, closed_at, asked_at, status)
VALUES (:page_id, :user_id, :conversation_id, :agent, :closed_by, :closed_at, :now, 'asking')
ON CONFLICT (conversation_id, closed_at) DO NOTHING
RETURNING id;

-- name: ask_of_close
SELECT * FROM csat_asks WHERE conversation_id = :conversation_id AND closed_at = :closed_at;

-- name: get_ask
SELECT * FROM csat_asks WHERE id = :id;

-- name: mark_sent
UPDATE csat_asks SET status = 'sent', how = :how, tag = :tag, outbox_id = :outbox_id WHERE id = :id;

-- name: mark_not_sent
UPDATE csat_asks SET status = 'not_sent', how = :how, reason_code = :reason_code, reason_es = :reason_es
WHERE id = :id;

-- name: latest_open_ask
-- The person's newest ask still waiting for an answer (a quick reply names no ask).
SELECT * FROM csat_asks WHERE page_id = :page_id AND user_id = :user_id AND status = 'sent'
ORDER BY id DESC LIMIT 1;

-- name: record_answer
-- The first answer stays: an ask answered already, or an event recorded before, changes nothing.
UPDATE csat_asks SET status = 'answered', rating = :rating, comment = :comment, answered_at = :at,
    answer_event_key = :event_key
WHERE id = :id AND status = 'sent'
  AND NOT EXISTS (SELECT 1 FROM csat_asks AS seen WHERE seen.answer_event_key = :event_key);

-- name: asks_of_conversation
SELECT * FROM csat_asks WHERE conversation_id = :conversation_id ORDER BY id DESC LIMIT :limit;

-- name: agent_satisfaction
-- Per agent, the asks of the conversations closed in [since, until) (NULL: no bound) of one page (NULL: every
-- page): how many reached the person, how many were answered, the average. By the close time, as `summary`
-- (the same asks for the same period; a late ask, the catch-up's, counts with its close), on its index (a range
-- whatever the bounds, not `:since IS NULL OR …`, which SQLite plans as a scan).
SELECT agent,
       SUM(CASE WHEN status != 'not_sent' THEN 1 ELSE 0 END) AS asked,
       COUNT(rating) AS answered,
       AVG(rating) AS average
FROM csat_asks
WHERE closed_at >= COALESCE(:since, '') AND closed_at < COALESCE(:until, '9999-12-31T23:59:59.999999+00:00')
  AND (:page_id IS NULL OR page_id = :page_id)
GROUP BY agent
ORDER BY agent;

-- name: summary
-- The reports' satisfaction: the asks of the conversations closed in [since, until) of one page (NULL: every page).
SELECT SUM(CASE WHEN status != 'not_sent' THEN 1 ELSE 0 END) AS asked,
       COUNT(rating) AS answered,
       AVG(rating) AS average
FROM csat_asks
WHERE closed_at >= :since AND closed_at < :until
  AND (:page_id IS NULL OR page_id = :page_id);

-- name: summary_by_rating
SELECT rating, COUNT(*) AS n
FROM csat_asks
WHERE closed_at >= :since AND closed_at < :until
  AND (:page_id IS NULL OR page_id = :page_id) AND rating IS NOT NULL
GROUP BY rating;
