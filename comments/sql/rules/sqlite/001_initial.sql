-- The comment reply rules ("Respuestas privadas") of each page and the page's comment settings, in their SQLite file
-- (<data_dir>/comments.sqlite3). Times are UTC ISO-8601 text with microseconds, fixed width, so text order is time
-- order. A rule's parts (posts, comments, reply, public replies) are JSON text: comments.rules checks them before
-- they are written and reads them back. PRAGMA user_version is the schema version.

CREATE TABLE reply_rules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    page_id TEXT NOT NULL,
    name TEXT NOT NULL,
    position INTEGER NOT NULL,              -- the order within the page, lowest first: the first match wins
    enabled INTEGER NOT NULL DEFAULT 1,
    posts_json TEXT NOT NULL,
    comments_json TEXT NOT NULL,
    reply_json TEXT NOT NULL,
    public_replies_json TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);
CREATE INDEX reply_rules_by_page ON reply_rules (page_id, position, id);

-- One row per page whose settings were changed; a page without a row has the defaults (comments.rules).
CREATE TABLE page_comment_settings (
    page_id TEXT PRIMARY KEY,
    one_reply_per_person_per_post_per_day INTEGER NOT NULL DEFAULT 1,
    knowledge_min_score REAL,               -- NULL: the knowledge matrix's own answer threshold
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL
);
