-- The ingest journal on PostgreSQL (connectors/ingest_postgres.py): the SQLite journal's schema at its migration 5,
-- with timestamps as timestamptz and the journal flags as booleans.
CREATE TABLE inbound_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    dedup_key text NOT NULL UNIQUE,
    page_id text NOT NULL,
    user_id text NOT NULL,
    conversation_key text GENERATED ALWAYS AS (page_id || ':' || user_id) STORED,
    kind text NOT NULL,
    status text NOT NULL,
    event_json text NOT NULL,
    received_at timestamptz NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    finished_at timestamptz,
    window_pending boolean NOT NULL DEFAULT false,
    notice_pending boolean NOT NULL DEFAULT false,
    reverted_turns integer NOT NULL DEFAULT 0
);
CREATE INDEX inbound_events_pending ON inbound_events (id) WHERE status = 'pending';
CREATE INDEX inbound_events_pending_conversation ON inbound_events (conversation_key, id) WHERE status = 'pending';
CREATE INDEX inbound_events_conversation ON inbound_events (page_id, user_id, id);
CREATE INDEX inbound_events_user ON inbound_events (user_id, id);
CREATE INDEX inbound_events_window_pending ON inbound_events (id) WHERE window_pending;
CREATE INDEX inbound_events_notice_pending ON inbound_events (id) WHERE notice_pending;
CREATE INDEX inbound_events_received ON inbound_events (received_at);

-- The dedup keys of pruned events, kept while Meta may still redeliver them.
CREATE TABLE inbound_seen (
    dedup_key text PRIMARY KEY,
    received_at timestamptz NOT NULL
);
CREATE INDEX inbound_seen_received ON inbound_seen (received_at);

CREATE TABLE send_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    page_id text NOT NULL,
    user_id text NOT NULL,
    request_json text NOT NULL,
    status text NOT NULL,
    message_id text,
    error_code integer,
    error_message text,
    created_at timestamptz NOT NULL
);
CREATE INDEX send_log_conversation ON send_log (page_id, user_id, id);
CREATE INDEX send_log_created ON send_log (created_at);

-- Which Rasa instance processes a conversation, until when (claim_pending).
CREATE TABLE ingest_claims (
    conversation_key text PRIMARY KEY,
    owner text NOT NULL,
    lease_until timestamptz NOT NULL
);
CREATE INDEX ingest_claims_owner ON ingest_claims (owner, conversation_key);
