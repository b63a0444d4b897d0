-- The contacts' named queries (SQLite). Parameters are :named; contacts/sql/postgres/queries.sql has the same names.

-- name: get_contact
SELECT * FROM contacts WHERE page_id = :page_id AND psid = :psid;

-- name: upsert_seen
-- The person wrote then (`at`): a new contact (its profile due now), or the first time kept (the earlier of the two), the
-- last message the later one (and its text with it), the campaign the first one known, the message count the larger.
INSERT INTO contacts (page_id, psid, first_seen_at, last_user_message_at, campaign, profile_next_at, search_text,
                      updated_at, last_text, message_count)
VALUES (:page_id, :psid, :at, :at, :campaign, :at, :search_text, :at, :last_text, :message_count)
ON CONFLICT (page_id, psid) DO UPDATE SET
    first_seen_at = CASE WHEN excluded.first_seen_at < contacts.first_seen_at
                         THEN excluded.first_seen_at ELSE contacts.first_seen_at END,
    last_user_message_at = CASE WHEN contacts.last_user_message_at IS NULL
                                  OR excluded.last_user_message_at > contacts.last_user_message_at
                                THEN excluded.last_user_message_at ELSE contacts.last_user_message_at END,
    campaign = COALESCE(contacts.campaign, excluded.campaign),
    last_text = CASE WHEN contacts.last_user_message_at IS NULL
                       OR excluded.last_user_message_at >= contacts.last_user_message_at
                     THEN excluded.last_text ELSE contacts.last_text END,
    message_count = MAX(contacts.message_count, excluded.message_count),
    updated_at = excluded.updated_at;

-- name: insert_contact
-- An imported contact that never wrote: first seen now, no last message, its profile due now.
INSERT INTO contacts (page_id, psid, first_seen_at, profile_next_at, search_text, updated_at)
VALUES (:page_id, :psid, :now, :now, :search_text, :now)
ON CONFLICT (page_id, psid) DO NOTHING;

-- name: set_names
UPDATE contacts SET first_name = COALESCE(:first_name, first_name), last_name = COALESCE(:last_name, last_name)
WHERE page_id = :page_id AND psid = :psid;

-- name: record_profile
UPDATE contacts SET first_name = :first_name, last_name = :last_name, profile_pic = :profile_pic, locale = :locale,
       profile_status = :status, profile_reason = :reason, profile_fetched_at = :fetched_at,
       profile_attempts = :attempts, profile_next_at = :next_at, updated_at = :now
WHERE page_id = :page_id AND psid = :psid;

-- name: refresh_contact
-- The contact's copies of its tags, fields and notes count, and its search text, after a change.
UPDATE contacts SET tags_json = :tags_json, fields_json = :fields_json, search_text = :search_text,
       notes_count = (SELECT COUNT(*) FROM contact_notes n WHERE n.page_id = contacts.page_id
                                                             AND n.psid = contacts.psid),
       updated_at = :now
WHERE page_id = :page_id AND psid = :psid;

-- name: tags_of
SELECT tag, tag_key FROM contact_tags WHERE page_id = :page_id AND psid = :psid ORDER BY tag_key;

-- name: insert_tag
INSERT INTO contact_tags (page_id, psid, tag, tag_key, added_at) VALUES (:page_id, :psid, :tag, :tag_key, :now)
ON CONFLICT (page_id, psid, tag_key) DO NOTHING;

-- name: delete_tag
DELETE FROM contact_tags WHERE page_id = :page_id AND psid = :psid AND tag_key = :tag_key;

-- name: fields_of
SELECT key, value FROM contact_fields WHERE page_id = :page_id AND psid = :psid ORDER BY key;

-- name: upsert_field
-- value_key: the value folded (contacts.model.fold), which an audience compares.
INSERT INTO contact_fields (page_id, psid, key, value, value_key, updated_at)
VALUES (:page_id, :psid, :key, :value, :value_key, :now)
ON CONFLICT (page_id, psid, key) DO UPDATE SET value = excluded.value, value_key = excluded.value_key,
                                               updated_at = excluded.updated_at;

-- name: delete_field
DELETE FROM contact_fields WHERE page_id = :page_id AND psid = :psid AND key = :key;

-- name: insert_note
INSERT INTO contact_notes (page_id, psid, text, author, created_at) VALUES (:page_id, :psid, :text, :author, :now)
RETURNING id;

