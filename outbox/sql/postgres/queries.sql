-- Every SQL statement the PostgreSQL store runs, by name (outbox/store.py loads them).
-- Format: a line `-- name: <name>`, an optional comment saying why, the statement.
-- Parameters are %(named)s (psycopg2). The session runs READ COMMITTED: each statement sees what
-- was committed before it started (the claim depends on that, see lock_claimable_recipients).

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS outbox_migrations (
    version integer PRIMARY KEY,
    name text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- name: lock_migrations
-- One migrator at a time (an app and a Rasa process starting together); released at COMMIT.
SELECT pg_advisory_xact_lock(hashtext('outbox_migrations'));

-- name: schema_version
SELECT COALESCE(MAX(version), 0) AS version FROM outbox_migrations;

-- name: record_migration
INSERT INTO outbox_migrations (version, name) VALUES (%(version)s, %(name)s);

-- name: open_lane
-- The recipient's row in conversations is the lock a claim takes for it (lock_claimable_recipients);
-- messages reference it. DO NOTHING does not wait for a claim holding that lock.
INSERT INTO conversations (page_id, user_id) VALUES (%(page_id)s, %(recipient_id)s)
ON CONFLICT (page_id, user_id) DO NOTHING;

-- name: insert_message
-- An existing idempotency key inserts nothing (no row returned); the caller reads the stored message.
INSERT INTO messages (
    page_id, recipient_id, message, sender, purpose, tag, promotional, idempotency_key, status,
    created_at, due_at, next_attempt_at, attempts, max_attempts, sender_name
) VALUES (
    %(page_id)s, %(recipient_id)s, %(message)s::jsonb, %(sender)s, %(purpose)s, %(tag)s, %(promotional)s,
    %(idempotency_key)s, 'pending', %(created_at)s, %(due_at)s, %(next_attempt_at)s, 0, %(max_attempts)s,
    %(sender_name)s
)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING *;

-- name: get_message
SELECT * FROM messages WHERE id = %(id)s;

-- name: get_message_by_key
SELECT * FROM messages WHERE idempotency_key = %(idempotency_key)s;

-- name: find_messages
-- Newest first; a NULL filter matches everything.
SELECT * FROM messages
WHERE (%(page_id)s::text IS NULL OR page_id = %(page_id)s::text)
  AND (%(recipient_id)s::text IS NULL OR recipient_id = %(recipient_id)s::text)
  AND (%(statuses)s::text[] IS NULL OR status = ANY (%(statuses)s::text[]))
  AND (%(before_id)s::bigint IS NULL OR id < %(before_id)s::bigint)
ORDER BY id DESC
LIMIT %(limit)s;

-- name: lock_claimable_recipients
-- Claim, step 1 of 2 (one transaction): lock the conversations rows of the recipients whose head
-- is due, oldest head first, skipping recipients another claim (or a webhook) holds right now.
-- The lock serializes claims per recipient; it is taken in its own statement so that step 2
-- starts after it and sees every claim of these recipients committed before. NO KEY UPDATE: the
-- strongest lock that leaves enqueue's foreign-key check (KEY SHARE) alone, so neither waits.
SELECT c.page_id, c.user_id AS recipient_id
FROM claimable_heads AS head
JOIN conversations AS c ON c.page_id = head.page_id AND c.user_id = head.recipient_id
WHERE head.due_at <= %(now)s AND head.next_attempt_at <= %(now)s
ORDER BY head.due_at, head.id
LIMIT %(limit)s
FOR NO KEY UPDATE OF c SKIP LOCKED;

-- name: claim_heads
-- Claim, step 2 of 2: with a fresh snapshot, take the head of each locked recipient if it is
-- still claimable (a message taken in the meantime is in flight and shows here). SKIP LOCKED:
-- a head being cancelled right now is left alone; `status = 'pending'` re-checks the row itself.
-- MATERIALIZED: the heads are found and locked once. As `WHERE id IN (SELECT … FOR UPDATE)` the planner,
-- with the row estimates of a table analyzed while nearly empty, re-ran the locking subquery for every
-- pending row: a claim took 3 s with 300 messages queued (tests/integration/faults), 10 ms this way.
WITH heads AS MATERIALIZED (
    SELECT head.id
    FROM unnest(%(page_ids)s::text[], %(recipient_ids)s::text[]) AS lane (page_id, recipient_id)
    JOIN claimable_heads AS head ON head.page_id = lane.page_id AND head.recipient_id = lane.recipient_id
    WHERE head.due_at <= %(now)s AND head.next_attempt_at <= %(now)s
    FOR UPDATE OF head SKIP LOCKED
)
UPDATE messages AS m
SET status = 'sending', claimed_by = %(worker_id)s, lease_until = %(lease_until)s
FROM heads
WHERE m.id = heads.id AND m.status = 'pending'
RETURNING m.*;

-- name: complete_message
-- Only the holder of the claim; next_attempt_at is kept unless the outcome gives one (retry later). finished_at: when
-- a final outcome was reached (NULL for a retry later); the caller then counts it (count_send).
UPDATE messages
SET status = %(status)s,
    finished_at = %(finished_at)s::timestamptz,
    attempts = attempts + 1,
    next_attempt_at = COALESCE(%(next_attempt_at)s::timestamptz, next_attempt_at),
    messaging_type = %(messaging_type)s,
    sent_tag = %(sent_tag)s,
    reason_code = %(reason_code)s,
    reason = %(reason)s,
    last_error_code = %(last_error_code)s,
    graph_message_id = %(graph_message_id)s,
    graph_recipient_id = %(graph_recipient_id)s,
    sent_at = %(sent_at)s::timestamptz,
    claimed_by = NULL,
    lease_until = NULL
WHERE id = %(id)s AND status = 'sending' AND claimed_by = %(worker_id)s
RETURNING *;

-- name: reclaim_expired
-- A crashed worker's messages go back to the head of their queues; not an attempt.
UPDATE messages
SET status = 'pending', claimed_by = NULL, lease_until = NULL
WHERE status = 'sending' AND lease_until < %(now)s;

-- name: release_message
-- Given back unsent (no send slot for it soon): due again later; not an attempt, its queue place unchanged.
UPDATE messages
SET status = 'pending', claimed_by = NULL, lease_until = NULL, next_attempt_at = %(not_before)s
WHERE id = %(id)s AND status = 'sending' AND claimed_by = %(worker_id)s
RETURNING *;

-- name: cancel_message
UPDATE messages SET status = 'cancelled', finished_at = %(now)s WHERE id = %(id)s AND status = 'pending'
RETURNING *;

-- name: lock_message
-- Before a state change that may take a message out of a final status: its outcome is counted out (count_send, -1)
-- from the row as it is, and nobody changes the row in between.
SELECT id FROM messages WHERE id = %(id)s FOR NO KEY UPDATE;

-- name: retry_message
-- Due now: the message joins the back of its recipient's queue (outbox/store.py says why). Not final any more: the
-- caller took its outcome out of send_hours first (count_send, delta -1).
UPDATE messages
SET status = 'pending', attempts = 0, due_at = %(now)s, next_attempt_at = %(now)s, finished_at = NULL
WHERE id = %(id)s AND status IN ('dead', 'failed')
RETURNING *;

-- name: record_user_message
-- Webhooks arrive late and out of order: keep the latest time (GREATEST ignores NULL), and the text of that latest
-- message. When it changes, the database's own time of the write goes with it (user_message_recorded_at, the
-- contacts' sync's cursor: Meta's time can be far behind it; one clock for every process writing here). Every call
-- counts one message, a late one too.
INSERT INTO conversations (page_id, user_id, last_user_message_at, user_message_recorded_at, last_user_text,
                           user_message_count)
VALUES (%(page_id)s, %(user_id)s, %(at)s, clock_timestamp(), %(text)s, 1)
ON CONFLICT (page_id, user_id) DO UPDATE
SET last_user_message_at = GREATEST(conversations.last_user_message_at, excluded.last_user_message_at),
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

-- name: lock_conversation
-- record_user_message, after open_lane: the person's latest message before this one, their row locked until COMMIT,
-- so two messages of one person recorded at once are counted one after the other (count_user_message).
SELECT last_user_message_at FROM conversations
WHERE page_id = %(page_id)s AND user_id = %(user_id)s
FOR NO KEY UPDATE;

-- name: last_user_message_at
SELECT last_user_message_at FROM conversations WHERE page_id = %(page_id)s AND user_id = %(user_id)s;

-- name: conversations_since
-- The conversations whose user's message was recorded after a time, in recording order (the contacts' sync; ties
-- in a stable order).
SELECT page_id, user_id, last_user_message_at, user_message_recorded_at, last_user_text, user_message_count
FROM conversations
WHERE user_message_recorded_at > %(after)s
ORDER BY user_message_recorded_at, page_id, user_id
LIMIT %(limit)s;

