-- Learning from use (issue 15): the same tables as ../sqlite/005_proposals.sql: (wording, entry) pairs proposed to
-- editors as a new question of an entry, remembered once accepted or rejected, and each person's use of a pair
-- (a tapped «¿Quisiste decir…?» candidate, or an agent's reply with the entry), pruned with the journal.

CREATE TABLE answer_proposals (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    wording text NOT NULL,
    wording_key text NOT NULL,
    entry_id text NOT NULL,
    status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'accepted', 'rejected')),
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    decided_at timestamptz,
    decided_by text,
    draft_id text,
    UNIQUE (wording_key, entry_id)
);

CREATE TABLE answer_proposal_uses (
    proposal_id bigint NOT NULL REFERENCES answer_proposals (id),
    source text NOT NULL CHECK (source IN ('tapped', 'agent')),
    answer_id bigint NOT NULL,
    page_id text NOT NULL,
    person_key text NOT NULL,
    agent text,
    at timestamptz NOT NULL,
    PRIMARY KEY (proposal_id, source, answer_id)
);
CREATE INDEX answer_proposal_uses_by_time ON answer_proposal_uses (at);
