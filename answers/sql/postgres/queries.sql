-- The answer journal's named queries (PostgreSQL, psycopg2). Parameters are %(named)s; times arrive as ISO 8601 UTC
-- text and are cast by the columns they meet. The same names as ../sqlite/queries.sql.
-- A miss: no_answer, handoff, or a did_you_mean nobody followed (no tap by the same person within 10 minutes) once
-- its 10 minutes are over (`settled`: the end of the window minus 10 minutes).

-- name: insert_answer
INSERT INTO answers (page_id, person_key, question, handling, at, entry_id, score, candidates_json, reason,
                     matrix_version)
VALUES (%(page_id)s, %(person_key)s, %(question)s, %(handling)s, %(at)s, %(entry_id)s, %(score)s, %(candidates_json)s, %(reason)s,
        %(matrix_version)s)
RETURNING id;

-- name: mark_followed
-- A tap on a "¿Quisiste decir…?" candidate: the offers the same person got in the 10 minutes before were followed.
-- Their times come back: each is taken back from its hour's did_you_mean count (take_back_hour); their wording and
-- candidates too: the wording is proposed as a question of the entry tapped (upsert_proposal).
UPDATE answers SET followed = true
WHERE person_key = %(person_key)s AND page_id = %(page_id)s AND handling = 'did_you_mean' AND NOT followed
  AND at >= %(window_start)s::timestamptz AND at <= %(at)s
RETURNING id, at, entry_id, question, candidates_json;

-- name: unanswered
SELECT id, page_id, question, at, person_key, handling FROM answers
WHERE at >= %(since)s::timestamptz AND at < %(until)s::timestamptz AND (%(page_id)s::text IS NULL OR page_id = %(page_id)s) AND question <> ''
  AND (handling IN ('no_answer', 'handoff') OR (handling = 'did_you_mean' AND NOT followed AND at <= %(settled)s::timestamptz))
ORDER BY at, id
LIMIT %(limit)s;

-- name: latest_handling
-- How the bot handled a person's latest question on a page since a time (the survey after the bot resolved a
-- conversation asks only after an answer). On answers_by_person.
SELECT handling, at FROM answers
WHERE person_key = %(person_key)s AND at >= %(since)s::timestamptz AND page_id = %(page_id)s
ORDER BY at DESC, id DESC
LIMIT 1;

-- name: ungrouped
SELECT id, page_id, question, at, person_key, handling FROM answers
WHERE group_id IS NULL AND NOT followed AND handling IN ('no_answer', 'handoff', 'did_you_mean') AND question <> ''
  AND (handling <> 'did_you_mean' OR at <= %(settled)s::timestamptz)
ORDER BY at, id
LIMIT %(limit)s;

-- name: add_hour
-- One more question in its UTC hour (answer_hours), in the transaction that journals it.
INSERT INTO answer_hours (hour, page_id, handling, entry_id, n)
VALUES (%(hour)s, %(page_id)s, %(handling)s, %(entry_id)s, 1)
ON CONFLICT (hour, page_id, handling, entry_id) DO UPDATE SET n = answer_hours.n + 1;

-- name: take_back_hour
-- A followed offer counts once, as the tap that followed it (`selected`): one less in the offer's hour, in the
-- tap's transaction.
UPDATE answer_hours SET n = n - 1
WHERE hour = %(hour)s::timestamptz AND page_id = %(page_id)s AND handling = 'did_you_mean' AND entry_id = %(entry_id)s;

-- name: add_handling_hour
-- With add_hour, in the same transaction: the hour's sum over the entries (answer_hours_by_handling).
INSERT INTO answer_hours_by_handling (hour, page_id, handling, n)
VALUES (%(hour)s, %(page_id)s, %(handling)s, 1)
ON CONFLICT (hour, page_id, handling) DO UPDATE SET n = answer_hours_by_handling.n + 1;

-- name: take_back_handling_hour
-- With take_back_hour, in the same transaction and only when it changed a row: one less in the hour's sum.
UPDATE answer_hours_by_handling SET n = n - 1
WHERE hour = %(hour)s::timestamptz AND page_id = %(page_id)s AND handling = 'did_you_mean';

-- name: counts_by_handling
-- The hours whose start is in the window, summed over the entries (answer_hours_by_handling; the journal's rows are
-- not read: they are pruned, the hours are not).
SELECT handling, sum(n) AS n FROM answer_hours_by_handling
WHERE hour >= %(since)s::timestamptz AND hour < %(until)s::timestamptz AND (%(page_id)s::text IS NULL OR page_id = %(page_id)s)
GROUP BY handling;

-- name: entry_use
SELECT entry_id, sum(n) AS n FROM answer_hours
WHERE hour >= %(since)s::timestamptz AND hour < %(until)s::timestamptz AND (%(page_id)s::text IS NULL OR page_id = %(page_id)s)
  AND handling IN ('matrix', 'selected') AND entry_id <> ''
GROUP BY entry_id;

