-- Issue 13 review: one send rate per page for every broadcast (page_slots), one runner per broadcast at a time
-- (lease_owner, lease_until), and the parts of a message a person already got (sent_parts: never sent again by a
-- retry).

CREATE TABLE page_slots (
    page_id TEXT PRIMARY KEY,
    next_at TEXT NOT NULL                  -- the page's next free broadcast send slot
);

ALTER TABLE broadcasts ADD COLUMN lease_owner TEXT;   -- the runner working on it (an app process)
ALTER TABLE broadcasts ADD COLUMN lease_until TEXT;   -- until when; after that another runner may take it

ALTER TABLE recipients ADD COLUMN sent_parts TEXT NOT NULL DEFAULT '{}';  -- JSON {part: outbox id} of parts SENT
