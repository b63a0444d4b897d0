-- m.me links (links/store.py): the links a page shares (a QR code prints one), the referrals conversations arrived
-- by, and each page's username for the links' URLs. Times are ISO 8601 UTC text of one fixed width (text order is
-- time order). PRAGMA user_version is the schema version.

CREATE TABLE links (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    page_id TEXT NOT NULL,
    name TEXT NOT NULL,                    -- what the console shows: "Llegó por el enlace «name»"
    ref TEXT NOT NULL,                     -- https://m.me/<page>?ref=<ref>
    start_json TEXT,                       -- {"intent": …} or {"entry_id": …}; NULL: the referral only records
    enabled INTEGER NOT NULL DEFAULT 1,    -- switched off: referrals still recorded, nothing started
    created_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    UNIQUE (page_id, ref)
);

-- One row per referral Meta delivered (an m.me link or QR code opened, an ad clicked), once per webhook event.
CREATE TABLE referrals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    event_key TEXT NOT NULL UNIQUE,        -- the ingest journal's dedup key: a redelivery or replay records nothing
    page_id TEXT NOT NULL,
    psid TEXT NOT NULL,
    ref TEXT NOT NULL,
    link_id INTEGER REFERENCES links (id),  -- NULL: a ref no link of ours has (an ad's, another tool's)
    source TEXT NOT NULL,                  -- SHORTLINK (m.me, QR), ADS, …
    via TEXT NOT NULL CHECK (via IN ('referral', 'postback', 'message')),
    ad_id TEXT,
    at TEXT NOT NULL
);
CREATE INDEX referrals_by_conversation ON referrals (page_id, psid, at);
CREATE INDEX referrals_by_link ON referrals (link_id, psid);

CREATE TABLE page_usernames (
    page_id TEXT PRIMARY KEY,
    username TEXT NOT NULL,                -- facebook.com/<username>: m.me/<username> reads better than the id
    updated_at TEXT NOT NULL
);
