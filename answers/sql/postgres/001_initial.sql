-- The answer journal on PostgreSQL: the same tables as the SQLite file (answers/sql/sqlite/001_initial.sql), with
-- timestamptz times and a boolean `followed`; created in the store's schema (search_path).

CREATE TABLE answer_groups (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    label text NOT NULL,
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved', 'dismissed')),
    embedder text NOT NULL,
    centroid text NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    resolved_at timestamptz,
    resolved_by text,
    resolved_entry_id text,
    resolved_action text CHECK (resolved_action IN ('added_question', 'new_entry', 'dismissed'))
);

CREATE TABLE answers (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    page_id text NOT NULL,
    person_key text NOT NULL,
    question text NOT NULL,
    handling text NOT NULL CHECK (handling IN ('matrix', 'selected', 'did_you_mean', 'gpt', 'no_answer', 'handoff')),
    at timestamptz NOT NULL,
    entry_id text,
    score double precision,
    candidates_json text NOT NULL DEFAULT '[]',
    reason text,
    matrix_version text,
    followed boolean NOT NULL DEFAULT false,
    group_id bigint REFERENCES answer_groups (id)
);
CREATE INDEX answers_by_time ON answers (at, page_id);
CREATE INDEX answers_by_person ON answers (person_key, at);
CREATE INDEX answers_by_group ON answers (group_id, at);
CREATE INDEX answers_ungrouped ON answers (at)
    WHERE group_id IS NULL AND NOT followed AND handling IN ('no_answer', 'handoff', 'did_you_mean');
