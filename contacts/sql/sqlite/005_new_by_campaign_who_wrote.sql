-- Reports (review 21, finding 6): new contacts by campaign count only the contacts who wrote to the page, so a CSV
-- import (first_seen_at = the import) is not «new contacts» on the import day. The first-seen index becomes a partial
-- one over those contacts: a range of it finds the period's, then only the contacts counted are read.
DROP INDEX contacts_by_first_seen;
CREATE INDEX contacts_who_wrote_by_first_seen ON contacts (first_seen_at, page_id, campaign)
WHERE last_user_message_at IS NOT NULL;
