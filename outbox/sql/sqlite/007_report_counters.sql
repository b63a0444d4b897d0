-- Issue 14 (reports): counters kept at write time, in the transaction of the event they count, by UTC hour, so a
-- report over a year reads at most 8,760 rows per page and series. An hour is the UTC ISO text of its start, as
-- every time in this file ('2024-05-01T12:00:00.000000+00:00').

-- The person's messages (record_user_message), by the hour of Meta's time of the message: every message; a
-- conversation when the person had written nothing before on the page or wrote 24 hours or more after their latest
-- message; a new person when they had written nothing before on the page. Nothing to backfill: the outbox kept only
-- each person's latest message, so these counts start with this migration (report_counters_start says when).
CREATE TABLE message_hours (
    hour TEXT NOT NULL,
    page_id TEXT NOT NULL,
    messages INTEGER NOT NULL DEFAULT 0,
    conversations INTEGER NOT NULL DEFAULT 0,
    new_people INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, page_id)
);

-- When a counter began on an outbox that already held people's messages (an upgrade): the reports say «sin datos»
-- for the days before it rather than 0. No row on a new outbox: the counter has counted from the start.
CREATE TABLE report_counters_start (
    counter TEXT PRIMARY KEY,
    started_at TEXT NOT NULL
);

INSERT INTO report_counters_start (counter, started_at)
SELECT 'message_hours', strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000+00:00'
WHERE EXISTS (SELECT 1 FROM conversations WHERE last_user_message_at IS NOT NULL);

-- Each message's final outcome (sent, blocked, failed, dead, cancelled), by the hour it was reached (finished_at):
-- +1 when a message becomes final, -1 when it stops being final (a retry), so a message counts once, as what it
-- ended as. reason_code '' and error_code 0 stand for none (a key column cannot be NULL).
CREATE TABLE send_hours (
    hour TEXT NOT NULL,
    page_id TEXT NOT NULL,
    purpose TEXT NOT NULL,
    status TEXT NOT NULL,
    reason_code TEXT NOT NULL DEFAULT '',
    error_code INTEGER NOT NULL DEFAULT 0,
    n INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, page_id, purpose, status, reason_code, error_code)
);

-- When a message reached its final status; NULL while it is not final.
ALTER TABLE messages ADD COLUMN finished_at TEXT;

-- The messages already final: their send time, else their creation time (the outbox kept no other).
UPDATE messages SET finished_at = COALESCE(sent_at, created_at)
WHERE status IN ('sent', 'blocked', 'failed', 'dead', 'cancelled');

INSERT INTO send_hours (hour, page_id, purpose, status, reason_code, error_code, n)
SELECT substr(finished_at, 1, 13) || ':00:00.000000+00:00', page_id, purpose, status, COALESCE(reason_code, ''),
       COALESCE(last_error_code, 0), COUNT(*)
FROM messages
WHERE finished_at IS NOT NULL
GROUP BY 1, 2, 3, 4, 5, 6;
