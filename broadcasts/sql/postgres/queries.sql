-- The broadcasts store's named queries (PostgreSQL, psycopg2). Parameters are %(named)s; times arrive as ISO 8601 UTC
-- text and are cast by the columns they meet. The same names as ../sqlite/queries.sql.

-- name: insert_broadcast
INSERT INTO broadcasts (page_id, name, content_json, audience_json, promotional, tag, status, created_by, created_at,
                        updated_at)
VALUES (%(page_id)s, %(name)s, %(content_json)s, %(audience_json)s, %(promotional)s, %(tag)s, 'draft', %(by)s, %(now)s, %(now)s)
RETURNING id;

-- name: get_broadcast
SELECT * FROM broadcasts WHERE id = %(id)s;

-- name: update_draft
-- Only a draft is edited (no row returned: it is not a draft, or it does not exist).
UPDATE broadcasts SET page_id = %(page_id)s, name = %(name)s, content_json = %(content_json)s, audience_json = %(audience_json)s,
                      promotional = %(promotional)s, tag = %(tag)s, updated_at = %(now)s
WHERE id = %(id)s AND status = 'draft'
RETURNING id;

-- name: delete_draft
DELETE FROM broadcasts WHERE id = %(id)s AND status = 'draft' RETURNING id;

-- name: list_broadcasts
-- Newest first; `before_id` is the last id of the previous page.
SELECT * FROM broadcasts
WHERE (%(page_id)s::text IS NULL OR page_id = %(page_id)s) AND (%(before_id)s::bigint IS NULL OR id < %(before_id)s)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: schedule
UPDATE broadcasts SET status = 'scheduled', send_at = %(send_at)s, updated_at = %(now)s
WHERE id = %(id)s AND status = 'draft'
RETURNING id;

-- name: start_due
-- Due scheduled broadcasts become SENDING (the send slots count from started_at).
UPDATE broadcasts SET status = 'sending', started_at = %(now)s, updated_at = %(now)s
WHERE status = 'scheduled' AND send_at <= %(now)s
RETURNING id;

-- name: ids_to_refresh
-- Sending, and finished or cancelled since `since` (receipts keep coming for a while).
SELECT id FROM broadcasts
WHERE status = 'sending' OR (status IN ('done', 'cancelled') AND finished_at >= %(since)s)
ORDER BY id;

-- name: cancel
UPDATE broadcasts SET status = 'cancelled', cancelled_by = %(by)s, finished_at = %(now)s, updated_at = %(now)s
WHERE id = %(id)s AND status IN ('scheduled', 'sending')
RETURNING id;

-- name: save_plan
-- The planning cursor after a batch, written only while the broadcast is still sending and the cursor is where this
-- runner read it (a stale runner never moves it back).
UPDATE broadcasts SET plan_after = %(plan_after)s, plan_done = %(plan_done)s, queued_count = %(queued_count)s,
                      updated_at = %(now)s
WHERE id = %(id)s AND status = 'sending' AND plan_after = %(expected_after)s
RETURNING id;

-- name: add_queued
UPDATE broadcasts SET queued_count = queued_count + %(added)s, updated_at = %(now)s WHERE id = %(id)s;

-- name: finish
-- Every recipient planned and none still in the outbox: done.
UPDATE broadcasts SET status = 'done', finished_at = %(now)s, updated_at = %(now)s
WHERE id = %(id)s AND status = 'sending' AND plan_done
  AND NOT EXISTS (SELECT 1 FROM recipients WHERE broadcast_id = %(id)s AND state = 'queued')
RETURNING id;

-- name: insert_recipient
-- A batch planned again after a crash keeps what was decided the first time.
INSERT INTO recipients (broadcast_id, psid, page_id, name, state, position, reason_code, attempt, updated_at,
                        refreshed_at)
VALUES (%(broadcast_id)s, %(psid)s, %(page_id)s, %(name)s, %(state)s, %(position)s, %(reason_code)s, 0, %(now)s, %(now)s)
ON CONFLICT (broadcast_id, psid) DO NOTHING;

-- name: recipients_of
SELECT * FROM recipients WHERE broadcast_id = %(broadcast_id)s AND psid IN (SELECT jsonb_array_elements_text(%(psids)s::jsonb));

-- name: set_outbox_ids
UPDATE recipients SET outbox_ids = %(outbox_ids)s, updated_at = %(now)s
WHERE broadcast_id = %(broadcast_id)s AND psid = %(psid)s AND attempt = %(attempt)s AND state = 'queued';

-- name: to_refresh
-- Recipients whose outcome or receipts may still change, read last before `before`, least recently read first.
SELECT * FROM recipients
WHERE broadcast_id = %(broadcast_id)s AND (state = 'queued' OR (state = 'sent' AND read_at IS NULL))
  AND refreshed_at <= %(before)s
ORDER BY refreshed_at, psid
LIMIT %(limit)s;

-- name: set_outcome
UPDATE recipients SET state = %(state)s, reason_code = %(reason_code)s, error_code = %(error_code)s, sent_at = %(sent_at)s,
                      delivered_at = %(delivered_at)s, read_at = %(read_at)s, sent_parts = %(sent_parts)s,
                      updated_at = %(now)s, refreshed_at = %(now)s