-- name: conversations_recorded_between
-- The conversations whose user's message was recorded in [since, until), a page after the row (after_at,
-- after_page, after_user), in recording order (the survey after the bot resolved a conversation). The range is on
-- conversations_by_user_message_recorded.
SELECT page_id, user_id, last_user_message_at, user_message_recorded_at, last_user_text, user_message_count
FROM conversations
WHERE user_message_recorded_at >= %(since)s AND user_message_recorded_at < %(until)s
  AND (user_message_recorded_at, page_id, user_id) > (%(after_at)s, %(after_page)s, %(after_user)s)
ORDER BY user_message_recorded_at, page_id, user_id
LIMIT %(limit)s;

-- name: conversations_from_start
SELECT page_id, user_id, last_user_message_at, user_message_recorded_at, last_user_text, user_message_count
FROM conversations
WHERE user_message_recorded_at IS NOT NULL
ORDER BY user_message_recorded_at, page_id, user_id
LIMIT %(limit)s;

-- name: get_page
SELECT * FROM pages WHERE page_id = %(page_id)s;

-- name: pause_page
-- Changes a row (rowcount 1) only when the page was not paused yet: one alert per outage.
INSERT INTO pages (page_id, paused, paused_reason, paused_at)
VALUES (%(page_id)s, true, %(reason)s, %(now)s)
ON CONFLICT (page_id) DO UPDATE
SET paused = true, paused_reason = excluded.paused_reason, paused_at = excluded.paused_at
WHERE NOT pages.paused;

