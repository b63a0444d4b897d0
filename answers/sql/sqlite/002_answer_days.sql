-- Retention (ANSWERS_RETENTION_DAYS): journal rows older than the retention are deleted by `AnswersStore.prune`,
-- a UTC day at a time, after they are added up here, so the counts by handling and by entry stay for any period.
-- No question text and no person: a day, a page, how it was handled, the entry (empty when none), how many.

CREATE TABLE answer_days (
    day TEXT NOT NULL,                     -- the UTC day's midnight, stored as the journal's times are
    page_id TEXT NOT NULL,
    handling TEXT NOT NULL,
    entry_id TEXT NOT NULL DEFAULT '',
    n INTEGER NOT NULL,
    PRIMARY KEY (day, page_id, handling, entry_id)
);
