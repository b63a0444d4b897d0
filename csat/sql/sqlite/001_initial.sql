-- Customer satisfaction (csat/store.py): one row per rating asked after an agent closed a conversation, with what
-- became of it (sent through the outbox, refused by its policy, answered). Times are ISO 8601 UTC text of one fixed
-- width (text order is time order). PRAGMA user_version is the schema version.

CREATE TABLE csat_asks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    page_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    agent TEXT NOT NULL,                   -- who closed the conversation: the agent rated
    closed_at TEXT NOT NULL,
    asked_at TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('asking', 'sent', 'not_sent', 'answered')),
    how TEXT CHECK (how IN ('template', 'quick_replies')),
    tag TEXT,                              -- CUSTOMER_FEEDBACK after 24 hours
    outbox_id INTEGER,
    reason_code TEXT,                      -- not_sent: the policy's reason
    reason_es TEXT,
    rating INTEGER CHECK (rating BETWEEN 1 AND 5),
    comment TEXT,
    answered_at TEXT,
    answer_event_key TEXT UNIQUE,          -- the ingest journal's dedup key of the answer: recorded once
    UNIQUE (conversation_id, closed_at)    -- one ask per close, however often the close is seen
);
CREATE INDEX csat_asks_person ON csat_asks (page_id, user_id, id);
CREATE INDEX csat_asks_conversation ON csat_asks (conversation_id, id);
CREATE INDEX csat_asks_answered ON csat_asks (answered_at) WHERE rating IS NOT NULL;
