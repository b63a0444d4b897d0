-- Named queries of the ingest journal on PostgreSQL (connectors/ingest_postgres.py).

-- name: serialize_writers
-- Ids are taken in commit order (one writer at a time, as SQLite's lock does): a claimer never sees a later event
-- of a conversation committed while an earlier one is still in flight in another webhook process's transaction.
SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.inbound_events'));

-- name: insert_events
-- One statement for a whole group commit: ids are taken in the arrays' order (the order of arrival); a key already
-- journaled, pruned within Meta's redelivery horizon (inbound_seen) or repeated in the batch inserts nothing.
INSERT INTO inbound_events
    (dedup_key, page_id, user_id, kind, status, event_json, received_at, window_pending, notice_pending)
SELECT e.dedup_key, e.page_id, e.user_id, e.kind, e.status, e.event_json, %(received_at)s, e.window_pending,
       e.notice_pending
FROM unnest(%(dedup_keys)s::text[], %(page_ids)s::text[], %(user_ids)s::text[], %(kinds)s::text[],
            %(statuses)s::text[], %(event_jsons)s::text[], %(window_pendings)s::boolean[],
            %(notice_pendings)s::boolean[])
     WITH ORDINALITY AS e(dedup_key, page_id, user_id, kind, status, event_json, window_pending, notice_pending, n)
WHERE NOT EXISTS (SELECT 1 FROM inbound_seen s WHERE s.dedup_key = e.dedup_key)
ORDER BY e.n
ON CONFLICT (dedup_key) DO NOTHING
RETURNING id, dedup_key;

-- name: pending
SELECT id, event_json, status, attempts, window_pending, notice_pending
FROM inbound_events WHERE status = 'pending' ORDER BY id;

-- name: pending_ids
SELECT id FROM inbound_events WHERE status = 'pending' ORDER BY id;

-- name: windows_pending
SELECT id, event_json, status, attempts, window_pending, notice_pending
FROM inbound_events WHERE window_pending ORDER BY id;

-- name: journaled
-- The first `limit` journaled rows above `after`: each flag's partial index gives its first `limit` ids, so a
-- backlog is never read whole.
SELECT id, event_json, status, attempts, window_pending, notice_pending
FROM inbound_events
WHERE id IN ((SELECT id FROM inbound_events WHERE window_pending AND id > %(after)s ORDER BY id LIMIT %(limit)s)
             UNION
             (SELECT id FROM inbound_events WHERE notice_pending AND id > %(after)s ORDER BY id LIMIT %(limit)s))
ORDER BY id
LIMIT %(limit)s;

-- name: window_applied
UPDATE inbound_events SET window_pending = false WHERE id = %(id)s;

-- name: notice_applied
UPDATE inbound_events SET notice_pending = false WHERE id = %(id)s;

-- name: journal_state
SELECT window_pending, notice_pending FROM inbound_events WHERE id = %(id)s;

-- name: take_journaled
UPDATE inbound_events AS event SET window_pending = false, notice_pending = false
FROM (SELECT id, window_pending, notice_pending FROM inbound_events WHERE id = %(id)s FOR UPDATE) AS old
WHERE event.id = old.id AND (old.window_pending OR old.notice_pending)
RETURNING old.window_pending, old.notice_pending;

-- name: restore_journaled
UPDATE inbound_events
SET window_pending = window_pending OR %(window)s, notice_pending = notice_pending OR %(notice)s
WHERE id = %(id)s;

-- name: defer_window
-- A receipt that came before the outbox recorded its message as sent: journaled again, the deferral counted, at most
-- `max_deferrals` times.
UPDATE inbound_events
SET window_pending = true, attempts = attempts + 1, last_error = %(error)s
WHERE id = %(id)s AND attempts < %(max_deferrals)s;

-- name: mark_unparseable
UPDATE inbound_events
SET status = 'failed', window_pending = false, notice_pending = false, last_error = %(error)s, finished_at = %(now)s
WHERE id = %(id)s;

-- name: claimable_conversations
-- The conversations nobody else holds under a live lease, the one waiting longest first (by its oldest pending
-- event): one row per conversation, so `limit` candidates are `limit` conversations however long one backlog is.
SELECT e.conversation_key FROM inbound_events e
WHERE e.status = 'pending'
  AND NOT EXISTS (
      SELECT 1 FROM ingest_claims c
      WHERE c.conversation_key = e.conversation_key AND c.owner <> %(owner)s AND c.lease_until > %(now)s)
GROUP BY e.conversation_key
ORDER BY min(e.id)
LIMIT %(limit)s;

-- name: take_claims
-- Taken only if unclaimed, the owner's own or run out, re-checked on the row the upsert meets (READ COMMITTED
-- re-reads a row another claimer just committed): two owners never both get one. In key order, so two claimers
-- lock their rows in the same order and never deadlock. Returns the keys the owner now holds.
INSERT INTO ingest_claims (conversation_key, owner, lease_until)
SELECT key, %(owner)s, %(until)s FROM unnest(%(keys)s::text[]) AS key ORDER BY key
ON CONFLICT (conversation_key) DO UPDATE SET owner = EXCLUDED.owner, lease_until = EXCLUDED.lease_until
WHERE ingest_claims.owner = EXCLUDED.owner OR ingest_claims.lease_until <= %(now)s
RETURNING conversation_key;

