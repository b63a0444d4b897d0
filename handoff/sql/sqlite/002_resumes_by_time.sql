-- Customer satisfaction's catch-up reads the resumes of the last hour every minute (queries.sql closes_since):
-- an index on their time, so that read does not scan the whole log as it grows.
CREATE INDEX handoff_log_resumed_at ON handoff_log (at) WHERE action = 'resumed';
