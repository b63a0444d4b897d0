-- Human handoff (handoff/service.py) on PostgreSQL: who holds each conversation, the log of pauses and resumes,
-- and a local copy of the messages written while paused (the console's live view). The same tables as the SQLite
-- file (handoff/sql/sqlite/001_initial.sql), with timestamptz times; created in the store's schema (search_path).

CREATE TABLE conversations (
    id text PRIMARY KEY,  -- "<page_id>:<user_id>"
    page_id text NOT NULL,
    user_id text NOT NULL,
    state text NOT NULL CHECK (state IN ('bot', 'paused')),
    paused_reason text,
    paused_by text,
    paused_at timestamptz,
    assigned_to text,
    last_user_message_at timestamptz,
    last_message_text text,
    last_activity_at timestamptz,
    contact_name text,
    UNIQUE (page_id, user_id)
);
CREATE INDEX conversations_state ON conversations (state, last_activity_at);

CREATE TABLE handoff_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id text NOT NULL REFERENCES conversations (id),
    action text NOT NULL,  -- paused, resumed, assigned
    actor text NOT NULL,  -- "bot", "connector", "system" or an agent's username
    reason text,
    closing_note text,
    at timestamptz NOT NULL
);
CREATE INDEX handoff_log_conversation ON handoff_log (conversation_id, id);

CREATE TABLE messages (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id text NOT NULL REFERENCES conversations (id),
    author text NOT NULL,  -- "user" or "agent:<username>"
    text text NOT NULL,
    at timestamptz NOT NULL,
    outbox_id bigint  -- an agent's reply: its outbox message
);
CREATE INDEX messages_conversation ON messages (conversation_id, id);
