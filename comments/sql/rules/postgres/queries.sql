-- The comment rules' named queries (PostgreSQL, psycopg2). Parameters are %(named)s; times arrive as ISO 8601 UTC
-- text and are cast by the columns they meet. The same names as comments/sql/rules/sqlite/queries.sql.

-- name: list_rules
SELECT * FROM reply_rules WHERE page_id = %(page_id)s ORDER BY position, id;

-- name: get_rule
SELECT * FROM reply_rules WHERE id = %(id)s;

-- name: next_position
SELECT COALESCE(MAX(position), 0) + 1 AS position FROM reply_rules WHERE page_id = %(page_id)s;

-- name: insert_rule
INSERT INTO reply_rules (page_id, name, position, enabled, posts_json, comments_json, reply_json,
                         public_replies_json, created_at, updated_at, updated_by)
VALUES (%(page_id)s, %(name)s, %(position)s, %(enabled)s, %(posts_json)s, %(comments_json)s, %(reply_json)s,
        %(public_replies_json)s, %(now)s, %(now)s, %(by)s)
RETURNING id;

-- name: update_rule
UPDATE reply_rules SET name = %(name)s, enabled = %(enabled)s, posts_json = %(posts_json)s,
       comments_json = %(comments_json)s, reply_json = %(reply_json)s, public_replies_json = %(public_replies_json)s,
       updated_at = %(now)s, updated_by = %(by)s
WHERE id = %(id)s;

-- name: set_enabled
UPDATE reply_rules SET enabled = %(enabled)s, updated_at = %(now)s, updated_by = %(by)s WHERE id = %(id)s;

-- name: set_position
UPDATE reply_rules SET position = %(position)s, updated_at = %(now)s, updated_by = %(by)s
WHERE id = %(id)s AND page_id = %(page_id)s;

-- name: delete_rule
DELETE FROM reply_rules WHERE id = %(id)s;

-- name: get_settings
SELECT * FROM page_comment_settings WHERE page_id = %(page_id)s;

-- name: upsert_settings
INSERT INTO page_comment_settings (page_id, one_reply_per_person_per_post_per_day, knowledge_min_score, updated_at,
                                   updated_by)
VALUES (%(page_id)s, %(once)s, %(knowledge_min_score)s, %(now)s, %(by)s)
ON CONFLICT (page_id) DO UPDATE SET
    one_reply_per_person_per_post_per_day = excluded.one_reply_per_person_per_post_per_day,
    knowledge_min_score = excluded.knowledge_min_score, updated_at = excluded.updated_at,
    updated_by = excluded.updated_by;
