-- Broadcasts on PostgreSQL: the same tables as the SQLite file (broadcasts/sql/sqlite/001_initial.sql), with
-- timestamptz times and booleans; created in the store's schema (search_path).

CREATE TABLE broadcasts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    page_id text NOT NULL,
    name text NOT NULL,
    content_json text NOT NULL,            -- broadcasts.model.Content.to_dict()
    audience_json text NOT NULL,           -- contacts.model.Audience.to_dict()
    promotional boolean NOT NULL,
    tag text,
    status text NOT NULL CHECK (status IN ('draft', 'scheduled', 'sending', 'done', 'cancelled')),
    send_at timestamptz,                   -- scheduled for; NULL: now (once sent)
    created_by text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    started_at timestamptz,                -- the runner took it (SENDING): the send slots count from here
    finished_at timestamptz,
    cancelled_by text,
    plan_after bigint NOT NULL DEFAULT 0,  -- the planning cursor: the audience's contacts up to this id are planned
    plan_done boolean NOT NULL DEFAULT false,  -- the whole audience is planned
    queued_count integer NOT NULL DEFAULT 0    -- recipients queued so far (the next one's send slot)
);
CREATE INDEX broadcasts_by_status ON broadcasts (status, send_at);
CREATE INDEX broadcasts_by_page ON broadcasts (page_id, id);

CREATE TABLE recipients (
    broadcast_id bigint NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    psid text NOT NULL,
    page_id text NOT NULL,
    name text NOT NULL,                    -- the display name when planned
    state text NOT NULL CHECK (state IN ('skipped', 'queued', 'sent', 'blocked', 'failed', 'cancelled')),
    position integer NOT NULL DEFAULT 0,   -- order among the queued: its send slot at the page's broadcast rate
    reason_code text,                      -- why skipped/blocked/failed/cancelled
    error_code integer,                    -- Meta's error code of a failure
    outbox_ids text NOT NULL DEFAULT '[]', -- JSON list, one per message part
    sent_at timestamptz,
    delivered_at timestamptz,
    read_at timestamptz,
    attempt integer NOT NULL DEFAULT 0,    -- 0, then 1… per retry (part of the outbox idempotency key)
    updated_at timestamptz NOT NULL,
    refreshed_at timestamptz NOT NULL,     -- last read from the outbox (the oldest are read first)
    PRIMARY KEY (broadcast_id, psid)
);
CREATE INDEX recipients_by_state ON recipients (broadcast_id, state);
CREATE INDEX recipients_to_refresh ON recipients (broadcast_id, refreshed_at)
    WHERE state = 'queued' OR (state = 'sent' AND read_at IS NULL);
