-- Every SQL statement the SQLite store runs, by name (outbox/store.py loads them).
-- Format: a line `-- name: <name>`, an optional comment saying why, the statement.
-- Parameters are :named. Times are ISO text (see 001_initial.sql). Writes run inside BEGIN IMMEDIATE.

-- name: insert_message
-- An existing idempotency key inserts nothing (rowcount 0); the caller reads the stored message.
INSERT INTO messages (
    page_id, recipient_id, message, sender, purpose, tag, promotional, idempotency_key, status,
    created_at, due_at, next_attempt_at, attempts, max_attempts, sender_name
) VALUES (
    :page_id, :recipient_id, :message, :sender, :purpose, :tag, :promotional, :idempotency_key, 'pending',
    :created_at, :due_at, :next_attempt_at, 0, :max_attempts, :sender_name
)
ON CONFLICT (idempotency_key) DO NOTHING;

-- name: get_message
SELECT * FROM messages WHERE id = :id;

-- name: get_message_by_key
SELECT * FROM messages WHERE idempotency_key = :idempotency_key;

-- name: find_messages
-- Newest first; a NULL filter matches everything. :statuses is a JSON array or NULL.
SELECT * FROM messages
WHERE (:page_id IS NULL OR page_id = :page_id)
  AND (:recipient_id IS NULL OR recipient_id = :recipient_id)
  AND (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
  AND (:before_id IS NULL OR id < :before_id)
ORDER BY id DESC
LIMIT :limit;

-- name: select_claimable
-- Inside BEGIN IMMEDIATE: this connection is the only writer until COMMIT, so what it reads is
-- what it updates. claimable_heads (001_initial.sql) keeps one message per recipient.
SELECT id FROM claimable_heads
WHERE due_at <= :now AND next_attempt_at <= :now
ORDER BY due_at, id
LIMIT :limit;

-- name: mark_sending
UPDATE messages
SET status = 'sending', claimed_by = :worker_id, lease_until = :lease_until
WHERE id = :id AND status = 'pending';

-- name: complete_message
-- Only the holder of the claim; next_attempt_at is kept unless the outcome gives one (retry later). finished_at: when
-- a final outcome was reached (NULL for a retry later); the caller then counts it (count_send).
UPDATE messages
SET status = :status,
    finished_at = :finished_at,
    attempts = attempts + 1,
    next_attempt_at = COALESCE(:next_attempt_at, next_attempt_at),
    messaging_type = :messaging_type,
    sent_tag = :sent_tag,
    reason_code = :reason_code,
    reason = :reason,
    last_error_code = :last_error_code,
    graph_message_id = :graph_message_id,
    graph_recipient_id = :graph_recipient_id,
    sent_at = :sent_at,
    claimed_by = NULL,
    lease_until = NULL
WHERE id = :id AND status = 'sending' AND claimed_by = :worker_id;

-- name: reclaim_expired
-- A crashed worker's messages go back to the head of their queues; not an attempt.
UPDATE messages
SET status = 'pending', claimed_by = NULL, lease_until = NULL
WHERE status = 'sending' AND lease_until < :now;

-- name: release_message
-- Given back unsent (no send slot for it soon): due again later; not an attempt, its queue place unchanged.
UPDATE messages
SET status = 'pending', claimed_by = NULL, lease_until = NULL, next_attempt_at = :not_before
WHERE id = :id AND status = 'sending' AND claimed_by = :worker_id;

-- name: cancel_message
UPDATE messages SET status = 'cancelled', finished_at = :now WHERE id = :id AND status = 'pending';

-- name: retry_message
-- Due now: the message joins the back of its recipient's queue (outbox/store.py says why). Not final any more: the
-- caller took its outcome out of send_hours first (count_send, delta -1).
UPDATE messages
SET status = 'pending', attempts = 0, due_at = :now, next_attempt_at = :now, finished_at = NULL
WHERE id = :id AND status IN ('dead', 'failed');

-- name: record_user_message
-- Webhooks arrive late and out of order: keep the latest time, and the text of that latest message. When it changes,
-- the store's own time of the write goes with it (user_message_recorded_at, the contacts' sync's cursor: Meta's time
-- can be far behind it). Every call counts one message, a late one too.
INSERT INTO conversations (page_id, user_id, last_user_message_at, user_message_recorded_at, last_user_text,
                           user_message_count)
