"""`CsatStore.ask_of_close`: the rounds of the survey after the bot see a conversation every minute for an hour and
read whether its ask was made, without taking the store's write lock. On a real SQLite file and a PostgreSQL schema
of the test's own (PostgreSQL missing → skipped, failed with REQUIRE_SERVICES=1).

Would catch: another close's ask (another time or conversation) read as this one's, a time read in another zone."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from csat.model import BOT_AGENT
from csat.store import CsatStore, open_csat_store
from tests.support.postgres import store_fixture, url_fixture

PAGE, USER = "100000000000001", "2000000000000001"
CONVERSATION = f"{PAGE}:{USER}"
LAST = datetime(2026, 11, 30, 15, 0, 0, 123456, tzinfo=timezone.utc)

url = url_fixture("csat")
store = store_fixture(open_csat_store)


def test_the_ask_of_a_close_or_none(store: CsatStore) -> None:
    assert store.ask_of_close(CONVERSATION, LAST) is None
    made, created = store.create_ask(PAGE, USER, CONVERSATION, BOT_AGENT, LAST, LAST + timedelta(minutes=31),
                                     closed_by=BOT_AGENT)
    assert created and made is not None

    found = store.ask_of_close(CONVERSATION, LAST.astimezone(timezone(timedelta(hours=-5))))

    assert found == made
    assert store.ask_of_close(CONVERSATION, LAST + timedelta(microseconds=1)) is None
    assert store.ask_of_close(f"{PAGE}:2000000000000002", LAST) is None
