-- The paraphrase store's named queries (SQLite). Parameters are :named. The same names as ../postgres/queries.sql.

-- name: insert_job
INSERT INTO paraphrase_jobs (matrix_version, requested_by, status, total_entries, created_at, updated_at)
VALUES (:matrix_version, :requested_by, 'running', :total_entries, :now, :now)
RETURNING id;

-- name: running_job
SELECT * FROM paraphrase_jobs WHERE status = 'running' ORDER BY id DESC LIMIT 1;

-- name: job
SELECT * FROM paraphrase_jobs WHERE id = :id;

-- name: latest_jobs
SELECT * FROM paraphrase_jobs ORDER BY id DESC LIMIT :limit;

-- name: progress
-- Batches run side by side and their progress writes may land out of order: the counts only go up.
UPDATE paraphrase_jobs
SET done_entries = max(done_entries, :done_entries), proposed = max(proposed, :proposed),
    filtered = max(filtered, :filtered), tokens = max(tokens, :tokens), updated_at = :now
WHERE id = :id AND status = 'running';

-- name: finish_job
UPDATE paraphrase_jobs
SET status = :status, error_code = :error_code, error_es = :error_es, updated_at = :now, finished_at = :now
WHERE id = :id AND status = 'running';

-- name: end_stale_jobs
-- A running job nobody has moved since :before belonged to a process that stopped.
UPDATE paraphrase_jobs
SET status = 'failed', error_code = 'interrupted', error_es = :error_es, updated_at = :now, finished_at = :now
WHERE status = 'running' AND updated_at < :before;

-- name: insert_paraphrase
INSERT INTO paraphrases (job_id, matrix_version, entry_id, text, text_key, status, reason_code, reason_es,
                         other_entry_id, created_at)
VALUES (:job_id, :matrix_version, :entry_id, :text, :text_key, :status, :reason_code, :reason_es, :other_entry_id,
        :now)
ON CONFLICT (entry_id, text_key) DO NOTHING
RETURNING id;

-- name: paraphrases
SELECT * FROM paraphrases
WHERE (:status IS NULL OR status = :status) AND (:entry_id IS NULL OR entry_id = :entry_id)
ORDER BY entry_id, id
LIMIT :limit;

-- name: paraphrase
SELECT * FROM paraphrases WHERE id = :id;

-- name: counts
SELECT status, COUNT(*) AS n FROM paraphrases GROUP BY status;

-- name: decide
-- A decision can change until the proposal went into a draft; a filtered one cannot be decided.
UPDATE paraphrases SET status = :status, decided_at = :now, decided_by = :by
WHERE id = :id AND status IN ('proposed', 'accepted', 'rejected') AND draft_id IS NULL;

-- name: decide_entry
UPDATE paraphrases SET status = :status, decided_at = :now, decided_by = :by
WHERE entry_id = :entry_id AND status = 'proposed';

-- name: accepted_undrafted
SELECT * FROM paraphrases WHERE status = 'accepted' AND draft_id IS NULL ORDER BY entry_id, id LIMIT :limit;

-- name: mark_drafted
UPDATE paraphrases SET draft_id = :draft_id WHERE id = :id AND status = 'accepted' AND draft_id IS NULL;
