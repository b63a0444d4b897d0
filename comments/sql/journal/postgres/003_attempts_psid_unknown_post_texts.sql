-- A comment that keeps failing is not tried for ever: `attempts` counts the claims (claim_pending adds one), the
-- processor holds a failed one back (its lease) and after a few attempts records it skipped with why.
ALTER TABLE feed_changes ADD COLUMN attempts integer NOT NULL DEFAULT 0;
-- A private reply Meta answered without `recipient_id`: sent, but the person's PSID cannot be known. Final: it leaves
-- the PSID queue (awaiting_psid) so it never blocks the replies behind it.
ALTER TABLE feed_changes ADD COLUMN psid_unknown_at timestamptz;
DROP INDEX feed_changes_awaiting_psid;
CREATE INDEX feed_changes_awaiting_psid ON feed_changes (id)
    WHERE status = 'replied' AND psid IS NULL AND psid_unknown_at IS NULL AND private_outbox_id IS NOT NULL;
-- Posts' texts read from the Graph API (GET /{post_id}?fields=message) for rules that match the post's text, when
-- the post's own feed change never arrived (a post published before the page was subscribed). '' : no text.
CREATE TABLE post_texts (
    page_id text NOT NULL,
    post_id text NOT NULL,
    message text NOT NULL,
    fetched_at timestamptz NOT NULL,
    PRIMARY KEY (page_id, post_id)
);
