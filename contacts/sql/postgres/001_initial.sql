-- Contacts on PostgreSQL: the same tables as the SQLite file (contacts/sql/sqlite/001_initial.sql), with timestamptz
-- times; created in the store's schema (search_path). contacts/store.py keeps each contact's tags_json, fields_json,
-- notes_count and search_text in step with contact_tags, contact_fields and contact_notes, in the same transaction.

CREATE TABLE contacts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- insertion order: the list's order and its cursor
    page_id text NOT NULL,
    psid text NOT NULL,
    first_name text,
    last_name text,
    profile_pic text,
    locale text,
    profile_status text NOT NULL DEFAULT 'pending',  -- pending | fetched | no_permission | unavailable
    profile_reason text,                        -- Spanish: why there is no profile
    profile_fetched_at timestamptz,
    profile_attempts integer NOT NULL DEFAULT 0,     -- failed fetches since the last success
    profile_next_at timestamptz,                -- when to ask Meta (again); NULL: nothing to ask
    first_seen_at timestamptz NOT NULL,
    last_user_message_at timestamptz,           -- the person's own last message (NULL: imported, never wrote)
    campaign text,                              -- the m.me ref or "ad:<id>" they first came by
    tags_json text NOT NULL DEFAULT '[]',
    fields_json text NOT NULL DEFAULT '{}',
    notes_count integer NOT NULL DEFAULT 0,
    search_text text NOT NULL DEFAULT '',       -- names, PSID, tags, field values: folded (no case, no accents)
    updated_at timestamptz NOT NULL,
    UNIQUE (page_id, psid)
);
CREATE INDEX contacts_by_page ON contacts (page_id, id);
CREATE INDEX contacts_profile_due ON contacts (profile_next_at) WHERE profile_next_at IS NOT NULL;
CREATE INDEX contacts_by_last_message ON contacts (last_user_message_at);
CREATE INDEX contacts_by_campaign ON contacts (campaign, id) WHERE campaign IS NOT NULL;

-- A contact's tags: `tag` as first written, `tag_key` its folded form (case and accents ignored), one per key.
CREATE TABLE contact_tags (
    page_id text NOT NULL,
    psid text NOT NULL,
    tag text NOT NULL,
    tag_key text NOT NULL,
    added_at timestamptz NOT NULL,
    PRIMARY KEY (page_id, psid, tag_key)
);
CREATE INDEX contact_tags_by_key ON contact_tags (tag_key, page_id);

-- A contact's free fields (`ciudad`, `pedido`): key [a-z0-9_]{1,40}, value up to 500 characters.
CREATE TABLE contact_fields (
    page_id text NOT NULL,
    psid text NOT NULL,
    key text NOT NULL,
    value text NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (page_id, psid, key)
);

-- Internal notes agents write about a contact (never sent to the person).
CREATE TABLE contact_notes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    page_id text NOT NULL,
    psid text NOT NULL,
    text text NOT NULL,
    author text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX contact_notes_by_contact ON contact_notes (page_id, psid, id);

-- Where the contacts' sync (contacts/sync.py) got to in the outbox's conversations (their last_user_message_at):
-- a restart goes on from there instead of reading every conversation again.
CREATE TABLE contacts_sync (
    name text PRIMARY KEY,
    cursor_at timestamptz NOT NULL
);