VALUES (:page_id, :user_id, :at, :recorded_at, :text, 1)
ON CONFLICT (page_id, user_id) DO UPDATE
SET last_user_message_at = CASE
    WHEN conversations.last_user_message_at IS NULL
      OR excluded.last_user_message_at > conversations.last_user_message_at
    THEN excluded.last_user_message_at
    ELSE conversations.last_user_message_at
END,
user_message_recorded_at = CASE
    WHEN conversations.last_user_message_at IS NULL
      OR excluded.last_user_message_at > conversations.last_user_message_at
    THEN excluded.user_message_recorded_at
    ELSE conversations.user_message_recorded_at
END,
last_user_text = CASE
    WHEN conversations.last_user_message_at IS NULL
      OR excluded.last_user_message_at > conversations.last_user_message_at
    THEN COALESCE(excluded.last_user_text, conversations.last_user_text)
    ELSE conversations.last_user_text
END,
user_message_count = conversations.user_message_count + 1;

-- name: last_user_message_at
SELECT last_user_message_at FROM conversations WHERE page_id = :page_id AND user_id = :user_id;

-- name: conversations_since
-- The conversations whose user's message was recorded after a time, in recording order (the contacts' sync; ties
-- in a stable order).
SELECT page_id, user_id, last_user_message_at, user_message_recorded_at, last_user_text, user_message_count
FROM conversations
WHERE user_message_recorded_at > :after
ORDER BY user_message_recorded_at, page_id, user_id
LIMIT :limit;

-- name: conversations_recorded_between
-- The conversations whose user's message was recorded in [since, until), a page after the row (after_at,
-- after_page, after_user), in recording order (the survey after the bot resolved a conversation). The range is on
-- conversations_by_user_message_recorded.
SELECT page_id, user_id, last_user_message_at, user_message_recorded_at, last_user_text, user_message_count
FROM conversations
WHERE user_message_recorded_at >= :since AND user_message_recorded_at < :until
  AND (user_message_recorded_at, page_id, user_id) > (:after_at, :after_page, :after_user)
ORDER BY user_message_recorded_at, page_id, user_id
LIMIT :limit;

-- name: conversations_from_start
SELECT page_id, user_id, last_user_message_at, user_message_recorded_at, last_user_text, user_message_count
FROM conversations
WHERE user_message_recorded_at IS NOT NULL
ORDER BY user_message_recorded_at, page_id, user_id
LIMIT :limit;

-- name: get_page
SELECT * FROM pages WHERE page_id = :page_id;

-- name: pause_page
-- Changes a row (rowcount 1) only when the page was not paused yet: one alert per outage.
INSERT INTO pages (page_id, paused, paused_reason, paused_at)
VALUES (:page_id, 1, :reason, :now)
ON CONFLICT (page_id) DO UPDATE
SET paused = 1, paused_reason = excluded.paused_reason, paused_at = excluded.paused_at
WHERE pages.paused = 0;

-- name: resume_page
INSERT INTO pages (page_id, paused) VALUES (:page_id, 0)
ON CONFLICT (page_id) DO UPDATE SET paused = 0, paused_reason = NULL, paused_at = NULL;

-- name: set_utility_templates
INSERT INTO pages (page_id, utility_templates) VALUES (:page_id, :enabled)
ON CONFLICT (page_id) DO UPDATE SET utility_templates = excluded.utility_templates;

