-- The comment rules' named queries (SQLite). Parameters are :named.

-- name: list_rules
SELECT * FROM reply_rules WHERE page_id = :page_id ORDER BY position, id;

-- name: get_rule
SELECT * FROM reply_rules WHERE id = :id;

-- name: next_position
SELECT COALESCE(MAX(position), 0) + 1 AS position FROM reply_rules WHERE page_id = :page_id;

-- name: insert_rule
INSERT INTO reply_rules (page_id, name, position, enabled, posts_json, comments_json, reply_json,
                         public_replies_json, created_at, updated_at, updated_by)
VALUES (:page_id, :name, :position, :enabled, :posts_json, :comments_json, :reply_json, :public_replies_json,
        :now, :now, :by)
RETURNING id;

-- name: update_rule
UPDATE reply_rules SET name = :name, enabled = :enabled, posts_json = :posts_json,
       comments_json = :comments_json, reply_json = :reply_json, public_replies_json = :public_replies_json,
       updated_at = :now, updated_by = :by
WHERE id = :id;

-- name: set_enabled
UPDATE reply_rules SET enabled = :enabled, updated_at = :now, updated_by = :by WHERE id = :id;

-- name: set_position
UPDATE reply_rules SET position = :position, updated_at = :now, updated_by = :by
WHERE id = :id AND page_id = :page_id;

-- name: delete_rule
DELETE FROM reply_rules WHERE id = :id;

-- name: get_settings
SELECT * FROM page_comment_settings WHERE page_id = :page_id;

-- name: upsert_settings
INSERT INTO page_comment_settings (page_id, one_reply_per_person_per_post_per_day, knowledge_min_score, updated_at,
                                   updated_by)
VALUES (:page_id, :once, :knowledge_min_score, :now, :by)
ON CONFLICT (page_id) DO UPDATE SET
    one_reply_per_person_per_post_per_day = excluded.one_reply_per_person_per_post_per_day,
    knowledge_min_score = excluded.knowledge_min_score, updated_at = excluded.updated_at,
    updated_by = excluded.updated_by;
