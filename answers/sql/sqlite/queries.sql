-- The answer journal's named queries (SQLite). Parameters are :named. The same names as ../postgres/queries.sql.
-- A miss: no_answer, handoff, or a did_you_mean nobody followed (no tap by the same person within 10 minutes) once
-- its 10 minutes are over (`settled`: the end of the window minus 10 minutes).

-- name: insert_answer
INSERT INTO answers (page_id, person_key, question, handling, at, entry_id, score, candidates_json, reason,
                     matrix_version)
VALUES (:page_id, :person_key, :question, :handling, :at, :entry_id, :score, :candidates_json, :reason,
        :matrix_version)
RETURNING id;

-- name: mark_followed
-- A tap on a "¿Quisiste decir…?" candidate: the offers the same person got in the 10 minutes before were followed.
-- Their times come back: each is taken back from its hour's did_you_mean count (take_back_hour).
UPDATE answers SET followed = 1
WHERE person_key = :person_key AND page_id = :page_id AND handling = 'did_you_mean' AND followed = 0
  AND at >= :window_start AND at <= :at
RETURNING at, entry_id;

-- name: unanswered
SELECT id, page_id, question, at, person_key, handling FROM answers
WHERE at >= :since AND at < :until AND (:page_id IS NULL OR page_id = :page_id) AND question <> ''
  AND (handling IN ('no_answer', 'handoff') OR (handling = 'did_you_mean' AND followed = 0 AND at <= :settled))
ORDER BY at, id
LIMIT :limit;

-- name: latest_handling
-- How the bot handled a person's latest question on a page since a time (the survey after the bot resolved a
-- conversation asks only after an answer). On answers_by_person.
SELECT handling, at FROM answers
WHERE person_key = :person_key AND at >= :since AND page_id = :page_id
ORDER BY at DESC, id DESC
LIMIT 1;

-- name: ungrouped
SELECT id, page_id, question, at, person_key, handling FROM answers
WHERE group_id IS NULL AND followed = 0 AND handling IN ('no_answer', 'handoff', 'did_you_mean') AND question <> ''
  AND (handling <> 'did_you_mean' OR at <= :settled)
ORDER BY at, id
LIMIT :limit;

-- name: add_hour
-- One more question in its UTC hour (answer_hours), in the transaction that journals it.
INSERT INTO answer_hours (hour, page_id, handling, entry_id, n)
VALUES (:hour, :page_id, :handling, :entry_id, 1)
ON CONFLICT (hour, page_id, handling, entry_id) DO UPDATE SET n = answer_hours.n + 1;

-- name: take_back_hour
-- A followed offer counts once, as the tap that followed it (`selected`): one less in the offer's hour, in the
-- tap's transaction.
UPDATE answer_hours SET n = n - 1
WHERE hour = :hour AND page_id = :page_id AND handling = 'did_you_mean' AND entry_id = :entry_id;

