-- Reports (issue 14): the handled questions counted per UTC hour, page, handling and entry ('' when none), one more
-- in the same transaction as each journal row (`AnswersStore.record`). The counts by handling and by entry are read
-- here only: a year is at most 8,760 hours per series, and they outlive the journal's retention (`prune` deletes
-- questions, never these), so answer_days (their daily sums, kept by the old prune) is folded in and dropped.

CREATE TABLE answer_hours (
    hour TEXT NOT NULL,                    -- the UTC hour's start, stored as the journal's times are
    page_id TEXT NOT NULL,
    handling TEXT NOT NULL,
    entry_id TEXT NOT NULL DEFAULT '',
    n INTEGER NOT NULL,
    PRIMARY KEY (hour, page_id, handling, entry_id)
);

-- The journal's rows so far (times are fixed-width ISO 8601 UTC text: the first 13 characters are the hour) and the
-- days pruned already (a day's sums at its midnight hour). A followed "¿Quisiste decir…?" counts once, as the tap
-- that followed it (`selected`), as `AnswersStore.record` counts it from now on; the days pruned already cannot be
-- told apart (answer_days kept no `followed`), so their followed offers stay counted as did_you_mean.
INSERT INTO answer_hours (hour, page_id, handling, entry_id, n)
SELECT substr(at, 1, 13) || ':00:00.000000+00:00', page_id, handling, COALESCE(entry_id, ''), count(*) FROM answers
WHERE NOT (handling = 'did_you_mean' AND followed <> 0)
GROUP BY substr(at, 1, 13), page_id, handling, COALESCE(entry_id, '');

INSERT INTO answer_hours (hour, page_id, handling, entry_id, n)
SELECT day, page_id, handling, entry_id, n FROM answer_days WHERE true
ON CONFLICT (hour, page_id, handling, entry_id) DO UPDATE SET n = answer_hours.n + excluded.n;

DROP TABLE answer_days;
