-- The outbox on SQLite. Times are UTC ISO-8601 text with microseconds
-- ('2024-05-01T12:00:00.000000+00:00'): fixed width, so text order is time order.
-- Booleans are 0/1. The file is the outbox's own (PRAGMA user_version is its schema version).

CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: ids order the queue and page `find`
    page_id TEXT NOT NULL,
    recipient_id TEXT NOT NULL,            -- a PSID, or a comment id for private replies
    message TEXT NOT NULL,                 -- the Send API `message` object, JSON
    sender TEXT NOT NULL,
    purpose TEXT NOT NULL,
    tag TEXT,
    promotional INTEGER NOT NULL DEFAULT 0,
    idempotency_key TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL
        CHECK (status IN ('pending', 'sending', 'sent', 'blocked', 'failed', 'dead', 'cancelled')),
    created_at TEXT NOT NULL,
    due_at TEXT NOT NULL,                  -- with id, the order of a recipient's queue
    next_attempt_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    sender_name TEXT,
    messaging_type TEXT,
    sent_tag TEXT,
    reason_code TEXT,
    reason TEXT,
    last_error_code INTEGER,
    graph_message_id TEXT,
    sent_at TEXT,
    claimed_by TEXT,
    lease_until TEXT
);

-- claim: due pending messages in (due_at, id) order.
CREATE INDEX messages_due ON messages (status, due_at, id);
-- claim: the head of a recipient's queue and whether it has a message in flight.
CREATE INDEX messages_recipient_queue ON messages (page_id, recipient_id, status, due_at, id);
-- At most one message of a recipient in flight, whatever a claim decides: the database refuses a second.
CREATE UNIQUE INDEX messages_one_sending_per_recipient ON messages (page_id, recipient_id)
    WHERE status = 'sending';
-- reclaim_expired
CREATE INDEX messages_lease ON messages (status, lease_until);
-- find: newest first, per recipient or per page.
CREATE INDEX messages_recipient_newest ON messages (recipient_id, id);
CREATE INDEX messages_page_newest ON messages (page_id, id);

-- The 24-hour window: when the user last wrote to the page (their own messages only).
CREATE TABLE conversations (
    page_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    last_user_message_at TEXT,
    PRIMARY KEY (page_id, user_id)
);

CREATE TABLE pages (
    page_id TEXT PRIMARY KEY,
    paused INTEGER NOT NULL DEFAULT 0,     -- 1: the token is invalid, nothing of this page is claimed
    paused_reason TEXT,
    paused_at TEXT,
    utility_templates INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    page_id TEXT NOT NULL,
    code TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- The only messages a claim may take (before the time test): the head of each recipient's queue,
-- i.e. the pending message with the lowest (due_at, id), while no message of that recipient is in
-- flight, on a page that is not paused. "No message in flight" matters even for a lower key: a
-- message enqueued or retried with an earlier due_at must wait for the one being sent.
CREATE VIEW claimable_heads AS
SELECT m.*
FROM messages AS m
WHERE m.status = 'pending'
  AND NOT EXISTS (
      SELECT 1 FROM pages AS p WHERE p.page_id = m.page_id AND p.paused = 1
  )
  AND NOT EXISTS (
      SELECT 1 FROM messages AS in_flight
      WHERE in_flight.page_id = m.page_id
        AND in_flight.recipient_id = m.recipient_id
        AND in_flight.status = 'sending'
  )
  AND NOT EXISTS (
      SELECT 1 FROM messages AS earlier
      WHERE earlier.page_id = m.page_id
        AND earlier.recipient_id = m.recipient_id
        AND earlier.status = 'pending'
        AND (earlier.due_at, earlier.id) < (m.due_at, m.id)
  );