-- name: handling_hours
-- The reports' series: per hour and page, the questions by handling (none left: offers followed, taken back).
SELECT hour, page_id, handling, sum(n) AS n FROM answer_hours
WHERE hour >= %(since)s::timestamptz AND hour < %(until)s::timestamptz AND (%(page_id)s::text IS NULL OR page_id = %(page_id)s)
GROUP BY hour, page_id, handling
HAVING sum(n) > 0
ORDER BY hour, page_id, handling;

-- name: handling_days
-- As SQLite's: the hours' sums over the entries above 0, summed per UTC date and whether the hour is at or after
-- %(cut)s.
SELECT (hour AT TIME ZONE 'UTC')::date AS utc_day, extract(hour FROM hour AT TIME ZONE 'UTC') >= %(cut)s::int AS late,
       handling, sum(n) AS n
FROM answer_hours_by_handling
WHERE hour >= %(since)s::timestamptz AND hour < %(until)s::timestamptz AND (%(page_id)s::text IS NULL OR page_id = %(page_id)s)
  AND n > 0
GROUP BY 1, 2, handling;

-- name: oldest_answer
SELECT min(at) AS at FROM answers;

-- name: prune_day
DELETE FROM answers WHERE at >= %(day)s::timestamptz AND at < %(next_day)s::timestamptz;

-- name: insert_group
INSERT INTO answer_groups (label, status, embedder, centroid, created_at, updated_at)
VALUES (%(label)s, 'open', %(embedder)s, %(centroid)s, %(now)s, %(now)s)
RETURNING id;

-- name: assign_answer
UPDATE answers SET group_id = %(group_id)s WHERE id = %(id)s AND group_id IS NULL;

-- name: update_centroid
UPDATE answer_groups SET centroid = %(centroid)s, embedder = %(embedder)s, updated_at = %(now)s WHERE id = %(id)s;

-- name: centroids
SELECT g.id, g.embedder, g.centroid, count(a.id) AS size
FROM answer_groups g LEFT JOIN answers a ON a.group_id = g.id
GROUP BY g.id, g.embedder, g.centroid
ORDER BY g.id;

-- name: group_wording
-- A group's wordings, most asked first.
SELECT question, count(*) AS n, max(at) AS last_at FROM answers WHERE group_id = %(group_id)s
GROUP BY question
ORDER BY n DESC, last_at DESC, question
LIMIT %(limit)s;

-- name: list_groups
-- Groups ranked by distinct people, then the most recent; counts over the page asked for (all pages: NULL).
-- `returned`: misses of a resolved group asked after it was resolved.
SELECT g.id, g.label, g.status, g.resolved_at, g.resolved_by, g.resolved_entry_id, g.resolved_action,
       count(a.id) AS questions, count(DISTINCT a.person_key) AS people, min(a.at) AS first_at, max(a.at) AS last_at,
       sum(CASE WHEN g.status = 'resolved' AND a.at > g.resolved_at THEN 1 ELSE 0 END) AS returned
FROM answer_groups g JOIN answers a ON a.group_id = g.id
WHERE (%(status)s::text = 'all' OR g.status = %(status)s) AND (%(page_id)s::text IS NULL OR a.page_id = %(page_id)s)
  AND (%(group_id)s::bigint IS NULL OR g.id = %(group_id)s)
GROUP BY g.id, g.label, g.status, g.resolved_at, g.resolved_by, g.resolved_entry_id, g.resolved_action
ORDER BY people DESC, last_at DESC, g.id
LIMIT %(limit)s OFFSET %(offset)s;

-- name: open_groups_asked_between
-- The reports: open groups by their questions asked in [since, until) only (people, times, the latest), most
-- people first; the journal's rows of the period through answers_by_time, not every group's whole history.
SELECT g.id, g.label, count(*) AS questions, count(DISTINCT a.person_key) AS people, max(a.at) AS last_at
FROM answers a JOIN answer_groups g ON g.id = a.group_id
WHERE a.at >= %(since)s::timestamptz AND a.at < %(until)s::timestamptz AND a.group_id IS NOT NULL
  AND (%(page_id)s::text IS NULL OR a.page_id = %(page_id)s) AND g.status = 'open'
GROUP BY g.id, g.label
ORDER BY people DESC, last_at DESC, g.id
LIMIT %(limit)s;

-- name: group_examples
SELECT question, at, page_id FROM answers
WHERE group_id = %(group_id)s AND (%(page_id)s::text IS NULL OR page_id = %(page_id)s)
ORDER BY at DESC, id DESC
LIMIT %(limit)s;

-- name: group_pages
SELECT DISTINCT page_id FROM answers WHERE group_id = %(group_id)s ORDER BY page_id;

-- name: group_exists
SELECT id FROM answer_groups WHERE id = %(group_id)s;

-- name: resolve_group
-- Only an open group: a second draft of a resolved or dismissed group changes nothing.
UPDATE answer_groups SET status = %(status)s, resolved_at = %(at)s, resolved_by = %(by)s, resolved_entry_id = %(entry_id)s,
                         resolved_action = %(action)s, resolved_version = %(version)s, updated_at = %(at)s
