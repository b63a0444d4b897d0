-- A broadcast's cancel (cancel_pending_by_key_prefix) finds its pending messages by key prefix: LIKE 'prefix%'
-- needs text_pattern_ops whatever the database's collation.

CREATE INDEX messages_pending_by_key ON messages (idempotency_key text_pattern_ops) WHERE status = 'pending';
