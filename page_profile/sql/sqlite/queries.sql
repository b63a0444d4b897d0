-- The page profiles' named queries (SQLite). Parameters are :named.

-- name: get_profile
SELECT page_id, profile_json, updated_at, updated_by, applied_json, applied_at, applied_by, last_attempt_at,
       last_attempt_by, last_ok, last_answer_json
FROM page_profiles WHERE page_id = :page_id;

-- name: list_profiles
SELECT page_id, profile_json, updated_at, updated_by, applied_json, applied_at, applied_by, last_attempt_at,
       last_attempt_by, last_ok, last_answer_json
FROM page_profiles ORDER BY page_id;

-- name: save_profile
-- The edit only: what was applied and Facebook's last answer stay.
INSERT INTO page_profiles (page_id, profile_json, updated_at, updated_by)
VALUES (:page_id, :profile_json, :now, :by)
ON CONFLICT (page_id) DO UPDATE SET profile_json = excluded.profile_json, updated_at = excluded.updated_at,
                                    updated_by = excluded.updated_by;

-- name: record_success
UPDATE page_profiles
SET applied_json = :applied_json, applied_at = :now, applied_by = :by, last_attempt_at = :now, last_attempt_by = :by,
    last_ok = 1, last_answer_json = :answer_json
WHERE page_id = :page_id;

-- name: record_failure
UPDATE page_profiles
SET last_attempt_at = :now, last_attempt_by = :by, last_ok = 0, last_answer_json = :answer_json
WHERE page_id = :page_id;
