"""`OutboxStore.message_days` / `Outbox.message_days`: the people's messages per UTC hour (`message_hours`) summed per
local day by the store (the reports over a year read ~365 rows, not 8,760 hours), one query per span of one UTC
offset (`reports.model.Period.offset_spans`). Must equal the per-hour path (`message_hours`, each hour in the local
day of its start, as `reports.assemble.per_day_traffic` folds it) in Guayaquil (-05:00), New York across both
daylight-saving changes, Kolkata (+05:30: a local day starts at 18:30 UTC) and Chatham (+12:45/+13:45), for one page
and every page, on the in-memory fake and SQLite here (tests/integration/outbox/test_store_contract_message_days.py:
PostgreSQL).

Would catch: an hour counted in its UTC day instead of the local one, the first hour of a +05:30 day put in the day
before, the night of a daylight-saving change counted with the wrong offset, another page's messages counted, the
conversations or new people summed into the wrong column."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from outbox.model import MessageDay, OutboxInputError, OutboxStore, local_day, local_day_cut
from outbox.store import open_store
from reports.assemble import per_day_traffic
from reports.model import Period

PAGE, OTHER_PAGE = "100000000000001", "100000000000002"
START = datetime(2024, 3, 1, tzinfo=timezone.utc)
ZONES = ["America/Guayaquil", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"]


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OutboxStore]:
    opened = open_store("memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'outbox.sqlite3'}")
    yield opened
    opened.close()


def fill(store: OutboxStore) -> None:
    """A message every 13 hours and 11 minutes for 290 days (every hour of the day, both changes of 2024) from nine
    people (so some start conversations, some are new, some neither), a sixth on another page, and a second message
    in the same hour now and then."""
    at, number = START, 0
    while at < START + timedelta(days=290):
        page = OTHER_PAGE if number % 6 == 0 else PAGE
        store.record_user_message(page, f"u{number % 9}", at, "hola")
        if number % 5 == 0:
            store.record_user_message(page, f"v{number % 4}", at + timedelta(minutes=20), "otra")
        at += timedelta(hours=13, minutes=11)
        number += 1


def days_of(store: OutboxStore, period: Period) -> list[MessageDay]:
    return [row for since, until, offset in period.offset_spans()
            for row in store.message_days(period.page_id, since, until, offset)]


@pytest.mark.parametrize("zone", ZONES)
def test_the_days_equal_the_hours_folded_in_python(store: OutboxStore, zone: str) -> None:
    fill(store)
    for page in (PAGE, None):
        period = Period(date(2024, 2, 20), date(2024, 12, 20), ZoneInfo(zone), page)
        since, until = period.utc_bounds()
        by_hours = per_day_traffic(period, store.message_hours(page, since, until))
        by_days = per_day_traffic(period, None, None, days_of(store, period))
        assert by_days == by_hours
        assert sum(int(row[1] or 0) for row in by_days.rows) > 400
        assert sum(int(row[2] or 0) for row in by_days.rows) != sum(int(row[3] or 0) for row in by_days.rows)
    one_day = Period(date(2024, 3, 10), date(2024, 3, 10), ZoneInfo(zone), PAGE)
    since, until = one_day.utc_bounds()
    assert per_day_traffic(one_day, None, None, days_of(store, one_day)) == \
        per_day_traffic(one_day, store.message_hours(PAGE, since, until))


def test_an_hour_belongs_to_the_local_day_of_its_start(store: OutboxStore) -> None:
    store.record_user_message(PAGE, "k", datetime(2024, 3, 1, 19, 10, tzinfo=timezone.utc), "a")  # 00:40 2nd, Kolkata
    store.record_user_message(PAGE, "k", datetime(2024, 3, 2, 4, 59, tzinfo=timezone.utc), "b")  # 23:59 1st, Guayaquil
    store.record_user_message(OTHER_PAGE, "k", datetime(2024, 3, 2, 4, 0, tzinfo=timezone.utc), "c")
    kolkata = Period(date(2024, 3, 1), date(2024, 3, 2), ZoneInfo("Asia/Kolkata"), PAGE)
    guayaquil = Period(date(2024, 3, 1), date(2024, 3, 2), ZoneInfo("America/Guayaquil"), PAGE)
    every_page = Period(date(2024, 3, 1), date(2024, 3, 2), ZoneInfo("America/Guayaquil"), None)
    assert days_of(store, kolkata) == [MessageDay(date(2024, 3, 2), 2, 1, 1)]
    assert days_of(store, guayaquil) == [MessageDay(date(2024, 3, 1), 2, 1, 1)]
    assert days_of(store, every_page) == [MessageDay(date(2024, 3, 1), 3, 2, 2)]


def test_an_offset_of_a_day_or_more_and_a_bad_period_are_refused(store: OutboxStore) -> None:
    with pytest.raises(OutboxInputError):
        store.message_days(None, START, START + timedelta(days=1), 86_400)
    with pytest.raises(OutboxInputError):
        store.message_days(None, START + timedelta(days=1), START, 0)


@pytest.mark.parametrize("offset", [-86_399, -43_200, -18_000, -12_600, -1, 0, 1, 3_600, 19_800, 45_900, 86_399])
def test_the_cut_names_the_local_day_of_every_utc_hour(offset: int) -> None:
    """`local_day_cut` + `local_day` (what the SQL stores compute) against the hour plus the offset."""
    cut = local_day_cut(offset)
    for hour in range(24):
        start = datetime(2024, 6, 15, hour, tzinfo=timezone.utc)
        assert local_day(start.date(), hour >= cut, offset) == (start + timedelta(seconds=offset)).date()
