-- The latest look at each conversation, on its contact row: when an agent last opened it (read_at) and how many
-- messages the person had written by then (read_message_count; NULL: unknown). The inbox's unread conversations are
-- then one COUNT over the contacts matching its filters (read_at NULL, or the person wrote after it), never a walk
-- over every read mark. Written by `ContactsStore.mark_read` when an agent opens a conversation; the console's own
-- marks (console store, conversation_reads) are copied here once (`copy_read_marks`, name 'console_reads' in
-- contacts_sync). The index covers the inbox's count without the filters: every contact who wrote, and its look.

ALTER TABLE contacts ADD COLUMN read_at timestamptz;
ALTER TABLE contacts ADD COLUMN read_message_count integer;
CREATE INDEX contacts_by_last_message_read ON contacts (last_user_message_at, read_at)
    WHERE last_user_message_at IS NOT NULL;
