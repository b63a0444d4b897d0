"""New contacts by campaign for the reports (issue 14): the contacts first seen in a period, by the campaign they
first came by, on a real SQLite file and a PostgreSQL schema of the test's own (this folder's `store` fixture;
PostgreSQL missing → skipped, failed with REQUIRE_SERVICES=1)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from contacts.store import ContactsStore

NOW = datetime(2026, 11, 30, 15, 0, tzinfo=timezone.utc)
PAGE, OTHER_PAGE = "100000000000001", "100000000000002"
DAY = timedelta(days=1)


def later(**span: float) -> datetime:
    return NOW + timedelta(**span)


def test_new_contacts_are_counted_by_their_first_sight_and_first_campaign(store: ContactsStore) -> None:
    store.upsert_seen(PAGE, "1001", NOW, campaign="verano")
    store.upsert_seen(PAGE, "1001", later(hours=1), campaign="invierno")  # the first campaign stays; not new again
    store.upsert_seen(PAGE, "1002", later(minutes=5), campaign="verano")
    store.upsert_seen(PAGE, "1003", later(minutes=6))
    store.upsert_seen(PAGE, "1004", later(minutes=7), campaign="ad:120000000000001")
    store.upsert_seen(OTHER_PAGE, "2001", later(minutes=8), campaign="verano")
    store.upsert_seen(PAGE, "1005", later(days=1))  # the next day
    assert store.new_by_campaign(None, NOW, NOW + DAY) == {"verano": 3, None: 1, "ad:120000000000001": 1}
    assert store.new_by_campaign(PAGE, NOW, NOW + DAY) == {"verano": 2, None: 1, "ad:120000000000001": 1}
    assert store.new_by_campaign(PAGE, NOW + DAY, NOW + 2 * DAY) == {None: 1}, "since inclusive, until not"
    assert store.new_by_campaign(OTHER_PAGE, NOW - DAY, NOW) == {}


def test_a_message_older_than_the_first_sight_moves_it(store: ContactsStore) -> None:
    store.upsert_seen(PAGE, "1001", NOW + DAY)
    store.upsert_seen(PAGE, "1001", NOW)  # a late delivery of an earlier message
    assert store.new_by_campaign(PAGE, NOW, NOW + DAY) == {None: 1}
    assert store.new_by_campaign(PAGE, NOW + DAY, NOW + 2 * DAY) == {}


def test_the_count_reads_the_first_sight_index_only(url: str, store: ContactsStore) -> None:
    if not url.startswith("sqlite:///"):
        pytest.skip("SQLite's plan (PostgreSQL plans by its statistics)")
    with store._db.write() as conn:
        for page_id in (PAGE, None):
            plan = [str(tuple(row)) for row in conn.execute(
                "EXPLAIN QUERY PLAN " + store._db.queries["new_by_campaign"],
                {"page_id": page_id, "since": "2026", "until": "2027"}).fetchall()]
            # The partial index of the contacts who wrote: a range of it, then only the rows counted are read.
            assert any("USING INDEX contacts_who_wrote_by_first_seen (first_seen_at>? AND first_seen_at<?)" in step
                       for step in plan), plan


def test_a_contact_imported_from_a_file_is_not_new_until_it_writes(store: ContactsStore) -> None:
    """Review 21, finding 6: a CSV import (first seen = the import) was counted as «(sin campaña)» new contacts."""
    for n in range(3):
        store.import_contact(PAGE, f"300{n}", f"Importado {n}", None, ["vip"], {}, NOW)
    store.upsert_seen(PAGE, "1001", later(minutes=5), campaign="verano")
    assert store.new_by_campaign(PAGE, NOW, NOW + DAY) == {"verano": 1}
    store.upsert_seen(PAGE, "3000", later(hours=2))  # an imported contact writes: they count from their first sight
    assert store.new_by_campaign(None, NOW, NOW + DAY) == {"verano": 1, None: 1}
