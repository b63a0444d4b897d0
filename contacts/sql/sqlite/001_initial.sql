-- Contacts: one row per person (PSID) and page, in their SQLite file (<data_dir>/contacts.sqlite3). Times are UTC
-- ISO-8601 text with microseconds, fixed width, so text order is time order. PRAGMA user_version is the schema
-- version. contacts/store.py keeps each contact's tags_json, fields_json, notes_count and search_text in step with
-- contact_tags, contact_fields and contact_notes, in the same transaction (one row read per contact in a list).

CREATE TABLE contacts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,       -- insertion order: the list's order and its cursor
    page_id TEXT NOT NULL,
    psid TEXT NOT NULL,
    first_name TEXT,
    last_name TEXT,
    profile_pic TEXT,
    locale TEXT,
    profile_status TEXT NOT NULL DEFAULT 'pending',  -- pending | fetched | no_permission | unavailable
    profile_reason TEXT,                        -- Spanish: why there is no profile
    profile_fetched_at TEXT,
    profile_attempts INTEGER NOT NULL DEFAULT 0,     -- failed fetches since the last success
    profile_next_at TEXT,                       -- when to ask Meta (again); NULL: nothing to ask
    first_seen_at TEXT NOT NULL,
    last_user_message_at TEXT,                  -- the person's own last message (NULL: imported, never wrote)
    campaign TEXT,                              -- the m.me ref or "ad:<id>" they first came by
    tags_json TEXT NOT NULL DEFAULT '[]',
    fields_json TEXT NOT NULL DEFAULT '{}',
    notes_count INTEGER NOT NULL DEFAULT 0,
    search_text TEXT NOT NULL DEFAULT '',       -- names, PSID, tags, field values: folded (no case, no accents)
    updated_at TEXT NOT NULL,
    UNIQUE (page_id, psid)
);
CREATE INDEX contacts_by_page ON contacts (page_id, id);
CREATE INDEX contacts_profile_due ON contacts (profile_next_at) WHERE profile_next_at IS NOT NULL;
CREATE INDEX contacts_by_last_message ON contacts (last_user_message_at);
CREATE INDEX contacts_by_campaign ON contacts (campaign, id) WHERE campaign IS NOT NULL;

-- A contact's tags: `tag` as first written, `tag_key` its folded form (case and accents ignored), one per key.
CREATE TABLE contact_tags (
    page_id TEXT NOT NULL,
    psid TEXT NOT NULL,
    tag TEXT NOT NULL,
    tag_key TEXT NOT NULL,
    added_at TEXT NOT NULL,
    PRIMARY KEY (page_id, psid, tag_key)
);
CREATE INDEX contact_tags_by_key ON contact_tags (tag_key, page_id);

-- A contact's free fields (`ciudad`, `pedido`): key [a-z0-9_]{1,40}, value up to 500 characters.
CREATE TABLE contact_fields (
    page_id TEXT NOT NULL,
    psid TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (page_id, psid, key)
);

-- Internal notes agents write about a contact (never sent to the person).
CREATE TABLE contact_notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    page_id TEXT NOT NULL,
    psid TEXT NOT NULL,
    text TEXT NOT NULL,
    author TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX contact_notes_by_contact ON contact_notes (page_id, psid, id);

-- Where the contacts' sync (contacts/sync.py) got to in the outbox's conversations (their last_user_message_at):
-- a restart goes on from there instead of reading every conversation again.
CREATE TABLE contacts_sync (
    name TEXT PRIMARY KEY,
    cursor_at TEXT NOT NULL
);
