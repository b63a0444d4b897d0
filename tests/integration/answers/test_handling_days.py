"""`AnswersStore.handling_days`: the hourly counts summed per local day in the database (the reports over a year),
one query per span of one UTC offset (`Period.offset_spans`). Must equal the per-hour path (`handling_hours`, each
hour in the local day of its start) in Guayaquil (-05:00), New York across both daylight-saving changes, Kolkata
(+05:30: a local day starts at 18:30 UTC) and Chatham (+12:45/+13:45), for one page and every page. On a real SQLite
file and a PostgreSQL schema of the test's own (PostgreSQL missing → skipped, failed with REQUIRE_SERVICES=1).

Would catch: an hour counted in the UTC day instead of the local one, the first hour of a +05:30 day put in the day
before, the night of a daylight-saving change counted with the wrong offset, another page's questions counted, an
hour taken back to 0 by a followed offer (left out by the hours) counted negative; the hours by handling (what the
days read) drifting from the hours they sum, a followed offer taken back from one and not the other."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from answers.model import AnswerRecord, Handling
from answers.store import AnswersStore, open_answers_store
from reports.assemble import handling_by_day
from reports.model import Period
from tests.integration.answers.test_answer_hours import write_schema_3
from tests.support.postgres import store_fixture, store_url, url_fixture

PAGE, OTHER_PAGE = "100000000000001", "100000000000002"
START = datetime(2024, 3, 1, tzinfo=timezone.utc)

url = url_fixture("answers")
store = store_fixture(open_answers_store)


def fill(store: AnswersStore) -> None:
    """Questions every 7 hours and 13 minutes for 290 days (every hour of the day, both changes of 2024), some on
    another page, with entries (several rows of one hour and handling) and followed offers."""
    kinds = (Handling.MATRIX, Handling.NO_ANSWER, Handling.GPT, Handling.MATRIX, Handling.HANDOFF)
    at, number = START, 0
    while at < START + timedelta(days=290):
        kind = kinds[number % len(kinds)]
        store.record(AnswerRecord(page_id=OTHER_PAGE if number % 6 == 0 else PAGE, person_key=f"p{number % 9}",
                                  question="¿a qué hora abren?", handling=kind, at=at,
                                  entry_id=f"e{number % 3}" if kind is Handling.MATRIX else None))
        if number % 11 == 0:  # an offer, then the same person's tap: the offer's hour goes back to 0
            store.record(AnswerRecord(page_id=PAGE, person_key="tapper", question="horario",
                                      handling=Handling.DID_YOU_MEAN, at=at + timedelta(minutes=1),
                                      candidates=("e1", "e2")))
            store.record(AnswerRecord(page_id=PAGE, person_key="tapper", question="Horario",
                                      handling=Handling.SELECTED, at=at + timedelta(minutes=3), entry_id="e1"))
        at += timedelta(hours=7, minutes=13)
        number += 1


def days_of(store: AnswersStore, period: Period) -> list[object]:
    return [row for since, until, offset in period.offset_spans()
            for row in store.handling_days(period.page_id, since, until, offset)]


@pytest.mark.parametrize("zone", ["America/Guayaquil", "America/New_York", "Asia/Kolkata", "Pacific/Chatham"])
def test_the_days_equal_the_hours_folded_in_python(store: AnswersStore, zone: str) -> None:
    fill(store)
    for page in (PAGE, None):
        period = Period(date(2024, 2, 20), date(2024, 12, 20), ZoneInfo(zone), page)
        since, until = period.utc_bounds()
        by_hours = handling_by_day(period, store.handling_hours(page, since, until))
        by_days = handling_by_day(period, None, days_of(store, period))
        assert by_days == by_hours
        assert sum(by_days[1].values()) > 800
    one_day = Period(date(2024, 3, 10), date(2024, 3, 10), ZoneInfo(zone), PAGE)
    since, until = one_day.utc_bounds()
    assert handling_by_day(one_day, None, days_of(store, one_day)) == \
        handling_by_day(one_day, store.handling_hours(PAGE, since, until))


def test_an_hour_belongs_to_the_local_day_of_its_start(store: AnswersStore) -> None:
    store.record(AnswerRecord(page_id=PAGE, person_key="k", question="q", handling=Handling.GPT,
                              at=datetime(2024, 3, 1, 19, 10, tzinfo=timezone.utc)))  # hour 19:00: 00:30 2nd, Kolkata
    store.record(AnswerRecord(page_id=PAGE, person_key="k", question="q", handling=Handling.GPT,
                              at=datetime(2024, 3, 2, 4, 59, tzinfo=timezone.utc)))  # hour 04:00: 23:00 1st, Guayaquil
    kolkata = Period(date(2024, 3, 1), date(2024, 3, 2), ZoneInfo("Asia/Kolkata"), PAGE)
    guayaquil = Period(date(2024, 3, 1), date(2024, 3, 2), ZoneInfo("America/Guayaquil"), PAGE)
    assert [(row.day, row.n) for row in days_of(store, kolkata)] == [(date(2024, 3, 2), 2)]
    assert [(row.day, row.n) for row in days_of(store, guayaquil)] == [(date(2024, 3, 1), 2)]


def test_an_offset_of_a_day_or_more_is_refused(store: AnswersStore) -> None:
    with pytest.raises(ValueError):
        store.handling_days(None, START, START + timedelta(days=1), 86_400)


SUMS = "SELECT hour, page_id, handling, sum(n) AS n FROM answer_hours GROUP BY hour, page_id, handling"
KEPT = "SELECT hour, page_id, handling, n FROM answer_hours_by_handling"
COLUMNS = ("hour", "page_id", "handling", "n")


def sums_and_kept(store: AnswersStore) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """answer_hours summed over the entries, and answer_hours_by_handling, each in order."""
    with store._db.write() as conn:
        return ([tuple(row[key] for key in COLUMNS) for row in conn.execute(SUMS + " ORDER BY 1, 2, 3").fetchall()],
                [tuple(row[key] for key in COLUMNS) for row in conn.execute(KEPT + " ORDER BY 1, 2, 3").fetchall()])


def test_the_hours_by_handling_are_always_the_hours_summed_over_the_entries(store: AnswersStore) -> None:
    """What handling_days and counts_by_handling read (answer_hours_by_handling) is kept with answer_hours in one
    transaction: +1 with each question, -1 with each followed offer taken back (an hour back to 0 included)."""
    fill(store)
    store.record(AnswerRecord(page_id=PAGE, person_key="solo", question="horario", handling=Handling.SELECTED,
                              at=START - timedelta(days=1), entry_id="e2"))  # a tap without an offer: nothing back
    sums, kept = sums_and_kept(store)
    assert kept == sums and len(kept) > 800
    assert any(row[2] == "did_you_mean" and row[3] == 0 for row in kept)  # offers taken back to 0
    everything = (START - timedelta(days=2), START + timedelta(days=300))
    assert store.counts_by_handling(None, *everything) == {
        kind.value: sum(h.n for h in store.handling_hours(None, *everything) if h.handling is kind)
        for kind in Handling}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_006_sums_the_hours_already_counted(backend: str, tmp_path: Path) -> None:
    """An answer journal of schema 3 (journal rows, followed offers, a pruned day) migrated to the latest: the hours
    by handling are the hours (004's) summed over the entries."""
    with store_url(backend, tmp_path, "answers") as old_url:
        write_schema_3(old_url)
        migrated = open_answers_store(old_url)
        try:
            sums, kept = sums_and_kept(migrated)
            assert kept == sums and len(kept) == 6
        finally:
            migrated.close()
