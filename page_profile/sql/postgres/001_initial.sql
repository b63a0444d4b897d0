-- The page profiles on PostgreSQL: each page's Messenger profile as the console edited it, what was last applied to
-- Facebook (by whom, when) and Facebook's last answer. The same table as the SQLite file
-- (page_profile/sql/sqlite/001_initial.sql), with jsonb, timestamptz and boolean columns; created in the store's
-- schema (search_path).

CREATE TABLE page_profiles (
    page_id text PRIMARY KEY,
    profile_json jsonb NOT NULL,           -- Meta's shape: get_started, greeting, ice_breakers, persistent_menu
    updated_at timestamptz NOT NULL,
    updated_by text NOT NULL,
    applied_json jsonb,                    -- the profile as last applied successfully (NULL: never)
    applied_at timestamptz,
    applied_by text,
    last_attempt_at timestamptz,           -- the last "Aplicar en Facebook", successful or not
    last_attempt_by text,
    last_ok boolean,                       -- true: Facebook accepted it; false: refused or unreachable
    last_answer_json jsonb                 -- Facebook's answers, or the error (code, subcode, message, fbtrace_id)
);