-- name: resume_page
INSERT INTO pages (page_id, paused) VALUES (%(page_id)s, false)
ON CONFLICT (page_id) DO UPDATE SET paused = false, paused_reason = NULL, paused_at = NULL;

-- name: set_utility_templates
INSERT INTO pages (page_id, utility_templates) VALUES (%(page_id)s, %(enabled)s)
ON CONFLICT (page_id) DO UPDATE SET utility_templates = excluded.utility_templates;

-- name: insert_alert
INSERT INTO alerts (page_id, code, message, created_at)
VALUES (%(page_id)s, %(code)s, %(message)s, %(created_at)s);

-- name: list_alerts
SELECT * FROM alerts ORDER BY id DESC LIMIT %(limit)s;

-- name: count_by_status
SELECT status, COUNT(*) AS count FROM messages GROUP BY status;

-- name: send_slot_commit_without_waiting
-- A reservation does not wait for its commit to reach the disk (this transaction only): it is on every send's
-- path. The cost, after a crash of the database server: the reservations of its last moments (up to three
-- wal_writer_delay, 0.6 s by default) are lost, though the workers already hold those slots, which can reach up to
-- half a lease ahead. Until those slots have passed, new reservations can be granted the same times, so the page
-- can get up to twice its rate for a while (Meta answers rate limited, and those sends are retried). Nothing is
-- sent twice or lost: the messages' own writes still wait for the disk.
SET LOCAL synchronous_commit TO OFF;

