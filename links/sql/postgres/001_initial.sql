-- m.me links on PostgreSQL: the same tables as the SQLite file (links/sql/sqlite/001_initial.sql), with timestamptz
-- times and a boolean `enabled`; created in the store's schema (search_path).

CREATE TABLE links (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    page_id text NOT NULL,
    name text NOT NULL,                    -- what the console shows: "Llegó por el enlace «name»"
    ref text NOT NULL,                     -- https://m.me/<page>?ref=<ref>
    start_json text,                       -- {"intent": …} or {"entry_id": …}; NULL: the referral only records
    enabled boolean NOT NULL DEFAULT true, -- switched off: referrals still recorded, nothing started
    created_at timestamptz NOT NULL,
    created_by text NOT NULL,
    updated_at timestamptz NOT NULL,
    updated_by text NOT NULL,
    UNIQUE (page_id, ref)
);

-- One row per referral Meta delivered (an m.me link or QR code opened, an ad clicked), once per webhook event.
CREATE TABLE referrals (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_key text NOT NULL UNIQUE,        -- the ingest journal's dedup key: a redelivery or replay records nothing
    page_id text NOT NULL,
    psid text NOT NULL,
    ref text NOT NULL,
    link_id bigint REFERENCES links (id),  -- NULL: a ref no link of ours has (an ad's, another tool's)
    source text NOT NULL,                  -- SHORTLINK (m.me, QR), ADS, …
    via text NOT NULL CHECK (via IN ('referral', 'postback', 'message')),
    ad_id text,
    at timestamptz NOT NULL
);
CREATE INDEX referrals_by_conversation ON referrals (page_id, psid, at);
CREATE INDEX referrals_by_link ON referrals (link_id, psid);

CREATE TABLE page_usernames (
    page_id text PRIMARY KEY,
    username text NOT NULL,                -- facebook.com/<username>: m.me/<username> reads better than the id
    updated_at timestamptz NOT NULL
);
