-- Reports (issue 14): the same as ../sqlite/006_answer_hours_by_handling.sql: answer_hours summed over the entries
-- (hour × page × handling), kept by AnswersStore.record in the same transaction as answer_hours, read for the
-- questions per day and the totals by handling; and answer_hours' range scans by hour for the entries' use served by
-- the index alone where the table's pages are all-visible.
CREATE TABLE answer_hours_by_handling (
    hour timestamptz NOT NULL,
    page_id text NOT NULL,
    handling text NOT NULL,
    n bigint NOT NULL,
    PRIMARY KEY (hour, page_id, handling)
);

INSERT INTO answer_hours_by_handling (hour, page_id, handling, n)
SELECT hour, page_id, handling, sum(n) FROM answer_hours GROUP BY hour, page_id, handling;

CREATE INDEX answer_hours_cover ON answer_hours (hour, page_id, handling, entry_id) INCLUDE (n);
