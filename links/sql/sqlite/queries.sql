-- The links store's named queries (SQLite). Parameters are :named. The same names as ../postgres/queries.sql.

-- name: insert_link
-- A ref the page already uses inserts nothing (no row returned: the store says so).
INSERT INTO links (page_id, name, ref, start_json, enabled, created_at, created_by, updated_at, updated_by)
VALUES (:page_id, :name, :ref, :start_json, 1, :now, :by, :now, :by)
ON CONFLICT (page_id, ref) DO NOTHING
RETURNING id;

-- name: get_link
SELECT id, page_id, name, ref, start_json, enabled, created_at, created_by FROM links WHERE id = :id;

-- name: link_by_ref
SELECT id, page_id, name, ref, start_json, enabled, created_at, created_by FROM links
WHERE page_id = :page_id AND ref = :ref;

-- name: list_links
SELECT id, page_id, name, ref, start_json, enabled, created_at, created_by FROM links
WHERE :page_id IS NULL OR page_id = :page_id
ORDER BY id;

-- name: set_enabled
UPDATE links SET enabled = :enabled, updated_at = :now, updated_by = :by WHERE id = :id;

-- name: insert_referral
-- A redelivered or replayed event (same key) inserts nothing.
INSERT INTO referrals (event_key, page_id, psid, ref, link_id, source, via, ad_id, at)
VALUES (:event_key, :page_id, :psid, :ref, :link_id, :source, :via, :ad_id, :at)
ON CONFLICT (event_key) DO NOTHING
RETURNING id;

-- name: link_counts
-- Per link: referrals (every scan or click), people (distinct PSIDs) and new contacts (a Get Started postback
-- carries the referral only when the person opens the conversation for the first time).
SELECT link_id, count(*) AS referrals, count(DISTINCT psid) AS people,
       count(DISTINCT CASE WHEN via = 'postback' THEN psid END) AS new_contacts
FROM referrals
WHERE link_id IS NOT NULL AND (:page_id IS NULL OR page_id = :page_id)
GROUP BY link_id;

-- name: unmatched_refs
-- Refs no link of ours has (ads, links made elsewhere): counted, most used first.
SELECT page_id, ref, source, count(*) AS referrals, count(DISTINCT psid) AS people, max(at) AS last_at
FROM referrals
WHERE link_id IS NULL AND (:page_id IS NULL OR page_id = :page_id)
GROUP BY page_id, ref, source
ORDER BY referrals DESC, ref
LIMIT :limit;

-- name: conversation_referrals
SELECT r.id, r.event_key, r.page_id, r.psid, r.ref, r.link_id, r.source, r.via, r.ad_id, r.at, l.name AS link_name
FROM referrals r LEFT JOIN links l ON l.id = r.link_id
WHERE r.page_id = :page_id AND r.psid = :psid
ORDER BY r.at, r.id
LIMIT :limit;

-- name: upsert_page_username
INSERT INTO page_usernames (page_id, username, updated_at) VALUES (:page_id, :username, :now)
ON CONFLICT (page_id) DO UPDATE SET username = excluded.username, updated_at = excluded.updated_at;

-- name: page_usernames
SELECT page_id, username FROM page_usernames ORDER BY page_id;
