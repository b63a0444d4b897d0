-- When an agent last opened each conversation (its page or its API): the inbox shows a conversation as unread when
-- the person wrote after that. One row per conversation (any agent's look counts), not per agent.
CREATE TABLE conversation_reads (
    conversation_id TEXT PRIMARY KEY,      -- "<page_id>:<psid>"
    read_at TEXT NOT NULL,
    read_by TEXT NOT NULL
);
