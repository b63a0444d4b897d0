-- Human handoff (handoff/service.py): who holds each conversation, the log of pauses and resumes,
-- and a local copy of the messages written while paused (the console's live view).
-- Times are ISO 8601 UTC text of one fixed width, so they compare as text.

CREATE TABLE conversations (
    id TEXT PRIMARY KEY,  -- "<page_id>:<user_id>"
    page_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('bot', 'paused')),
    paused_reason TEXT,
    paused_by TEXT,
    paused_at TEXT,
    assigned_to TEXT,
    last_user_message_at TEXT,
    last_message_text TEXT,
    last_activity_at TEXT,
    contact_name TEXT,
    UNIQUE (page_id, user_id)
);
CREATE INDEX conversations_state ON conversations (state, last_activity_at);

CREATE TABLE handoff_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    action TEXT NOT NULL,  -- paused, resumed, assigned
    actor TEXT NOT NULL,  -- "bot", "connector", "system" or an agent's username
    reason TEXT,
    closing_note TEXT,
    at TEXT NOT NULL
);
CREATE INDEX handoff_log_conversation ON handoff_log (conversation_id, id);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    author TEXT NOT NULL,  -- "user" or "agent:<username>"
    text TEXT NOT NULL,
    at TEXT NOT NULL,
    outbox_id INTEGER  -- an agent's reply: its outbox message
);
CREATE INDEX messages_conversation ON messages (conversation_id, id);
