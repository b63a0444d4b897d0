-- Learning from use (issue 15): a customer's wording proposed to editors as a new question of an entry, never applied
-- silently. A proposal is one (wording, entry) pair, the wording as kept in the journal (masked) and its
-- `wording_key` (case, accents, punctuation and spacing folded: answers.grouping.wording_key); an editor accepts it
-- (a draft with the question added) or rejects it, and the pair is remembered either way: it is never proposed again.
-- Each use is a person who asked that way and was answered with that entry: by tapping it in «¿Quisiste decir…?»
-- (`tapped`, the offer's journal row) or by an agent's reply with it (`agent`, the person's unanswered question's
-- row). Uses are journal data: kept as long as the journal (`AnswersStore.prune`), so the counts cover the days kept.

CREATE TABLE answer_proposals (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    wording TEXT NOT NULL,                 -- as the first person wrote it (masked as the journal masks questions)
    wording_key TEXT NOT NULL,
    entry_id TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'accepted', 'rejected')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    decided_at TEXT,
    decided_by TEXT,
    draft_id TEXT,                         -- accepted: the draft made with the question added
    UNIQUE (wording_key, entry_id)
);

CREATE TABLE answer_proposal_uses (
    proposal_id INTEGER NOT NULL REFERENCES answer_proposals (id),
    source TEXT NOT NULL CHECK (source IN ('tapped', 'agent')),
    answer_id INTEGER NOT NULL,            -- the journal row of the wording (no foreign key: the journal is pruned)
    page_id TEXT NOT NULL,
    person_key TEXT NOT NULL,
    agent TEXT,                            -- agent: who replied with the entry
    at TEXT NOT NULL,
    PRIMARY KEY (proposal_id, source, answer_id)
);
CREATE INDEX answer_proposal_uses_by_time ON answer_proposal_uses (at);
