-- Conversations started from a comment: the private reply reached the person (psid, reply_sent_at) and the person
-- then wrote to the page themselves (answered_at, from the outbox's record of the person's own messages; the
-- processor's reconcile looks for 7 days after the reply).
ALTER TABLE feed_changes ADD COLUMN reply_sent_at timestamptz;  -- when the private reply was sent (outbox sent_at)
ALTER TABLE feed_changes ADD COLUMN answered_at timestamptz;    -- the person's own message seen after the reply
CREATE INDEX feed_changes_awaiting_answer ON feed_changes (id)
    WHERE status = 'replied' AND psid IS NOT NULL AND answered_at IS NULL;
