-- The answer journal (answers/store.py): one row per customer question and how it was handled, and the groups of
-- unanswered questions ("Preguntas sin respuesta"). Times are ISO 8601 UTC text of one fixed width (text order is
-- time order). PRAGMA user_version is the schema version. People are kept only as person_key (a keyed hash).

CREATE TABLE answer_groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    label TEXT NOT NULL,                   -- the most typical wording when the group was made
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved', 'dismissed')),
    embedder TEXT NOT NULL,                -- the model the centre was computed with
    centroid TEXT NOT NULL,                -- base64 of the unit float32 centre
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    resolved_at TEXT,
    resolved_by TEXT,
    resolved_entry_id TEXT,
    resolved_action TEXT CHECK (resolved_action IN ('added_question', 'new_entry', 'dismissed'))
);

CREATE TABLE answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    page_id TEXT NOT NULL,
    person_key TEXT NOT NULL,              -- HMAC(secret, page_id:psid)[:16]: distinct people, not who they are
    question TEXT NOT NULL,
    handling TEXT NOT NULL CHECK (handling IN ('matrix', 'selected', 'did_you_mean', 'gpt', 'no_answer', 'handoff')),
    at TEXT NOT NULL,
    entry_id TEXT,
    score REAL,
    candidates_json TEXT NOT NULL DEFAULT '[]',
    reason TEXT,
    matrix_version TEXT,
    followed INTEGER NOT NULL DEFAULT 0,   -- did_you_mean: the same person tapped a candidate within 10 minutes
    group_id INTEGER REFERENCES answer_groups (id)
);
CREATE INDEX answers_by_time ON answers (at, page_id);
CREATE INDEX answers_by_person ON answers (person_key, at);
CREATE INDEX answers_by_group ON answers (group_id, at);
CREATE INDEX answers_ungrouped ON answers (at)
    WHERE group_id IS NULL AND followed = 0 AND handling IN ('no_answer', 'handoff', 'did_you_mean');
