-- The page profiles' named queries (PostgreSQL, psycopg2). Parameters are %(named)s; JSON arrives as text and is
-- cast to jsonb, times as ISO 8601 UTC text cast by the columns they meet. The same names as sqlite/queries.sql.

-- name: get_profile
SELECT page_id, profile_json, updated_at, updated_by, applied_json, applied_at, applied_by, last_attempt_at,
       last_attempt_by, last_ok, last_answer_json
FROM page_profiles WHERE page_id = %(page_id)s;

-- name: list_profiles
SELECT page_id, profile_json, updated_at, updated_by, applied_json, applied_at, applied_by, last_attempt_at,
       last_attempt_by, last_ok, last_answer_json
FROM page_profiles ORDER BY page_id;

-- name: save_profile
-- The edit only: what was applied and Facebook's last answer stay.
INSERT INTO page_profiles (page_id, profile_json, updated_at, updated_by)
VALUES (%(page_id)s, %(profile_json)s::jsonb, %(now)s, %(by)s)
ON CONFLICT (page_id) DO UPDATE SET profile_json = excluded.profile_json, updated_at = excluded.updated_at,
                                    updated_by = excluded.updated_by;

-- name: record_success
UPDATE page_profiles
SET applied_json = %(applied_json)s::jsonb, applied_at = %(now)s, applied_by = %(by)s, last_attempt_at = %(now)s,
    last_attempt_by = %(by)s, last_ok = true, last_answer_json = %(answer_json)s::jsonb
WHERE page_id = %(page_id)s;

-- name: record_failure
UPDATE page_profiles
SET last_attempt_at = %(now)s, last_attempt_by = %(by)s, last_ok = false, last_answer_json = %(answer_json)s::jsonb
WHERE page_id = %(page_id)s;
