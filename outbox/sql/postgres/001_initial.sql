-- The outbox on PostgreSQL. Tables are created in the first schema of the search_path.

CREATE TABLE messages (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    page_id text NOT NULL,
    recipient_id text NOT NULL,            -- a PSID, or a comment id for private replies
    message jsonb NOT NULL,                -- the Send API `message` object
    sender text NOT NULL,
    purpose text NOT NULL,
    tag text,
    promotional boolean NOT NULL DEFAULT false,
    idempotency_key text NOT NULL UNIQUE,
    status text NOT NULL
        CHECK (status IN ('pending', 'sending', 'sent', 'blocked', 'failed', 'dead', 'cancelled')),
    created_at timestamptz NOT NULL,
    due_at timestamptz NOT NULL,           -- with id, the order of a recipient's queue
    next_attempt_at timestamptz NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL,
    sender_name text,
    messaging_type text,
    sent_tag text,
    reason_code text,
    reason text,
    last_error_code integer,
    graph_message_id text,
    sent_at timestamptz,
    claimed_by text,
    lease_until timestamptz
);

-- claim: due pending messages in (due_at, id) order.
CREATE INDEX messages_due ON messages (due_at, id) WHERE status = 'pending';
-- claim: the head of a recipient's queue.
CREATE INDEX messages_recipient_pending ON messages (page_id, recipient_id, due_at, id) WHERE status = 'pending';
-- At most one message of a recipient in flight, whatever a claim decides: the database refuses a second.
-- (Also the index for "does this recipient have a message in flight".)
CREATE UNIQUE INDEX messages_one_sending_per_recipient ON messages (page_id, recipient_id)
    WHERE status = 'sending';
-- reclaim_expired
CREATE INDEX messages_lease ON messages (lease_until) WHERE status = 'sending';
-- find: newest first, per recipient or per page.
CREATE INDEX messages_recipient_newest ON messages (recipient_id, id);
CREATE INDEX messages_page_newest ON messages (page_id, id);

-- The 24-hour window (last_user_message_at: the user's own messages only), and the per-recipient
-- lock of the claim: enqueue makes sure a row exists for every recipient (NULL: never wrote to us;
-- for private replies user_id is the comment id).
CREATE TABLE conversations (
    page_id text NOT NULL,
    user_id text NOT NULL,
    last_user_message_at timestamptz,
    PRIMARY KEY (page_id, user_id)
);

CREATE TABLE pages (
    page_id text PRIMARY KEY,
    paused boolean NOT NULL DEFAULT false,  -- the token is invalid: nothing of this page is claimed
    paused_reason text,
    paused_at timestamptz,
    utility_templates boolean NOT NULL DEFAULT false
);

CREATE TABLE alerts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    page_id text NOT NULL,
    code text NOT NULL,
    message text NOT NULL,
    created_at timestamptz NOT NULL
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
      SELECT 1 FROM pages AS p WHERE p.page_id = m.page_id AND p.paused
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
