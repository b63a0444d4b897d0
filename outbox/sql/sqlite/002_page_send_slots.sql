-- The per-page send rate, shared by every worker on this file (outbox/rate.py): the latest send slot
-- granted per page. A worker reads it and records the next one inside one BEGIN IMMEDIATE, so two
-- workers never get the same slot.

CREATE TABLE page_send_slots (
    page_id TEXT PRIMARY KEY,
    latest_slot TEXT NOT NULL              -- UTC ISO text, as every time in this file
);
