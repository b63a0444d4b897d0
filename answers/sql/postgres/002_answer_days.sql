-- Retention (ANSWERS_RETENTION_DAYS): the same table as ../sqlite/002_answer_days.sql. Journal rows older than the
-- retention are added up here a UTC day at a time, then deleted (`AnswersStore.prune`).

CREATE TABLE answer_days (
    day timestamptz NOT NULL,
    page_id text NOT NULL,
    handling text NOT NULL,
    entry_id text NOT NULL DEFAULT '',
    n bigint NOT NULL,
    PRIMARY KEY (day, page_id, handling, entry_id)
);
