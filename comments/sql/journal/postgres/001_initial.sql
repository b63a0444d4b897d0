-- The comment journal on PostgreSQL: every `feed` change the webhook process received (comments, replies, edits,
-- removals, visitor posts), written before it answers Meta 200, and the processor's verdict on each new comment.
-- The same table as the SQLite file (comments/sql/journal/sqlite/001_initial.sql), with timestamptz times; created
-- in the store's schema (search_path).

CREATE TABLE feed_changes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedup_key text NOT NULL UNIQUE,        -- meta.feed.FeedChange.dedup_key: a redelivery inserts nothing
    page_id text NOT NULL,
    item text NOT NULL,                    -- comment, status, photo, reaction…
    verb text NOT NULL,                    -- add, edited, remove, hide, unhide…
    comment_id text,
    post_id text,
    parent_id text,                        -- the post (a top-level comment) or a comment (a reply)
    from_id text NOT NULL DEFAULT '',
    from_name text NOT NULL DEFAULT '',
    message text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL,         -- Meta's created_time (else when it was received)
    received_at timestamptz NOT NULL,
    raw_json text NOT NULL,                -- {"page_id": …, "value": <Meta's value, whole>}
    status text NOT NULL CHECK (status IN ('pending', 'recorded', 'ignored', 'replied', 'skipped')),
    reason_code text,                      -- why no reply (skipped, ignored, recorded)
    rule_id text,                          -- the reply rule that matched
    private_outbox_id bigint,              -- the outbox message of the private reply
    public_outbox_id bigint,               -- the outbox message of the public reply
    psid text,                             -- the commenter's page-scoped id, once the private reply was sent
    claimed_by text,                       -- the processor deciding it, until lease_until
    lease_until timestamptz,
    handled_at timestamptz                  -- when the verdict was written
);
CREATE INDEX feed_changes_pending ON feed_changes (id) WHERE status = 'pending';
CREATE INDEX feed_changes_by_page ON feed_changes (page_id, id);
CREATE INDEX feed_changes_replied_person ON feed_changes (page_id, from_id, post_id, handled_at)
    WHERE status = 'replied';
CREATE INDEX feed_changes_by_psid ON feed_changes (page_id, psid, id) WHERE psid IS NOT NULL;
CREATE INDEX feed_changes_awaiting_psid ON feed_changes (id)
    WHERE status = 'replied' AND psid IS NULL AND private_outbox_id IS NOT NULL;
CREATE INDEX feed_changes_posts ON feed_changes (page_id, post_id, id) WHERE comment_id IS NULL;
