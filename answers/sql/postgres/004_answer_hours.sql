-- Reports (issue 14): the same table as ../sqlite/004_answer_hours.sql: the handled questions counted per UTC hour,
-- page, handling and entry ('' when none), one more with each journal row; answer_days folded in and dropped. A
-- followed "¿Quisiste decir…?" counts once, as its tap (`selected`); answer_days' followed offers cannot be told apart.

CREATE TABLE answer_hours (
    hour timestamptz NOT NULL,
    page_id text NOT NULL,
    handling text NOT NULL,
    entry_id text NOT NULL DEFAULT '',
    n bigint NOT NULL,
    PRIMARY KEY (hour, page_id, handling, entry_id)
);

INSERT INTO answer_hours (hour, page_id, handling, entry_id, n)
SELECT date_trunc('hour', at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', page_id, handling, COALESCE(entry_id, ''),
       count(*)
FROM answers
WHERE NOT (handling = 'did_you_mean' AND followed)
GROUP BY 1, page_id, handling, COALESCE(entry_id, '');

INSERT INTO answer_hours (hour, page_id, handling, entry_id, n)
SELECT day, page_id, handling, entry_id, n FROM answer_days
ON CONFLICT (hour, page_id, handling, entry_id) DO UPDATE SET n = answer_hours.n + excluded.n;

DROP TABLE answer_days;
