-- The comment journal's named queries (SQLite). Parameters are :named. The same names as ../postgres/queries.sql.
-- Every query that returns rows returns the whole row (comments.journal.StoredComment).

-- name: insert_change
-- A redelivery (same dedup_key) inserts nothing and returns no row.
INSERT INTO feed_changes (dedup_key, page_id, item, verb, comment_id, post_id, parent_id, from_id, from_name, message,
                          created_at, received_at, raw_json, status, reason_code)
VALUES (:dedup_key, :page_id, :item, :verb, :comment_id, :post_id, :parent_id, :from_id, :from_name, :message,
        :created_at, :received_at, :raw_json, :status, :reason_code)
ON CONFLICT (dedup_key) DO NOTHING
RETURNING id;

-- name: claim_pending
-- Pending comments nobody holds or whose lease ran out, oldest first; each claim is one more attempt. The holder's
-- own claim is not taken back before its lease ends: a comment that failed is held back by it (no spinning).
UPDATE feed_changes SET claimed_by = :owner, lease_until = :lease_until, attempts = attempts + 1
WHERE id IN (
    SELECT id FROM feed_changes
    WHERE status = 'pending' AND (claimed_by IS NULL OR lease_until <= :now)
    ORDER BY id LIMIT :limit
)
RETURNING *;

-- name: finish
-- Only the claim's holder writes the verdict, once (a lost lease changes nothing: the new holder decides).
UPDATE feed_changes
SET status = :status, reason_code = :reason_code, rule_id = :rule_id, private_outbox_id = :private_outbox_id,
    public_outbox_id = :public_outbox_id, handled_at = :now, claimed_by = NULL, lease_until = NULL
WHERE id = :id AND status = 'pending' AND claimed_by = :owner;

