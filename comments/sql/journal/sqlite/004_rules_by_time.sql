-- Reports (issue 14): each reply rule's comments of a period (`CommentJournal.rule_counts`) are read by the time they
-- were received, among the comments a rule matched only.
CREATE INDEX feed_changes_rules_by_time ON feed_changes (received_at, page_id) WHERE rule_id IS NOT NULL;
