-- Issue 13 (contacts): the contacts' sync reads the conversations whose user wrote since its cursor, in time order
-- (Outbox.conversations_since); this index answers it without a scan.

CREATE INDEX conversations_by_last_user_message ON conversations (last_user_message_at)
    WHERE last_user_message_at IS NOT NULL;
