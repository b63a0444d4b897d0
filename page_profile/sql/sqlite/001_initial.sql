-- The page profiles' own SQLite file (<data_dir>/page_profile.sqlite3): each page's Messenger profile as the console
-- edited it, what was last applied to Facebook (by whom, when) and Facebook's last answer. Times are UTC ISO-8601
-- text with microseconds, fixed width. PRAGMA user_version is the schema version.

CREATE TABLE page_profiles (
    page_id TEXT PRIMARY KEY,
    profile_json TEXT NOT NULL,            -- Meta's shape: get_started, greeting, ice_breakers, persistent_menu
    updated_at TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    applied_json TEXT,                     -- the profile as last applied successfully (NULL: never)
    applied_at TEXT,
    applied_by TEXT,
    last_attempt_at TEXT,                  -- the last "Aplicar en Facebook", successful or not
    last_attempt_by TEXT,
    last_ok INTEGER,                       -- 1: Facebook accepted it; 0: refused or unreachable
    last_answer_json TEXT                  -- Facebook's answers, or the error (code, subcode, message, fbtrace_id)
);
