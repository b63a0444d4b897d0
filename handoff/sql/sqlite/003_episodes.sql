-- Reports (issue 14): one row per handoff episode, from the pause to the resume, kept by HandoffStore in the same
-- transaction as the pause, the first reply of a person of the team (the console or the Page inbox), the assignment
-- and the resume; so waiting times are read per episode, never recomputed from the log. reason NULL: Rasa paused
-- and the app learnt of it from the connector; closed_by "system": the idle auto-resume.

CREATE TABLE handoff_episodes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id TEXT NOT NULL REFERENCES conversations (id),
    page_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    paused_at TEXT NOT NULL,
    reason TEXT,
    paused_by TEXT NOT NULL,
    first_reply_at TEXT,                  -- the first message of a person of the team after the pause
    first_reply_by TEXT,                  -- their username (the author without "agent:")
    resumed_at TEXT,                      -- NULL: still open
    closed_by TEXT,
    assigned_to TEXT                      -- the episode's assignment (the latest one while it was open)
);
CREATE INDEX handoff_episodes_paused_at ON handoff_episodes (paused_at);
CREATE INDEX handoff_episodes_page ON handoff_episodes (page_id, paused_at);
CREATE INDEX handoff_episodes_open ON handoff_episodes (conversation_id) WHERE resumed_at IS NULL;

-- The history so far: each pause of the log up to the next resume (pauses and resumes alternate: each is logged
-- only when the state changes), its first agent message and its last assignment in between.
INSERT INTO handoff_episodes (conversation_id, page_id, user_id, paused_at, reason, paused_by, first_reply_at,
                              first_reply_by, resumed_at, closed_by, assigned_to)
SELECT p.conversation_id, c.page_id, c.user_id, p.at, p.reason, p.actor,
       (SELECT m.at FROM messages m
        WHERE m.conversation_id = p.conversation_id AND substr(m.author, 1, 6) = 'agent:' AND m.at >= p.at
          AND (r.at IS NULL OR m.at <= r.at)
        ORDER BY m.at, m.id LIMIT 1),
       (SELECT substr(m.author, 7) FROM messages m
        WHERE m.conversation_id = p.conversation_id AND substr(m.author, 1, 6) = 'agent:' AND m.at >= p.at
          AND (r.at IS NULL OR m.at <= r.at)
        ORDER BY m.at, m.id LIMIT 1),
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
WHERE p.action = 'paused'
ORDER BY p.id;
