-- Issue 14 (reports): the broadcasts that started in a period, read by start time rather than by paging the newest.
CREATE INDEX broadcasts_by_start ON broadcasts (started_at) WHERE started_at IS NOT NULL;