-- name: insert_alert
INSERT INTO alerts (page_id, code, message, created_at) VALUES (:page_id, :code, :message, :created_at);

-- name: list_alerts
SELECT * FROM alerts ORDER BY id DESC LIMIT :limit;

-- name: count_by_status
SELECT status, COUNT(*) AS count FROM messages GROUP BY status;

-- name: latest_send_slot
-- Inside BEGIN IMMEDIATE with record_send_slot: nobody reserves in between (outbox/rate.py decides).
SELECT latest_slot FROM page_send_slots WHERE page_id = :page_id;

-- name: record_send_slot
INSERT INTO page_send_slots (page_id, latest_slot) VALUES (:page_id, :latest_slot)
ON CONFLICT (page_id) DO UPDATE SET latest_slot = excluded.latest_slot;

-- name: get_messages
-- :ids is a JSON array (at most outbox.model.MAX_BATCH).
SELECT * FROM messages WHERE id IN (SELECT value FROM json_each(:ids));

-- name: delivery_receipt
-- Meta delivered what the page sent up to the watermark (:covers is it plus the clock slack; NULL: by mids only),
-- and the messages :mids (a JSON array). A read message was delivered already (read_at set implies delivered_at).
UPDATE messages SET delivered_at = :at
WHERE page_id = :page_id AND recipient_id = :recipient_id AND status = 'sent' AND read_at IS NULL
  AND delivered_at IS NULL
  AND (sent_at <= :covers OR graph_message_id IN (SELECT value FROM json_each(:mids)));

-- name: read_receipt
-- The person read what the page sent up to the watermark; a read message was delivered.
UPDATE messages SET read_at = :at, delivered_at = COALESCE(delivered_at, :at)
WHERE page_id = :page_id AND recipient_id = :recipient_id AND status = 'sent' AND read_at IS NULL
  AND sent_at <= :covers;

-- name: unreachable
-- Per recipient (:recipient_ids, a JSON array) the latest message that went to Meta, by the time of its last attempt;
-- those that failed with an error meaning "this person cannot be messaged" (:codes, a JSON array), unless the person
-- wrote since.
WITH latest AS (
    SELECT recipient_id, status, last_error_code, COALESCE(sent_at, next_attempt_at) AS attempted_at,
           ROW_NUMBER() OVER (
               PARTITION BY recipient_id ORDER BY COALESCE(sent_at, next_attempt_at) DESC, id DESC
           ) AS newest
    FROM messages
    WHERE page_id = :page_id
      AND recipient_id IN (SELECT value FROM json_each(:recipient_ids))
      AND status IN ('sent', 'failed', 'dead')
)
SELECT latest.recipient_id FROM latest
LEFT JOIN conversations AS c ON c.page_id = :page_id AND c.user_id = latest.recipient_id
WHERE latest.newest = 1
  AND latest.status = 'failed'
  AND latest.last_error_code IN (SELECT value FROM json_each(:codes))
  AND (c.last_user_message_at IS NULL OR c.last_user_message_at <= latest.attempted_at);

-- name: last_user_messages
-- last_user_message_at of several users of one page (:user_ids, a JSON array); users who never wrote are absent.
SELECT user_id, last_user_message_at FROM conversations
WHERE page_id = :page_id AND user_id IN (SELECT value FROM json_each(:user_ids)) AND last_user_message_at IS NOT NULL;

-- name: count_cancelled_by_key_prefix
-- Before cancel_pending_by_key_prefix, in the same BEGIN IMMEDIATE (nobody writes in between, so these are the
-- messages it cancels): their outcome, cancelled at :now, counted in send_hours.
INSERT INTO send_hours (hour, page_id, purpose, status, reason_code, error_code, n)
SELECT substr(:now, 1, 13) || ':00:00.000000+00:00', page_id, purpose, 'cancelled', COALESCE(reason_code, ''),
       COALESCE(last_error_code, 0), COUNT(*)
