-- Issue 13 (broadcasts, contacts): Meta's delivery and read receipts on the messages we sent, and the person's last
-- message and how many they wrote per page (the inbox's search by text and its unread counts).
-- A read message was delivered: read_at set implies delivered_at set (record_receipt keeps it so).

ALTER TABLE messages ADD COLUMN delivered_at timestamptz;
ALTER TABLE messages ADD COLUMN read_at timestamptz;
-- record_receipt: a recipient's sent messages not read yet (a message not delivered is not read either).
CREATE INDEX messages_sent_unread ON messages (page_id, recipient_id, sent_at)
    WHERE status = 'sent' AND read_at IS NULL;

ALTER TABLE conversations ADD COLUMN last_user_text text;
ALTER TABLE conversations ADD COLUMN user_message_count integer NOT NULL DEFAULT 0;
