-- Issue 13 (contacts, review): the contacts' sync followed Meta's time of the user's last message, so a message
-- handled late (an outage, a redelivery, a backlog, the journal replayed) fell behind its cursor and the person never
-- became a contact. It now follows when the database recorded that time. Rows recorded before: Meta's time stands in.

ALTER TABLE conversations ADD COLUMN user_message_recorded_at timestamptz;
UPDATE conversations SET user_message_recorded_at = last_user_message_at WHERE last_user_message_at IS NOT NULL;
DROP INDEX conversations_by_last_user_message;
CREATE INDEX conversations_by_user_message_recorded ON conversations (user_message_recorded_at)
    WHERE user_message_recorded_at IS NOT NULL;
