-- The per-page send rate, shared by every worker on this database (outbox/rate.py): the latest send
-- slot granted per page. A reservation locks the page's row until it commits (lock_send_slot), so
-- reservations of one page are serialized and two workers never get the same slot.

CREATE TABLE page_send_slots (
    page_id text PRIMARY KEY,
    latest_slot timestamptz                -- NULL: the row was created by a reservation not granted
);