-- name: lock_send_slot
-- The page's row, created if missing, locked until COMMIT (the upsert takes the row lock even when it
-- changes nothing), with the latest slot granted (NULL: none). A second reservation of the page waits
-- here and then reads what the first recorded; other pages are not held up.
INSERT INTO page_send_slots (page_id) VALUES (%(page_id)s)
ON CONFLICT (page_id) DO UPDATE SET page_id = excluded.page_id
RETURNING latest_slot;

-- name: record_send_slot
UPDATE page_send_slots SET latest_slot = %(latest_slot)s WHERE page_id = %(page_id)s;

-- name: get_messages
SELECT * FROM messages WHERE id = ANY (%(ids)s::bigint[]);

-- name: delivery_receipt
-- Meta delivered what the page sent up to the watermark (covers is it plus the clock slack; NULL: by mids only),
-- and the messages `mids`. A read message was delivered already (read_at set implies delivered_at).
UPDATE messages SET delivered_at = %(at)s
WHERE page_id = %(page_id)s AND recipient_id = %(recipient_id)s AND status = 'sent' AND read_at IS NULL
  AND delivered_at IS NULL
  AND (sent_at <= %(covers)s::timestamptz OR graph_message_id = ANY (%(mids)s::text[]));

-- name: read_receipt
-- The person read what the page sent up to the watermark; a read message was delivered.
UPDATE messages SET read_at = %(at)s, delivered_at = COALESCE(delivered_at, %(at)s)
WHERE page_id = %(page_id)s AND recipient_id = %(recipient_id)s AND status = 'sent' AND read_at IS NULL
  AND sent_at <= %(covers)s::timestamptz;

-- name: unreachable
-- Per recipient the latest message that went to Meta, by the time of its last attempt; those that failed with an
-- error meaning "this person cannot be messaged" (`codes`), unless the person wrote since.
WITH latest AS (
    SELECT DISTINCT ON (recipient_id)
           recipient_id, status, last_error_code, COALESCE(sent_at, next_attempt_at) AS attempted_at
    FROM messages
    WHERE page_id = %(page_id)s
      AND recipient_id = ANY (%(recipient_ids)s::text[])
      AND status IN ('sent', 'failed', 'dead')
    ORDER BY recipient_id, COALESCE(sent_at, next_attempt_at) DESC, id DESC
)
SELECT latest.recipient_id FROM latest
LEFT JOIN conversations AS c ON c.page_id = %(page_id)s AND c.user_id = latest.recipient_id
WHERE latest.status = 'failed'
  AND latest.last_error_code = ANY (%(codes)s::integer[])
  AND (c.last_user_message_at IS NULL OR c.last_user_message_at <= latest.attempted_at);

-- name: last_user_messages
-- last_user_message_at of several users of one page; users who never wrote are absent.
SELECT user_id, last_user_message_at FROM conversations
WHERE page_id = %(page_id)s AND user_id = ANY (%(user_ids)s::text[]) AND last_user_message_at IS NOT NULL;