WHERE broadcast_id = %(broadcast_id)s AND psid = %(psid)s AND attempt = %(attempt)s;

-- name: requeue
-- Retried recipients (a JSON list of PSIDs): their next attempt (new idempotency keys), queued again with no outbox
-- ids yet (the runner enqueues them). The parts they already got stay in sent_parts and are not sent again.
UPDATE recipients SET state = 'queued', attempt = attempt + 1, reason_code = NULL, error_code = NULL,
                      outbox_ids = '[]', sent_at = NULL, updated_at = %(now)s, refreshed_at = %(now)s
WHERE broadcast_id = %(broadcast_id)s AND psid IN (SELECT jsonb_array_elements_text(%(psids)s::jsonb)) AND state IN ('failed', 'blocked');

-- name: hold_for_retry
-- A retry only on a sending or done broadcast; on PostgreSQL the row stays locked until the retry commits (a cancel
-- waits for it, then cancels what it queued).
UPDATE broadcasts SET updated_at = %(now)s WHERE id = %(id)s AND status IN ('sending', 'done')
RETURNING status;

-- name: count_recipients
SELECT state, reason_code, error_code, count(*) AS recipients, count(delivered_at) AS delivered,
       count(read_at) AS seen, sum(CASE WHEN sent_parts <> '{}' AND state <> 'sent' THEN 1 ELSE 0 END) AS partial
FROM recipients WHERE broadcast_id = %(broadcast_id)s
GROUP BY state, reason_code, error_code;

-- name: count_recipients_of
-- count_recipients for several broadcasts (a JSON list of ids) in one grouped read (the reports).
SELECT broadcast_id, state, reason_code, error_code, count(*) AS recipients, count(delivered_at) AS delivered,
       count(read_at) AS seen, sum(CASE WHEN sent_parts <> '{}' AND state <> 'sent' THEN 1 ELSE 0 END) AS partial
FROM recipients WHERE broadcast_id IN (SELECT jsonb_array_elements_text(%(ids)s::jsonb)::bigint)
GROUP BY broadcast_id, state, reason_code, error_code;

-- name: started_between
-- The broadcasts that started in [since, until), of one page or (page_id NULL) every page, in start order, on
-- broadcasts_by_start; limit + 1 rows tell the caller there were more.
SELECT * FROM broadcasts
WHERE started_at >= %(since)s AND started_at < %(until)s
  AND (%(page_id)s::text IS NULL OR page_id = %(page_id)s::text)
ORDER BY started_at, id
LIMIT %(limit)s;

-- name: recipients_in_state
-- Paged by PSID: rows of these states (a JSON list) after `after_psid`.
SELECT * FROM recipients
WHERE broadcast_id = %(broadcast_id)s AND state IN (SELECT jsonb_array_elements_text(%(states)s::jsonb)) AND psid > %(after_psid)s
ORDER BY psid
LIMIT %(limit)s;

-- name: reopen
-- A done broadcast whose failed recipients are retried is sending again until they are through.
UPDATE broadcasts SET status = 'sending', finished_at = NULL, updated_at = %(now)s WHERE id = %(id)s AND status = 'done';

-- name: touch_refreshed
-- Recipients read from the outbox with nothing new: to the back of the refresh queue.
UPDATE recipients SET refreshed_at = %(now)s
WHERE broadcast_id = %(broadcast_id)s AND psid IN (SELECT jsonb_array_elements_text(%(psids)s::jsonb));

-- name: take_lease
-- This runner works on the broadcast until `until`: it holds the lease already, or nobody does (or it ran out).
UPDATE broadcasts SET lease_owner = %(owner)s, lease_until = %(until)s
WHERE id = %(id)s AND (lease_owner = %(owner)s OR lease_until IS NULL OR lease_until < %(now)s)
RETURNING id;

-- name: to_enqueue
-- Queued recipients not in the outbox yet (planned, retried, or a runner died before saving their outbox ids).
SELECT * FROM recipients
WHERE broadcast_id = %(broadcast_id)s AND state = 'queued' AND outbox_ids = '[]'
ORDER BY position, psid
LIMIT %(limit)s;

-- name: has_queued
SELECT 1 AS queued FROM recipients WHERE broadcast_id = %(broadcast_id)s AND state = 'queued' LIMIT 1;

-- name: cancel_unenqueued
-- A cancelled broadcast's queued recipients that never reached the outbox.
UPDATE recipients SET state = 'cancelled', reason_code = 'broadcast_cancelled', updated_at = %(now)s,
                      refreshed_at = %(now)s
WHERE broadcast_id = %(broadcast_id)s AND state = 'queued' AND outbox_ids = '[]';

-- name: ensure_page_slot
INSERT INTO page_slots (page_id, next_at) VALUES (%(page_id)s, %(now)s) ON CONFLICT (page_id) DO NOTHING;

-- name: page_slot
SELECT next_at FROM page_slots WHERE page_id = %(page_id)s FOR UPDATE;

-- name: set_page_slot
UPDATE page_slots SET next_at = %(next_at)s WHERE page_id = %(page_id)s;
