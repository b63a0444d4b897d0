-- The paraphrase store's named queries (PostgreSQL). Parameters are %(name)s. The same names as ../sqlite/queries.sql.

-- name: insert_job
INSERT INTO paraphrase_jobs (matrix_version, requested_by, status, total_entries, created_at, updated_at)
VALUES (%(matrix_version)s, %(requested_by)s, 'running', %(total_entries)s, %(now)s, %(now)s)
RETURNING id;

-- name: running_job
SELECT * FROM paraphrase_jobs WHERE status = 'running' ORDER BY id DESC LIMIT 1;

-- name: job
SELECT * FROM paraphrase_jobs WHERE id = %(id)s;

-- name: latest_jobs
SELECT * FROM paraphrase_jobs ORDER BY id DESC LIMIT %(limit)s;

-- name: progress
-- Batches run side by side and their progress writes may land out of order: the counts only go up.
UPDATE paraphrase_jobs
SET done_entries = GREATEST(done_entries, %(done_entries)s), proposed = GREATEST(proposed, %(proposed)s),
    filtered = GREATEST(filtered, %(filtered)s), tokens = GREATEST(tokens, %(tokens)s), updated_at = %(now)s
WHERE id = %(id)s AND status = 'running';

-- name: finish_job
UPDATE paraphrase_jobs
SET status = %(status)s, error_code = %(error_code)s, error_es = %(error_es)s, updated_at = %(now)s, finished_at = %(now)s
WHERE id = %(id)s AND status = 'running';

-- name: end_stale_jobs
-- A running job nobody has moved since %(before)s belonged to a process that stopped.
UPDATE paraphrase_jobs
SET status = 'failed', error_code = 'interrupted', error_es = %(error_es)s, updated_at = %(now)s, finished_at = %(now)s
WHERE status = 'running' AND updated_at < %(before)s;

-- name: insert_paraphrase
INSERT INTO paraphrases (job_id, matrix_version, entry_id, text, text_key, status, reason_code, reason_es,
                         other_entry_id, created_at)
VALUES (%(job_id)s, %(matrix_version)s, %(entry_id)s, %(text)s, %(text_key)s, %(status)s, %(reason_code)s, %(reason_es)s, %(other_entry_id)s,
        %(now)s)
ON CONFLICT (entry_id, text_key) DO NOTHING
RETURNING id;

-- name: paraphrases
SELECT * FROM paraphrases
WHERE (%(status)s IS NULL OR status = %(status)s) AND (%(entry_id)s IS NULL OR entry_id = %(entry_id)s)
ORDER BY entry_id, id
LIMIT %(limit)s;

-- name: paraphrase
SELECT * FROM paraphrases WHERE id = %(id)s;

-- name: counts
SELECT status, COUNT(*) AS n FROM paraphrases GROUP BY status;

-- name: decide
-- A decision can change until the proposal went into a draft; a filtered one cannot be decided.
UPDATE paraphrases SET status = %(status)s, decided_at = %(now)s, decided_by = %(by)s
WHERE id = %(id)s AND status IN ('proposed', 'accepted', 'rejected') AND draft_id IS NULL;

-- name: decide_entry
UPDATE paraphrases SET status = %(status)s, decided_at = %(now)s, decided_by = %(by)s
WHERE entry_id = %(entry_id)s AND status = 'proposed';

-- name: accepted_undrafted
SELECT * FROM paraphrases WHERE status = 'accepted' AND draft_id IS NULL ORDER BY entry_id, id LIMIT %(limit)s;

-- name: mark_drafted
UPDATE paraphrases SET draft_id = %(draft_id)s WHERE id = %(id)s AND status = 'accepted' AND draft_id IS NULL;
