-- The comment reply rules ("Respuestas privadas") of each page and the page's comment settings on PostgreSQL: the
-- same tables as the SQLite file (comments/sql/rules/sqlite/001_initial.sql), with timestamptz times and booleans;
-- created in the store's schema (search_path).

CREATE TABLE reply_rules (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    page_id text NOT NULL,
    name text NOT NULL,
    position integer NOT NULL,              -- the order within the page, lowest first: the first match wins
    enabled boolean NOT NULL DEFAULT true,
    posts_json text NOT NULL,
    comments_json text NOT NULL,
    reply_json text NOT NULL,
    public_replies_json text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    updated_by text NOT NULL
);
CREATE INDEX reply_rules_by_page ON reply_rules (page_id, position, id);

-- One row per page whose settings were changed; a page without a row has the defaults (comments.rules).
CREATE TABLE page_comment_settings (
    page_id text PRIMARY KEY,
    one_reply_per_person_per_post_per_day boolean NOT NULL DEFAULT true,
    knowledge_min_score double precision,   -- NULL: the knowledge matrix's own answer threshold
    updated_at timestamptz NOT NULL,
    updated_by text NOT NULL
);
