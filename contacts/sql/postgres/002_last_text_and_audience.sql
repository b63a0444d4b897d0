-- Issue 13: the person's last message (its text, for the inbox and the search) and how many messages they wrote
-- (copied from the outbox by contacts/sync.py: the console counts unread messages with it); and each field's folded
-- value (no case, no accents: contacts.model.fold), which a broadcast's audience compares. The store fills
-- value_key on every write and, once on open, for the rows written before this migration (value_key NULL).

ALTER TABLE contacts ADD COLUMN last_text text;
ALTER TABLE contacts ADD COLUMN message_count integer NOT NULL DEFAULT 0;
ALTER TABLE contact_fields ADD COLUMN value_key text;
CREATE INDEX contact_fields_unfolded ON contact_fields (page_id, psid) WHERE value_key IS NULL;