-- name: counts_by_handling
-- The hours whose start is in the window (the journal's rows are not read: they are pruned, the hours are not).
SELECT handling, sum(n) AS n FROM answer_hours
WHERE hour >= :since AND hour < :until AND (:page_id IS NULL OR page_id = :page_id)
GROUP BY handling;

-- name: entry_use
SELECT entry_id, sum(n) AS n FROM answer_hours
WHERE hour >= :since AND hour < :until AND (:page_id IS NULL OR page_id = :page_id)
  AND handling IN ('matrix', 'selected') AND entry_id <> ''
GROUP BY entry_id;

-- name: handling_hours
-- The reports' series: per hour and page, the questions by handling (none left: offers followed, taken back).
SELECT hour, page_id, handling, sum(n) AS n FROM answer_hours
WHERE hour >= :since AND hour < :until AND (:page_id IS NULL OR page_id = :page_id)
GROUP BY hour, page_id, handling
HAVING sum(n) > 0
ORDER BY hour, page_id, handling;

-- name: oldest_answer
SELECT min(at) AS at FROM answers;

-- name: prune_day
DELETE FROM answers WHERE at >= :day AND at < :next_day;

-- name: insert_group
INSERT INTO answer_groups (label, status, embedder, centroid, created_at, updated_at)
VALUES (:label, 'open', :embedder, :centroid, :now, :now)
RETURNING id;

-- name: assign_answer
UPDATE answers SET group_id = :group_id WHERE id = :id AND group_id IS NULL;

-- name: update_centroid
UPDATE answer_groups SET centroid = :centroid, embedder = :embedder, updated_at = :now WHERE id = :id;

-- name: centroids
SELECT g.id, g.embedder, g.centroid, count(a.id) AS size
FROM answer_groups g LEFT JOIN answers a ON a.group_id = g.id
GROUP BY g.id, g.embedder, g.centroid
ORDER BY g.id;

-- name: group_wording
-- A group's wordings, most asked first.
SELECT question, count(*) AS n, max(at) AS last_at FROM answers WHERE group_id = :group_id
GROUP BY question
ORDER BY n DESC, last_at DESC, question
LIMIT :limit;

-- name: list_groups
-- Groups ranked by distinct people, then the most recent; counts over the page asked for (all pages: NULL).
-- `returned`: misses of a resolved group asked after it was resolved.
SELECT g.id, g.label, g.status, g.resolved_at, g.resolved_by, g.resolved_entry_id, g.resolved_action,
       count(a.id) AS questions, count(DISTINCT a.person_key) AS people, min(a.at) AS first_at, max(a.at) AS last_at,
       sum(CASE WHEN g.status = 'resolved' AND a.at > g.resolved_at THEN 1 ELSE 0 END) AS returned
FROM answer_groups g JOIN answers a ON a.group_id = g.id
WHERE (:status = 'all' OR g.status = :status) AND (:page_id IS NULL OR a.page_id = :page_id)
  AND (:group_id IS NULL OR g.id = :group_id)
GROUP BY g.id, g.label, g.status, g.resolved_at, g.resolved_by, g.resolved_entry_id, g.resolved_action
ORDER BY people DESC, last_at DESC, g.id
LIMIT :limit OFFSET :offset;

-- name: open_groups_asked_between
-- The reports: open groups by their questions asked in [:since, :until) only (people, times, the latest), most
-- people first; the journal's rows of the period through answers_by_time, not every group's whole history.
SELECT g.id, g.label, count(*) AS questions, count(DISTINCT a.person_key) AS people, max(a.at) AS last_at
FROM answers a JOIN answer_groups g ON g.id = a.group_id
WHERE a.at >= :since AND a.at < :until AND a.group_id IS NOT NULL AND (:page_id IS NULL OR a.page_id = :page_id)
  AND g.status = 'open'
GROUP BY g.id, g.label
ORDER BY people DESC, last_at DESC, g.id
LIMIT :limit;

-- name: group_examples
SELECT question, at, page_id FROM answers
WHERE group_id = :group_id AND (:page_id IS NULL OR page_id = :page_id)
ORDER BY at DESC, id DESC
LIMIT :limit;

-- name: group_pages
SELECT DISTINCT page_id FROM answers WHERE group_id = :group_id ORDER BY page_id;

-- name: group_exists
SELECT id FROM answer_groups WHERE id = :group_id;

-- name: resolve_group
-- Only an open group: a second draft of a resolved or dismissed group changes nothing.
UPDATE answer_groups SET status = :status, resolved_at = :at, resolved_by = :by, resolved_entry_id = :entry_id,
                         resolved_action = :action, resolved_version = :version, updated_at = :at
WHERE id = :group_id AND status = 'open';

-- name: resolved_versions
-- The groups a publication resolved, with the version it made.
SELECT id, resolved_version FROM answer_groups WHERE status = 'resolved' AND resolved_version IS NOT NULL ORDER BY id;

-- name: reopen_group
UPDATE answer_groups SET status = 'open', resolved_at = NULL, resolved_by = NULL, resolved_entry_id = NULL,
                         resolved_action = NULL, resolved_version = NULL, updated_at = :at
WHERE id = :group_id AND status = 'resolved' AND resolved_version = :version;

-- name: returned_after
SELECT count(*) AS n FROM answers a JOIN answer_groups g ON g.id = a.group_id
WHERE g.id = :group_id AND g.status = 'resolved' AND a.at > g.resolved_at;
