-- Issue 14 (reports): counters kept at write time, in the transaction of the event they count, by UTC hour, so a
-- report over a year reads at most 8,760 rows per page and series. An hour is the timestamptz of its UTC start.

-- The person's messages (record_user_message), by the hour of Meta's time of the message: every message; a
-- conversation when the person had written nothing before on the page or wrote 24 hours or more after their latest
-- message; a new person when they had written nothing before on the page. Nothing to backfill: the outbox kept only
-- each person's latest message, so these counts start with this migration (report_counters_start says when).
CREATE TABLE message_hours (
    hour timestamptz NOT NULL,
    page_id text NOT NULL,
    messages integer NOT NULL DEFAULT 0,
    conversations integer NOT NULL DEFAULT 0,
    new_people integer NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, page_id)
);

-- When a counter began on an outbox that already held people's messages (an upgrade): the reports say «sin datos»
-- for the days before it rather than 0. No row on a new outbox: the counter has counted from the start.
CREATE TABLE report_counters_start (
    counter text PRIMARY KEY,
    started_at timestamptz NOT NULL
);

INSERT INTO report_counters_start (counter, started_at)
SELECT 'message_hours', now()
WHERE EXISTS (SELECT 1 FROM conversations WHERE last_user_message_at IS NOT NULL);

-- Each message's final outcome (sent, blocked, failed, dead, cancelled), by the hour it was reached (finished_at):
-- +1 when a message becomes final, -1 when it stops being final (a retry), so a message counts once, as what it
-- ended as. reason_code '' and error_code 0 stand for none (a key column cannot be NULL).
CREATE TABLE send_hours (
    hour timestamptz NOT NULL,
    page_id text NOT NULL,
    purpose text NOT NULL,
    status text NOT NULL,
    reason_code text NOT NULL DEFAULT '',
    error_code integer NOT NULL DEFAULT 0,
    n integer NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, page_id, purpose, status, reason_code, error_code)
);

-- When a message reached its final status; NULL while it is not final.
ALTER TABLE messages ADD COLUMN finished_at timestamptz;

-- The messages already final: their send time, else their creation time (the outbox kept no other).
UPDATE messages SET finished_at = COALESCE(sent_at, created_at)
WHERE status IN ('sent', 'blocked', 'failed', 'dead', 'cancelled');

-- The hour in UTC whatever the session's TimeZone (date_trunc on a timestamptz truncates in the session's zone).
INSERT INTO send_hours (hour, page_id, purpose, status, reason_code, error_code, n)
SELECT date_trunc('hour', finished_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', page_id, purpose, status,
       COALESCE(reason_code, ''), COALESCE(last_error_code, 0), COUNT(*)
FROM messages
WHERE finished_at IS NOT NULL
GROUP BY 1, 2, 3, 4, 5, 6;