FROM messages
WHERE idempotency_key >= :prefix AND idempotency_key < :upper
  AND substr(idempotency_key, 1, length(:prefix)) = :prefix AND status = 'pending'
GROUP BY page_id, purpose, COALESCE(reason_code, ''), COALESCE(last_error_code, 0)
ON CONFLICT (hour, page_id, purpose, status, reason_code, error_code) DO UPDATE SET n = send_hours.n + excluded.n;

-- name: cancel_pending_by_key_prefix
-- Every pending message whose key starts with :prefix → cancelled (a broadcast's cancel). The range [:prefix,
-- :upper) walks the keys' unique index; the substr test is the exact prefix. count_cancelled_by_key_prefix counted
-- them just before.
UPDATE messages SET status = 'cancelled', finished_at = :now
WHERE idempotency_key >= :prefix AND idempotency_key < :upper
  AND substr(idempotency_key, 1, length(:prefix)) = :prefix AND status = 'pending';

-- name: count_send
-- A message's outcome in send_hours (007_report_counters.sql): :delta 1 right after it became final, -1 right before
-- it stops being final (a retry), in the same transaction. Nothing when it is not final (finished_at NULL). The key
-- comes from the row itself, so the -1 takes back exactly what the +1 added.
INSERT INTO send_hours (hour, page_id, purpose, status, reason_code, error_code, n)
SELECT substr(finished_at, 1, 13) || ':00:00.000000+00:00', page_id, purpose, status, COALESCE(reason_code, ''),
       COALESCE(last_error_code, 0), :delta
FROM messages
WHERE id = :id AND finished_at IS NOT NULL
ON CONFLICT (hour, page_id, purpose, status, reason_code, error_code) DO UPDATE SET n = send_hours.n + excluded.n;

-- name: count_user_message
-- With record_user_message, in the same transaction: the hour of the person's message (Meta's time). The store
-- decides :conversations and :new_people (0 or 1) from the person's latest message before this one.
INSERT INTO message_hours (hour, page_id, messages, conversations, new_people)
VALUES (:hour, :page_id, 1, :conversations, :new_people)
ON CONFLICT (hour, page_id) DO UPDATE
SET messages = message_hours.messages + 1,
    conversations = message_hours.conversations + excluded.conversations,
    new_people = message_hours.new_people + excluded.new_people;

-- name: message_hours
-- The hours starting in [:since, :until), of one page or (:page_id NULL) of every page, one row per hour and page.
SELECT hour, page_id, messages, conversations, new_people FROM message_hours
WHERE hour >= :since AND hour < :until AND (:page_id IS NULL OR page_id = :page_id)
ORDER BY hour, page_id;

-- name: message_days
-- The reports over a long period: message_hours summed per UTC date and whether the hour is at or after :cut (the
-- hour that starts the next local day for one UTC offset, or the same one); the store names the local day
-- (outbox.model.local_day): ~730 rows a year for one page, not 8,760.
SELECT substr(hour, 1, 10) AS utc_day, CAST(substr(hour, 12, 2) AS INTEGER) >= :cut AS late,
       sum(messages) AS messages, sum(conversations) AS conversations, sum(new_people) AS new_people
FROM message_hours
WHERE hour >= :since AND hour < :until AND (:page_id IS NULL OR page_id = :page_id)
GROUP BY utc_day, late;

-- name: message_hours_since
-- When message_hours began counting on an outbox that already held people's messages (no row: from the start).
SELECT started_at FROM report_counters_start WHERE counter = 'message_hours';

-- name: send_hours
-- As message_hours; a key whose messages were all retried since (n back to 0) is left out.
SELECT hour, page_id, purpose, status, reason_code, error_code, n FROM send_hours
WHERE hour >= :since AND hour < :until AND (:page_id IS NULL OR page_id = :page_id) AND n <> 0
ORDER BY hour, page_id, purpose, status, reason_code, error_code;
