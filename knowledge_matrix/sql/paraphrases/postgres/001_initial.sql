-- Ways of asking a chat model proposed for the matrix's entries (knowledge_matrix/paraphrase_store.py), and the jobs
-- that asked for them. Times are timestamptz. Created in the store's schema (search_path).

CREATE TABLE paraphrase_jobs (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    matrix_version TEXT NOT NULL,          -- the live version ("0004") or "draft:<id>" the entries came from
    requested_by TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'done', 'failed')),
    total_entries INTEGER NOT NULL,
    done_entries INTEGER NOT NULL DEFAULT 0,
    proposed INTEGER NOT NULL DEFAULT 0,   -- kept for review
    filtered INTEGER NOT NULL DEFAULT 0,   -- dropped before review, with their reason
    tokens INTEGER NOT NULL DEFAULT 0,     -- tokens reserved for the requests made so far (the budget's count)
    error_code TEXT,
    error_es TEXT,                         -- why it ended early, as the editor reads it
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    finished_at timestamptz
);
CREATE INDEX paraphrase_jobs_running ON paraphrase_jobs (status, id);

CREATE TABLE paraphrases (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id bigint NOT NULL REFERENCES paraphrase_jobs (id),
    matrix_version TEXT NOT NULL,
    entry_id TEXT NOT NULL,
    text TEXT NOT NULL,
    text_key TEXT NOT NULL,                -- folded (case, accents, spaces): one proposal per wording and entry, ever
    status TEXT NOT NULL CHECK (status IN ('proposed', 'accepted', 'rejected', 'filtered')),
    reason_code TEXT,                      -- filtered: why
    reason_es TEXT,
    other_entry_id TEXT,                   -- filtered as routed elsewhere: the entry the bot would answer with
    created_at timestamptz NOT NULL,
    decided_at timestamptz,
    decided_by TEXT,
    draft_id TEXT,                         -- accepted: the draft it went into
    UNIQUE (entry_id, text_key)
);
CREATE INDEX paraphrases_by_status ON paraphrases (status, entry_id, id);
