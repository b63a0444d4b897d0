-- Broadcasts ("Transmisiones", broadcasts/store.py): each broadcast, and one row per person it was planned for.
-- Times are ISO 8601 UTC text of one fixed width (text order is time order). PRAGMA user_version is the schema
-- version.

CREATE TABLE broadcasts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    page_id TEXT NOT NULL,
    name TEXT NOT NULL,
    content_json TEXT NOT NULL,            -- broadcasts.model.Content.to_dict()
    audience_json TEXT NOT NULL,           -- contacts.model.Audience.to_dict()
    promotional INTEGER NOT NULL,
    tag TEXT,
    status TEXT NOT NULL CHECK (status IN ('draft', 'scheduled', 'sending', 'done', 'cancelled')),
    send_at TEXT,                          -- scheduled for; NULL: now (once sent)
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    started_at TEXT,                       -- the runner took it (SENDING): the send slots count from here
    finished_at TEXT,
    cancelled_by TEXT,
    plan_after INTEGER NOT NULL DEFAULT 0, -- the planning cursor: the audience's contacts up to this id are planned
    plan_done INTEGER NOT NULL DEFAULT 0,  -- the whole audience is planned
    queued_count INTEGER NOT NULL DEFAULT 0  -- recipients queued so far (the next one's send slot)
);
CREATE INDEX broadcasts_by_status ON broadcasts (status, send_at);
CREATE INDEX broadcasts_by_page ON broadcasts (page_id, id);

CREATE TABLE recipients (
    broadcast_id INTEGER NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    psid TEXT NOT NULL,
    page_id TEXT NOT NULL,
    name TEXT NOT NULL,                    -- the display name when planned
    state TEXT NOT NULL CHECK (state IN ('skipped', 'queued', 'sent', 'blocked', 'failed', 'cancelled')),
    position INTEGER NOT NULL DEFAULT 0,   -- order among the queued: its send slot at the page's broadcast rate
    reason_code TEXT,                      -- why skipped/blocked/failed/cancelled
    error_code INTEGER,                    -- Meta's error code of a failure
    outbox_ids TEXT NOT NULL DEFAULT '[]', -- JSON list, one per message part
    sent_at TEXT,
    delivered_at TEXT,
    read_at TEXT,
    attempt INTEGER NOT NULL DEFAULT 0,    -- 0, then 1… per retry (part of the outbox idempotency key)
    updated_at TEXT NOT NULL,
    refreshed_at TEXT NOT NULL,            -- last read from the outbox (the oldest are read first)
    PRIMARY KEY (broadcast_id, psid)
);
CREATE INDEX recipients_by_state ON recipients (broadcast_id, state);
CREATE INDEX recipients_to_refresh ON recipients (broadcast_id, refreshed_at)
    WHERE state = 'queued' OR (state = 'sent' AND read_at IS NULL);