-- name: set_psid
-- The private reply reached the person: their PSID and when it was sent (NULL: not known, the verdict's time counts).
UPDATE feed_changes SET psid = :psid, reply_sent_at = :sent_at WHERE id = :id;

-- name: awaiting_answer
-- Private replies that reached the person, sent since `since`, the person not seen writing back yet; `after_id` pages
-- through them (the processor goes round them all, a batch at a time).
SELECT * FROM feed_changes
WHERE status = 'replied' AND psid IS NOT NULL AND answered_at IS NULL
  AND coalesce(reply_sent_at, handled_at) >= :since AND id > :after_id
ORDER BY id LIMIT :limit;

-- name: set_answered
-- The person wrote to the page after the private reply: a conversation started from this comment (once).
UPDATE feed_changes SET answered_at = :at WHERE id = :id AND answered_at IS NULL;

-- name: psid_of
-- The person's PSID from an earlier private reply (the processor: is their conversation paused?).
SELECT psid FROM feed_changes
WHERE page_id = :page_id AND from_id = :from_id AND psid IS NOT NULL
ORDER BY id DESC LIMIT 1;

-- name: reply_failed
-- The private reply never reached the person: the verdict becomes skipped, with the outbox's reason.
UPDATE feed_changes SET status = 'skipped', reason_code = :reason_code
WHERE id = :id AND status = 'replied' AND psid IS NULL;

-- name: awaiting_psid
-- Replied comments whose private reply's PSID is not known yet (nor known to be unknowable), by id after `after_id`.
SELECT * FROM feed_changes
WHERE status = 'replied' AND psid IS NULL AND psid_unknown_at IS NULL AND private_outbox_id IS NOT NULL
  AND id > :after_id
ORDER BY id LIMIT :limit;

-- name: replied_to_person_since
SELECT 1 AS found FROM feed_changes
WHERE page_id = :page_id AND from_id = :from_id AND post_id = :post_id AND status = 'replied' AND handled_at >= :since
LIMIT 1;

-- name: origin_of
-- The first comment whose private reply reached this person: where the conversation started.
SELECT * FROM feed_changes WHERE page_id = :page_id AND psid = :psid ORDER BY id LIMIT 1;

-- name: get
SELECT * FROM feed_changes WHERE id = :id;

-- name: recent
SELECT * FROM feed_changes
WHERE (:page_id IS NULL OR page_id = :page_id) AND (:before_id IS NULL OR id < :before_id)
ORDER BY id DESC LIMIT :limit;

-- name: post_message
-- The post's latest text as its own feed changes told it (a post added or edited), for rules that match post text.
SELECT message FROM feed_changes
WHERE page_id = :page_id AND post_id = :post_id AND comment_id IS NULL AND verb IN ('add', 'edited', 'edit')
  AND message <> ''
ORDER BY id DESC LIMIT 1;

-- name: count_by_status
SELECT status, count(*) AS n FROM feed_changes
WHERE (:page_id IS NULL OR page_id = :page_id) AND (:since IS NULL OR received_at >= :since)
GROUP BY status;

-- name: count_received
-- Comments (and replies) people added: the page's own are not "received".
SELECT count(*) AS n FROM feed_changes
WHERE (:page_id IS NULL OR page_id = :page_id) AND (:since IS NULL OR received_at >= :since)
  AND item = 'comment' AND verb = 'add' AND status <> 'ignored';

-- name: count_by_reason
SELECT reason_code, count(*) AS n FROM feed_changes
WHERE (:page_id IS NULL OR page_id = :page_id) AND (:since IS NULL OR received_at >= :since)
  AND status IN ('skipped', 'ignored')
GROUP BY reason_code;

-- name: count_by_rule
SELECT rule_id, count(*) AS matched, count(private_outbox_id) AS private_replies,
       count(public_outbox_id) AS public_replies,
       count(CASE WHEN psid IS NOT NULL OR psid_unknown_at IS NOT NULL THEN 1 END) AS delivered,
       count(DISTINCT CASE WHEN answered_at IS NOT NULL THEN psid END) AS started
FROM feed_changes
WHERE (:page_id IS NULL OR page_id = :page_id) AND (:since IS NULL OR received_at >= :since)
  AND rule_id IS NOT NULL
GROUP BY rule_id;

-- name: count_started
-- Conversations started from comments: distinct people who wrote to the page after their private reply.
SELECT count(DISTINCT psid) AS n FROM feed_changes
WHERE (:page_id IS NULL OR page_id = :page_id) AND (:since IS NULL OR received_at >= :since)
  AND rule_id IS NOT NULL AND answered_at IS NOT NULL;

-- name: hold_back
-- A claimed comment that could not be decided: held by its claim until `until` (then any processor may retry it).
UPDATE feed_changes SET lease_until = :until
WHERE id = :id AND status = 'pending' AND claimed_by = :owner;

-- name: set_psid_unknown
-- The private reply was sent but Meta named no recipient: the PSID cannot be known; it leaves awaiting_psid.
UPDATE feed_changes SET psid_unknown_at = :at, reply_sent_at = :sent_at
WHERE id = :id AND status = 'replied' AND psid IS NULL AND psid_unknown_at IS NULL;

-- name: fetched_post_text
-- A post's text as the Graph API gave it ('' : the post has none).
SELECT message FROM post_texts WHERE page_id = :page_id AND post_id = :post_id;

-- name: save_post_text
INSERT INTO post_texts (page_id, post_id, message, fetched_at)
VALUES (:page_id, :post_id, :message, :at)
ON CONFLICT (page_id, post_id) DO UPDATE SET message = excluded.message, fetched_at = excluded.fetched_at;

-- name: rule_counts
-- Reports: per rule, the comments received in [since, until) of one page (NULL: every page) it matched, the replies
-- queued, the private replies that reached the person and the conversations that followed.
SELECT rule_id, count(*) AS matched, count(private_outbox_id) AS private_replies,
       count(public_outbox_id) AS public_replies,
       count(CASE WHEN psid IS NOT NULL OR psid_unknown_at IS NOT NULL THEN 1 END) AS delivered,
       count(DISTINCT CASE WHEN answered_at IS NOT NULL THEN psid END) AS started
FROM feed_changes
WHERE received_at >= :since AND received_at < :until AND (:page_id IS NULL OR page_id = :page_id)
  AND rule_id IS NOT NULL
GROUP BY rule_id
ORDER BY rule_id;
