-- Reports (issue 14): new contacts of a period by campaign (`ContactsStore.new_by_campaign`) read the contacts first
-- seen in it through this index alone (it holds the page and the campaign too), never the whole table.
CREATE INDEX contacts_by_first_seen ON contacts (first_seen_at, page_id, campaign);
