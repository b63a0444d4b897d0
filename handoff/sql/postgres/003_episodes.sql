-- Reports (issue 14): one row per handoff episode, from the pause to the resume: the same table as
-- ../sqlite/003_episodes.sql, with timestamptz times; kept by HandoffStore in the transactions that change it.

CREATE TABLE handoff_episodes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id text NOT NULL REFERENCES conversations (id),
    page_id text NOT NULL,
    user_id text NOT NULL,
    paused_at timestamptz NOT NULL,
    reason text,
    paused_by text NOT NULL,
    first_reply_at timestamptz,
    first_reply_by text,
    resumed_at timestamptz,
    closed_by text,
    assigned_to text
);
CREATE INDEX handoff_episodes_paused_at ON handoff_episodes (paused_at);
CREATE INDEX handoff_episodes_page ON handoff_episodes (page_id, paused_at);
CREATE INDEX handoff_episodes_open ON handoff_episodes (conversation_id) WHERE resumed_at IS NULL;

-- The history so far: each pause of the log up to the next resume, its first agent message and its last
-- assignment in between.
INSERT INTO handoff_episodes (conversation_id, page_id, user_id, paused_at, reason, paused_by, first_reply_at,
                              first_reply_by, resumed_at, closed_by, assigned_to)
SELECT p.conversation_id, c.page_id, c.user_id, p.at, p.reason, p.actor,
       first_reply.at, substr(first_reply.author, 7),
       r.at, r.actor,
       CASE WHEN r.id IS NULL THEN c.assigned_to
            ELSE (SELECT a.reason FROM handoff_log a
                  WHERE a.conversation_id = p.conversation_id AND a.action = 'assigned' AND a.id > p.id
                    AND a.id < r.id
                  ORDER BY a.id DESC LIMIT 1) END
FROM handoff_log p
JOIN conversations c ON c.id = p.conversation_id
LEFT JOIN handoff_log r ON r.id = (SELECT min(x.id) FROM handoff_log x
                                   WHERE x.conversation_id = p.conversation_id AND x.action = 'resumed'
                                     AND x.id > p.id)
LEFT JOIN LATERAL (SELECT m.at, m.author FROM messages m
                   WHERE m.conversation_id = p.conversation_id AND left(m.author, 6) = 'agent:' AND m.at >= p.at
                     AND (r.at IS NULL OR m.at <= r.at)
                   ORDER BY m.at, m.id LIMIT 1) AS first_reply ON true
WHERE p.action = 'paused'
ORDER BY p.id;