-- name: pending_of_conversations
-- A new statement after the claims are held: its snapshot sees every event another owner finished before. Round
-- robin (each conversation's first pending event, then each one's second, ...) up to the limit, in id order: every
-- held conversation gets its oldest event, and fewer than `limit` rows means all their pending events are there.
SELECT id, event_json, status, attempts, window_pending, notice_pending
FROM (
    SELECT id, event_json, status, attempts, window_pending, notice_pending,
           row_number() OVER (PARTITION BY conversation_key ORDER BY id) AS turn
    FROM inbound_events WHERE status = 'pending' AND conversation_key = ANY(%(keys)s)
    ORDER BY turn, id
    LIMIT %(limit)s
) AS taken
ORDER BY id;

-- name: renew_claims
UPDATE ingest_claims SET lease_until = %(until)s
WHERE owner = %(owner)s AND conversation_key = ANY(%(keys)s)
RETURNING conversation_key;

-- name: release_claim
DELETE FROM ingest_claims WHERE conversation_key = %(key)s AND owner = %(owner)s;

-- name: claims
SELECT conversation_key, owner, lease_until FROM ingest_claims;

-- name: prunable_events
SELECT id FROM inbound_events
WHERE status <> 'pending' AND NOT window_pending AND NOT notice_pending AND received_at < %(cutoff)s
ORDER BY id
LIMIT %(chunk)s;

-- name: keep_seen_keys
INSERT INTO inbound_seen (dedup_key, received_at)
SELECT dedup_key, received_at FROM inbound_events WHERE id = ANY(%(ids)s) AND received_at >= %(horizon)s
ON CONFLICT (dedup_key) DO NOTHING;

-- name: delete_events
DELETE FROM inbound_events WHERE id = ANY(%(ids)s);

-- name: expire_seen_keys
DELETE FROM inbound_seen WHERE received_at < %(horizon)s;

-- name: delete_old_sends
DELETE FROM send_log WHERE created_at < %(cutoff)s;

-- name: delete_stale_claims
DELETE FROM ingest_claims WHERE lease_until < %(before)s;

-- name: finish
UPDATE inbound_events
SET status = %(status)s, last_error = %(error)s, finished_at = %(now)s, attempts = attempts + %(counted)s
WHERE id = %(id)s;

-- name: note_attempt_failed
UPDATE inbound_events SET attempts = attempts + 1, last_error = %(error)s WHERE id = %(id)s
RETURNING attempts;

-- name: reverted_turns
SELECT reverted_turns FROM inbound_events WHERE id = %(id)s;

-- name: note_turn_reverted
UPDATE inbound_events
SET attempts = attempts + 1, reverted_turns = reverted_turns + 1, last_error = %(error)s
WHERE id = %(id)s
RETURNING attempts, reverted_turns;

-- name: log_send
INSERT INTO send_log (page_id, user_id, request_json, status, message_id, error_code, error_message, created_at)
VALUES (%(page_id)s, %(user_id)s, %(request_json)s, %(status)s, %(message_id)s, %(error_code)s, %(error_message)s,
        %(now)s);

-- name: counts_by_status
SELECT status, count(*) AS n FROM inbound_events GROUP BY status;

-- name: events_for
SELECT kind, status, event_json FROM inbound_events WHERE page_id = %(page_id)s AND user_id = %(user_id)s
ORDER BY id;

-- name: send_failures
SELECT page_id, user_id, error_code, error_message FROM send_log WHERE status = 'failed' ORDER BY id;

-- name: page_for_user
SELECT page_id FROM inbound_events WHERE user_id = %(user_id)s ORDER BY id DESC LIMIT 1;