WHERE id = %(group_id)s AND status = 'open';

-- name: resolved_versions
-- The groups a publication resolved, with the version it made.
SELECT id, resolved_version FROM answer_groups WHERE status = 'resolved' AND resolved_version IS NOT NULL ORDER BY id;

-- name: reopen_group
UPDATE answer_groups SET status = 'open', resolved_at = NULL, resolved_by = NULL, resolved_entry_id = NULL,
                         resolved_action = NULL, resolved_version = NULL, updated_at = %(at)s
WHERE id = %(group_id)s AND status = 'resolved' AND resolved_version = %(version)s;

-- name: returned_after
SELECT count(*) AS n FROM answers a JOIN answer_groups g ON g.id = a.group_id
WHERE g.id = %(group_id)s AND g.status = 'resolved' AND a.at > g.resolved_at;

-- Learning from use (005_proposals.sql): (wording, entry) pairs proposed to editors.

-- name: upsert_proposal
-- The pair's proposal, made on its first use; an accepted or rejected pair comes back with its status (the use is
-- then not added: it is never proposed again).
INSERT INTO answer_proposals (wording, wording_key, entry_id, status, created_at, updated_at)
VALUES (%(wording)s, %(wording_key)s, %(entry_id)s, 'open', %(at)s, %(at)s)
ON CONFLICT (wording_key, entry_id) DO UPDATE SET wording_key = excluded.wording_key
RETURNING id, status;

-- name: add_proposal_use
-- One person's use of a pair; the same journal row counts once per source.
INSERT INTO answer_proposal_uses (proposal_id, source, answer_id, page_id, person_key, agent, at)
VALUES (%(proposal_id)s, %(source)s, %(answer_id)s, %(page_id)s, %(person_key)s, %(agent)s, %(at)s)
ON CONFLICT (proposal_id, source, answer_id) DO NOTHING;

-- name: latest_miss
-- The person's latest unanswered question on a page in [since, until] (what an agent's reply with an entry answers).
-- On answers_by_person.
SELECT id, question, at FROM answers
WHERE person_key = %(person_key)s AND page_id = %(page_id)s AND at >= %(since)s::timestamptz
  AND at <= %(until)s::timestamptz AND question <> ''
  AND (handling IN ('no_answer', 'handoff') OR (handling = 'did_you_mean' AND NOT followed))
ORDER BY at DESC, id DESC
LIMIT 1;

-- name: list_proposals
-- Proposals with `status` ('all': any; one by `proposal_id`), most people first. An open proposal whose uses were all
-- pruned is not listed (its counts cover the days the journal keeps, as the groups' do).
SELECT p.id, p.wording, p.entry_id, p.status, p.decided_at, p.decided_by, p.draft_id,
       count(u.proposal_id) AS uses, count(DISTINCT u.person_key) AS people,
       sum(CASE WHEN u.source = 'tapped' THEN 1 ELSE 0 END) AS tapped,
       sum(CASE WHEN u.source = 'agent' THEN 1 ELSE 0 END) AS agent,
       min(u.at) AS first_at, max(u.at) AS last_at
FROM answer_proposals p LEFT JOIN answer_proposal_uses u ON u.proposal_id = p.id
WHERE (%(status)s::text = 'all' OR p.status = %(status)s) AND (%(proposal_id)s::bigint IS NULL OR p.id = %(proposal_id)s)
GROUP BY p.id, p.wording, p.entry_id, p.status, p.decided_at, p.decided_by, p.draft_id
HAVING p.status <> 'open' OR count(u.proposal_id) > 0 OR %(proposal_id)s::bigint IS NOT NULL
ORDER BY people DESC, last_at DESC NULLS LAST, p.id
LIMIT %(limit)s;

-- name: accept_proposal
-- Accepted again (its draft was not published): a new draft.
UPDATE answer_proposals SET status = 'accepted', decided_at = %(at)s, decided_by = %(by)s, draft_id = %(draft_id)s,
                            updated_at = %(at)s
WHERE id = %(proposal_id)s AND status IN ('open', 'accepted');

-- name: reject_proposal
UPDATE answer_proposals SET status = 'rejected', decided_at = %(at)s, decided_by = %(by)s, updated_at = %(at)s
WHERE id = %(proposal_id)s AND status = 'open';

-- name: proposal_exists
SELECT id, status FROM answer_proposals WHERE id = %(proposal_id)s;

-- name: prune_proposal_uses
DELETE FROM answer_proposal_uses WHERE at < %(before)s::timestamptz;

-- name: prune_empty_proposals
-- An open proposal nobody's use is kept for any more; decided ones stay (a decided pair is never proposed again).
DELETE FROM answer_proposals
WHERE status = 'open' AND NOT EXISTS (SELECT 1 FROM answer_proposal_uses WHERE proposal_id = answer_proposals.id);
