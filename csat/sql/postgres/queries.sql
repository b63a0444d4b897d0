-- The csat store's named queries (PostgreSQL, psycopg2). Parameters are %(named)s. The same names as ../sqlite/queries.sql.

-- name: lock_person
-- One person's asks are decided one at a time (two closes at once must not both pass recent_ask).
SELECT pg_advisory_xact_lock(hashtext('csat:' || %(page_id)s || ':' || %(user_id)s));

-- name: recent_ask
-- An ask that reached this person (or is on its way) since then: a second survey so soon is not made.
SELECT id FROM csat_asks
WHERE page_id = %(page_id)s AND user_id = %(user_id)s AND status <> 'not_sent' AND asked_at >= %(since)s
LIMIT 1;

-- name: insert_ask
-- A close seen twice (the same conversation and time) inserts nothing.
INSERT INTO csat_asks (page_id, user_id, conversation_id, agent, closed_by, closed_at, asked_at, status)
VALUES (%(page_id)s, %(user_id)s, %(conversation_id)s, %(agent)s, %(closed_by)s, %(closed_at)s, %(now)s, 'asking')
ON CONFLICT (conversation_id, closed_at) DO NOTHING
RETURNING id;

-- name: ask_of_close
SELECT * FROM csat_asks WHERE conversation_id = %(conversation_id)s AND closed_at = %(closed_at)s;

-- name: get_ask
SELECT * FROM csat_asks WHERE id = %(id)s;

-- name: mark_sent
UPDATE csat_asks SET status = 'sent', how = %(how)s, tag = %(tag)s, outbox_id = %(outbox_id)s WHERE id = %(id)s;

-- name: mark_not_sent
UPDATE csat_asks SET status = 'not_sent', how = %(how)s, reason_code = %(reason_code)s, reason_es = %(reason_es)s
WHERE id = %(id)s;

-- name: latest_open_ask
-- The person's newest ask still waiting for an answer (a quick reply names no ask).
SELECT * FROM csat_asks WHERE page_id = %(page_id)s AND user_id = %(user_id)s AND status = 'sent'
ORDER BY id DESC LIMIT 1;

-- name: record_answer
-- The first answer stays: an ask answered already, or an event recorded before, changes nothing.
UPDATE csat_asks SET status = 'answered', rating = %(rating)s, comment = %(comment)s, answered_at = %(at)s,
    answer_event_key = %(event_key)s
WHERE id = %(id)s AND status = 'sent'
  AND NOT EXISTS (SELECT 1 FROM csat_asks AS seen WHERE seen.answer_event_key = %(event_key)s);

-- name: asks_of_conversation
SELECT * FROM csat_asks WHERE conversation_id = %(conversation_id)s ORDER BY id DESC LIMIT %(limit)s;

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
WHERE closed_at >= COALESCE(%(since)s::timestamptz, '-infinity') AND closed_at < COALESCE(%(until)s::timestamptz, 'infinity')
  AND (%(page_id)s::text IS NULL OR page_id = %(page_id)s)
GROUP BY agent
ORDER BY agent;

-- name: summary
-- The reports' satisfaction: the asks of the conversations closed in [since, until) of one page (NULL: every page).
SELECT SUM(CASE WHEN status != 'not_sent' THEN 1 ELSE 0 END) AS asked,
       COUNT(rating) AS answered,
       AVG(rating) AS average
FROM csat_asks
WHERE closed_at >= %(since)s::timestamptz AND closed_at < %(until)s::timestamptz
  AND (%(page_id)s::text IS NULL OR page_id = %(page_id)s);

-- name: summary_by_rating
SELECT rating, COUNT(*) AS n
FROM csat_asks
WHERE closed_at >= %(since)s::timestamptz AND closed_at < %(until)s::timestamptz
  AND (%(page_id)s::text IS NULL OR page_id = %(page_id)s) AND rating IS NOT NULL
GROUP BY rating;