-- name: notes_of
SELECT * FROM contact_notes WHERE page_id = :page_id AND psid = :psid ORDER BY id DESC LIMIT :limit;

-- name: search_contacts
-- Newest contact first; the cursor is the last id shown (ids never change, so a page never skips or repeats one).
SELECT * FROM contacts c
WHERE (:page_id IS NULL OR c.page_id = :page_id)
  AND (:pattern IS NULL OR c.search_text LIKE :pattern ESCAPE '\')
  AND (:tag_key IS NULL OR EXISTS (SELECT 1 FROM contact_tags t WHERE t.page_id = c.page_id AND t.psid = c.psid
                                                                  AND t.tag_key = :tag_key))
  AND (:campaign IS NULL OR c.campaign = :campaign)
  AND (:window_from IS NULL OR c.last_user_message_at >= :window_from)
  AND (:before_id IS NULL OR c.id < :before_id)
ORDER BY c.id DESC
LIMIT :limit;

-- name: count_contacts
SELECT COUNT(*) AS total FROM contacts c
WHERE (:page_id IS NULL OR c.page_id = :page_id)
  AND (:pattern IS NULL OR c.search_text LIKE :pattern ESCAPE '\')
  AND (:tag_key IS NULL OR EXISTS (SELECT 1 FROM contact_tags t WHERE t.page_id = c.page_id AND t.psid = c.psid
                                                                  AND t.tag_key = :tag_key))
  AND (:campaign IS NULL OR c.campaign = :campaign)
  AND (:window_from IS NULL OR c.last_user_message_at >= :window_from);

-- name: profiles_due
SELECT * FROM contacts WHERE profile_next_at IS NOT NULL AND profile_next_at <= :now
ORDER BY profile_next_at, id LIMIT :limit;

-- name: all_tags
SELECT MIN(tag) AS tag, tag_key, COUNT(*) AS contacts FROM contact_tags
WHERE (:page_id IS NULL OR page_id = :page_id)
GROUP BY tag_key ORDER BY contacts DESC, tag_key;

-- name: export_chunk
SELECT * FROM contacts WHERE (:page_id IS NULL OR page_id = :page_id) AND id > :after_id ORDER BY id LIMIT :limit;

-- name: get_sync_cursor
SELECT cursor_at FROM contacts_sync WHERE name = :name;

-- name: save_sync_cursor
INSERT INTO contacts_sync (name, cursor_at) VALUES (:name, :cursor_at)
ON CONFLICT (name) DO UPDATE SET cursor_at = excluded.cursor_at;

-- name: contacts_of_keys
-- The batch import's reads: the contacts (and below, their tags and fields) of a JSON list of [page_id, psid] pairs,
-- one statement per chunk of keys instead of one per contact.
SELECT c.* FROM json_each(:keys) k
JOIN contacts c ON c.page_id = json_extract(k.value, '$[0]') AND c.psid = json_extract(k.value, '$[1]');

-- name: tags_of_keys
SELECT t.page_id, t.psid, t.tag, t.tag_key FROM json_each(:keys) k
JOIN contact_tags t ON t.page_id = json_extract(k.value, '$[0]') AND t.psid = json_extract(k.value, '$[1]');

-- name: fields_of_keys
SELECT f.page_id, f.psid, f.key, f.value FROM json_each(:keys) k
JOIN contact_fields f ON f.page_id = json_extract(k.value, '$[0]') AND f.psid = json_extract(k.value, '$[1]');

-- name: inbox_matches
-- The console's inbox filters, written once: the people who wrote matching every one of them. Not run alone:
-- contacts/store.py puts it before `inbox_page` and `inbox_totals` as `WITH matches AS (...)` (`FILTERED_BY`), so
-- the page and its counts always filter alike. :only / :exclude are JSON lists of conversation ids
-- ("<page_id>:<psid>") from the handoff side's state filters.
SELECT * FROM contacts c
WHERE c.last_user_message_at IS NOT NULL
  AND (:page_id IS NULL OR c.page_id = :page_id)
  AND (:pattern IS NULL OR c.search_text LIKE :pattern ESCAPE '\')
  AND (:tag_key IS NULL OR EXISTS (SELECT 1 FROM contact_tags t WHERE t.page_id = c.page_id AND t.psid = c.psid
                                                                  AND t.tag_key = :tag_key))
  AND (:campaign IS NULL OR c.campaign = :campaign)
  AND (:window_from IS NULL OR c.last_user_message_at >= :window_from)
  AND (:only IS NULL OR c.page_id || ':' || c.psid IN (SELECT value FROM json_each(:only)))
  AND (:exclude IS NULL OR c.page_id || ':' || c.psid NOT IN (SELECT value FROM json_each(:exclude)));

-- name: inbox_page
-- One page of the matches, newest last message first; the cursor is the last (time, id) shown.
SELECT * FROM matches c
WHERE (:before_at IS NULL OR c.last_user_message_at < :before_at
       OR (c.last_user_message_at = :before_at AND c.id < :before_id))
ORDER BY c.last_user_message_at DESC, c.id DESC
LIMIT :limit;

-- name: inbox_totals
-- How many conversations match, and how many of them are unread: never opened, or the person wrote after an
-- agent's last look (read_at, migration 003). One count over the contacts: no read mark is walked.
SELECT COUNT(*) AS total,
       COALESCE(SUM(CASE WHEN c.read_at IS NULL OR c.last_user_message_at > c.read_at THEN 1 ELSE 0 END), 0) AS unread
FROM matches c;

-- name: mark_read
-- An agent opened the conversation at :at: a later look wins (with the message count it saw), an earlier one (a slow
-- request, or a copied console mark older than the contact's own) changes nothing. No contact: nothing (0 rows).
UPDATE contacts SET read_at = :at, read_message_count = :message_count
WHERE page_id = :page_id AND psid = :psid
  AND (read_at IS NULL OR read_at < :at);

-- name: unfolded_fields
-- Fields written before value_key existed (migration 002): the store folds them once, on open.
SELECT page_id, psid, key, value FROM contact_fields WHERE value_key IS NULL LIMIT :limit;

-- name: set_value_key
UPDATE contact_fields SET value_key = :value_key
WHERE page_id = :page_id AND psid = :psid AND key = :key;

-- name: audience_matches
-- A broadcast's audience (contacts.model.Audience), written once: one page's contacts matching every condition.
-- Not run alone: contacts/store.py puts it before `audience_contacts` and `count_audience` as
-- `WITH matches AS (...)` (`FILTERED_BY`), so a page and the count always select alike. :tags_any / :tags_none
-- are JSON lists of tag keys, :fields a JSON list of [key, folded value] pairs (all must hold), NULL for no
-- condition. Whether they wrote or not.
SELECT * FROM contacts c
WHERE c.page_id = :page_id
  AND (:tags_any IS NULL OR EXISTS (SELECT 1 FROM contact_tags t WHERE t.page_id = c.page_id AND t.psid = c.psid
                                   AND t.tag_key IN (SELECT value FROM json_each(:tags_any))))
  AND (:tags_none IS NULL OR NOT EXISTS (SELECT 1 FROM contact_tags t WHERE t.page_id = c.page_id AND t.psid = c.psid
                                        AND t.tag_key IN (SELECT value FROM json_each(:tags_none))))
  AND (:fields IS NULL OR NOT EXISTS (
        SELECT 1 FROM json_each(:fields) w WHERE NOT EXISTS (
            SELECT 1 FROM contact_fields f WHERE f.page_id = c.page_id AND f.psid = c.psid
                                             AND f.key = json_extract(w.value, '$[0]') AND f.value_key = json_extract(w.value, '$[1]'))))
  AND (:campaign IS NULL OR c.campaign = :campaign)
  AND (:after_at IS NULL OR c.last_user_message_at >= :after_at)
  AND (:before_at IS NULL OR c.last_user_message_at < :before_at);

-- name: audience_contacts
-- One page of the audience, by id (the cursor: the last id read).
SELECT * FROM matches c
WHERE c.id > :after_id
ORDER BY c.id
LIMIT :limit;

-- name: count_audience
SELECT COUNT(*) AS total FROM matches c;

-- name: new_by_campaign
-- Reports: the contacts who wrote, first seen in [since, until) of one page (NULL: every page), by campaign (NULL:
-- none); imported contacts who never wrote are left out. Through the partial contacts_who_wrote_by_first_seen.
SELECT campaign, count(*) AS n FROM contacts
WHERE first_seen_at >= :since AND first_seen_at < :until AND (:page_id IS NULL OR page_id = :page_id)
  AND last_user_message_at IS NOT NULL
GROUP BY campaign;
