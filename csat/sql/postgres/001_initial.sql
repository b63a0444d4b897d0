-- Customer satisfaction on PostgreSQL: the same table as the SQLite file (csat/sql/sqlite/001_initial.sql), with
-- timestamptz times; created in the store's schema (search_path).

CREATE TABLE csat_asks (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    page_id text NOT NULL,
    user_id text NOT NULL,
    conversation_id text NOT NULL,
    agent text NOT NULL,
    closed_at timestamptz NOT NULL,
    asked_at timestamptz NOT NULL,
    status text NOT NULL CHECK (status IN ('asking', 'sent', 'not_sent', 'answered')),
    how text CHECK (how IN ('template', 'quick_replies')),
    tag text,
    outbox_id bigint,
    reason_code text,
    reason_es text,
    rating integer CHECK (rating BETWEEN 1 AND 5),
    comment text,
    answered_at timestamptz,
    answer_event_key text UNIQUE,
    UNIQUE (conversation_id, closed_at)
);
CREATE INDEX csat_asks_person ON csat_asks (page_id, user_id, id);
CREATE INDEX csat_asks_conversation ON csat_asks (conversation_id, id);
CREATE INDEX csat_asks_answered ON csat_asks (answered_at) WHERE rating IS NOT NULL;
