-- How many messages the person had written when an agent opened the conversation (the contact's message_count,
-- copied from the outbox): the inbox shows how many came since. NULL: a look saved before the counter existed, or
-- while the contacts store was away (the inbox then shows 1 when unread).
ALTER TABLE conversation_reads ADD COLUMN message_count integer;
