-- The comment journal's SQLite file (<data_dir>/comment_journal.sqlite3): every `feed` change the webhook process
-- received (comments, replies, edits, removals, visitor posts), written before it answers Meta 200, and the
-- processor's verdict on each new comment. Times are UTC ISO-8601 text with microseconds, fixed width, so text
-- order is time order. PRAGMA user_version is the schema version.

CREATE TABLE feed_changes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key TEXT NOT NULL UNIQUE,        -- meta.feed.FeedChange.dedup_key: a redelivery inserts nothing
    page_id TEXT NOT NULL,
    item TEXT NOT NULL,                    -- comment, status, photo, reaction…
    verb TEXT NOT NULL,                    -- add, edited, remove, hide, unhide…
    comment_id TEXT,
    post_id TEXT,
    parent_id TEXT,                        -- the post (a top-level comment) or a comment (a reply)
    from_id TEXT NOT NULL DEFAULT '',
    from_name TEXT NOT NULL DEFAULT '',
    message TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,              -- Meta's created_time (else when it was received)
    received_at TEXT NOT NULL,
    raw_json TEXT NOT NULL,                -- {"page_id": …, "value": <Meta's value, whole>}
    status TEXT NOT NULL CHECK (status IN ('pending', 'recorded', 'ignored', 'replied', 'skipped')),
    reason_code TEXT,                      -- why no reply (skipped, ignored, recorded)
    rule_id TEXT,                          -- the reply rule that matched
    private_outbox_id INTEGER,             -- the outbox message of the private reply
    public_outbox_id INTEGER,              -- the outbox message of the public reply
    psid TEXT,                             -- the commenter's page-scoped id, once the private reply was sent
    claimed_by TEXT,                       -- the processor deciding it, until lease_until
    lease_until TEXT,
    handled_at TEXT                        -- when the verdict was written
);
CREATE INDEX feed_changes_pending ON feed_changes (id) WHERE status = 'pending';
CREATE INDEX feed_changes_by_page ON feed_changes (page_id, id);
CREATE INDEX feed_changes_replied_person ON feed_changes (page_id, from_id, post_id, handled_at)
    WHERE status = 'replied';
CREATE INDEX feed_changes_by_psid ON feed_changes (page_id, psid, id) WHERE psid IS NOT NULL;
CREATE INDEX feed_changes_awaiting_psid ON feed_changes (id)
    WHERE status = 'replied' AND psid IS NULL AND private_outbox_id IS NOT NULL;
CREATE INDEX feed_changes_posts ON feed_changes (page_id, post_id, id) WHERE comment_id IS NULL;
