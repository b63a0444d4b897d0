-- Replies to comments (issue 12): the Send API's `recipient_id` kept with the message (a private reply's answer
-- names the commenter's PSID, the only way to learn it), and one private reply per comment, whatever the
-- idempotency key: Meta allows one (a second is "(#10900) Activity already replied to").
-- A cancelled private reply never left, and a blocked one (the policy refused it) never reached Meta: neither
-- counts. Only an insert can break the index (no update moves a row back into it: cancelled and blocked are
-- final, retry revives only failed and dead rows, which it already holds). Before this migration every private
-- reply was blocked (the outbox knew no comment times), so existing rows cannot break it.

ALTER TABLE messages ADD COLUMN graph_recipient_id TEXT;

CREATE UNIQUE INDEX messages_one_private_reply_per_comment ON messages (page_id, recipient_id)
    WHERE purpose = 'private_reply' AND status NOT IN ('cancelled', 'blocked');