-- name: cancel_pending_by_key_prefix
-- Every pending message whose key starts with `prefix` → cancelled (a broadcast's cancel), through the partial
-- index messages_pending_by_key (008); the left() test is the exact prefix whatever the pattern. The messages it
-- cancelled are counted in send_hours by the same statement (in key order: two cancels never wait on each other's
-- counters crosswise); the one row says how many.
WITH cancelled AS (
    UPDATE messages SET status = 'cancelled', finished_at = %(now)s
    WHERE status = 'pending' AND idempotency_key LIKE %(pattern)s ESCAPE '\'
      AND left(idempotency_key, length(%(prefix)s)) = %(prefix)s
    RETURNING page_id, purpose, reason_code, last_error_code
), counted AS (
    INSERT INTO send_hours (hour, page_id, purpose, status, reason_code, error_code, n)
    SELECT date_trunc('hour', %(now)s::timestamptz AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', page_id, purpose,
           'cancelled', COALESCE(reason_code, ''), COALESCE(last_error_code, 0), COUNT(*)
    FROM cancelled
    GROUP BY page_id, purpose, COALESCE(reason_code, ''), COALESCE(last_error_code, 0)
    ORDER BY page_id, purpose, COALESCE(reason_code, ''), COALESCE(last_error_code, 0)
    ON CONFLICT (hour, page_id, purpose, status, reason_code, error_code) DO UPDATE SET n = send_hours.n + excluded.n
)
SELECT COUNT(*) AS cancelled FROM cancelled;

-- name: count_send
-- A message's outcome in send_hours (009_report_counters.sql): delta 1 right after it became final, -1 right before
-- it stops being final (a retry, after lock_message), in the same transaction. Nothing when it is not final
-- (finished_at NULL). The key comes from the row itself, so the -1 takes back exactly what the +1 added. The hour is
-- truncated in UTC whatever the session's TimeZone.
INSERT INTO send_hours (hour, page_id, purpose, status, reason_code, error_code, n)
SELECT date_trunc('hour', finished_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', page_id, purpose, status,
       COALESCE(reason_code, ''), COALESCE(last_error_code, 0), %(delta)s
FROM messages
WHERE id = %(id)s AND finished_at IS NOT NULL
ON CONFLICT (hour, page_id, purpose, status, reason_code, error_code) DO UPDATE SET n = send_hours.n + excluded.n;

-- name: count_user_message
-- With record_user_message, in the same transaction (after lock_conversation): the hour of the person's message
-- (Meta's time). The store decides conversations and new_people (0 or 1) from the person's latest message before.
INSERT INTO message_hours (hour, page_id, messages, conversations, new_people)
VALUES (%(hour)s, %(page_id)s, 1, %(conversations)s, %(new_people)s)
ON CONFLICT (hour, page_id) DO UPDATE
SET messages = message_hours.messages + 1,
    conversations = message_hours.conversations + excluded.conversations,
    new_people = message_hours.new_people + excluded.new_people;

-- name: message_hours
-- The hours starting in [since, until), of one page or (page_id NULL) of every page, one row per hour and page.
SELECT hour, page_id, messages, conversations, new_people FROM message_hours
WHERE hour >= %(since)s AND hour < %(until)s AND (%(page_id)s::text IS NULL OR page_id = %(page_id)s::text)
ORDER BY hour, page_id;

-- name: message_days
-- As SQLite's: message_hours summed per UTC date and whether the hour is at or after %(cut)s.
SELECT (hour AT TIME ZONE 'UTC')::date AS utc_day, extract(hour FROM hour AT TIME ZONE 'UTC') >= %(cut)s::int AS late,
       sum(messages) AS messages, sum(conversations) AS conversations, sum(new_people) AS new_people
FROM message_hours
WHERE hour >= %(since)s AND hour < %(until)s AND (%(page_id)s::text IS NULL OR page_id = %(page_id)s::text)
GROUP BY 1, 2;

-- name: message_hours_since
-- When message_hours began counting on an outbox that already held people's messages (no row: from the start).
SELECT started_at FROM report_counters_start WHERE counter = 'message_hours';

-- name: send_hours
-- As message_hours; a key whose messages were all retried since (n back to 0) is left out.
SELECT hour, page_id, purpose, status, reason_code, error_code, n FROM send_hours
WHERE hour >= %(since)s AND hour < %(until)s AND (%(page_id)s::text IS NULL OR page_id = %(page_id)s::text)
  AND n <> 0
ORDER BY hour, page_id, purpose, status, reason_code, error_code;
