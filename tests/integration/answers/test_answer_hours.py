"""The answer journal's hourly counts (issue 14, reports): one more per UTC hour, page, handling and entry in the
transaction that journals the question; the counts by handling and by entry read them only, and they outlive the
prune; migration 004 builds them from the journal's rows and the daily sums the old prune kept (answer_days). On a
real SQLite file and a PostgreSQL schema of the test's own (PostgreSQL missing → skipped, failed with
REQUIRE_SERVICES=1)."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg2
import pytest

from answers.model import AnswerRecord, Handling, HandlingHour
from answers.store import SQL_DIR, AnswersStore, open_answers_store
from core.postgres import schema_in_url
from core.sqlite import load_migrations
from tests.support.postgres import store_fixture, store_url, url_fixture

NOW = datetime(2026, 11, 23, 15, 0, tzinfo=timezone.utc)
PAGE, OTHER_PAGE = "100000000000001", "100000000000002"
HOUR, DAY = timedelta(hours=1), timedelta(days=1)

url = url_fixture("answers")
store = store_fixture(open_answers_store)


def later(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


def record(store: AnswersStore, handling: Handling, at: datetime, entry_id: str | None = None,
           page_id: str = PAGE) -> None:
    store.record(AnswerRecord(page_id=page_id, person_key="k", question="q", handling=handling, at=at,
                              entry_id=entry_id))


def test_each_question_counts_in_its_utc_hour(store: AnswersStore) -> None:
    record(store, Handling.MATRIX, NOW, "horario")
    record(store, Handling.MATRIX, later(59.9), "horario")
    record(store, Handling.MATRIX, later(60), "pagos")
    record(store, Handling.NO_ANSWER, later(61))
    record(store, Handling.GPT, later(5), page_id=OTHER_PAGE)
    record(store, Handling.MATRIX, NOW.astimezone(timezone(timedelta(hours=-5))) + timedelta(minutes=30), "horario")
    assert store.handling_hours(None, NOW - DAY, NOW + DAY) == [
        HandlingHour(NOW, PAGE, Handling.MATRIX, 3),
        HandlingHour(NOW, OTHER_PAGE, Handling.GPT, 1),
        HandlingHour(NOW + HOUR, PAGE, Handling.MATRIX, 1),
        HandlingHour(NOW + HOUR, PAGE, Handling.NO_ANSWER, 1),
    ]
    assert [h.hour for h in store.handling_hours(PAGE, NOW + HOUR, NOW + DAY)] == [NOW + HOUR, NOW + HOUR]
    assert store.handling_hours(None, NOW, NOW + HOUR) == store.handling_hours(None, NOW - DAY, NOW + HOUR), \
        "since inclusive, until not"
    assert all(h.hour.utcoffset() == timedelta(0) for h in store.handling_hours(None, NOW - DAY, NOW + DAY))
    assert store.counts_by_handling(PAGE, NOW, NOW + HOUR)["matrix"] == 3
    assert store.entry_use(None, NOW - DAY, NOW + DAY) == {"horario": 3, "pagos": 1}


def test_the_hours_outlive_the_prune(store: AnswersStore) -> None:
    old = NOW - timedelta(days=200)
    record(store, Handling.MATRIX, old + timedelta(minutes=10), "horario")
    record(store, Handling.SELECTED, old + timedelta(hours=5), "pagos")
    everything = (NOW - timedelta(days=400), NOW + DAY)
    before = (store.handling_hours(None, *everything), store.counts_by_handling(None, *everything),
              store.entry_use(None, *everything))
    assert store.prune(NOW - timedelta(days=180)) == 2
    assert (store.handling_hours(None, *everything), store.counts_by_handling(None, *everything),
            store.entry_use(None, *everything)) == before
    assert [h.hour for h in before[0]] == [old, old + timedelta(hours=5)]


def test_the_counts_read_the_hours_not_the_journal(url: str, store: AnswersStore) -> None:
    if not url.startswith("sqlite:///"):
        pytest.skip("SQLite's plan (PostgreSQL plans by its statistics)")
    with store._db.write() as conn:
        for name in ("counts_by_handling", "entry_use", "handling_hours"):
            plan = [str(tuple(row)) for row in conn.execute(
                "EXPLAIN QUERY PLAN " + store._db.queries[name],
                {"page_id": None, "since": "2026", "until": "2027"}).fetchall()]
            assert any("answer_hours" in step for step in plan) and not any(" answers " in step for step in plan)



def offer(store: AnswersStore, at: datetime, person_key: str = "k") -> None:
    store.record(AnswerRecord(page_id=PAGE, person_key=person_key, question="horario", handling=Handling.DID_YOU_MEAN,
                              at=at, candidates=("horario", "pagos")))


def tap(store: AnswersStore, at: datetime, person_key: str = "k") -> None:
    store.record(AnswerRecord(page_id=PAGE, person_key=person_key, question="Horario de atención",
                              handling=Handling.SELECTED, at=at, entry_id="horario"))


def test_a_followed_offer_counts_once_as_the_tap(store: AnswersStore) -> None:
    offer(store, later(-2))  # in the hour before the tap's: taken back from its own hour
    tap(store, later(1))
    everything = (NOW - DAY, NOW + DAY)
    counts = store.counts_by_handling(None, *everything)
    assert (counts["selected"], counts["did_you_mean"]) == (1, 0)
    assert store.handling_hours(None, *everything) == [HandlingHour(NOW, PAGE, Handling.SELECTED, 1)]
    assert store.entry_use(None, *everything) == {"horario": 1}
    tap(store, later(2))  # a second tap follows nothing more
    assert store.counts_by_handling(None, *everything)["did_you_mean"] == 0


def test_an_offer_not_followed_stays_did_you_mean(store: AnswersStore) -> None:
    offer(store, NOW)
    offer(store, NOW, person_key="other")
    tap(store, later(1), person_key="other")  # someone else's tap
    store.record(AnswerRecord(page_id=OTHER_PAGE, person_key="k", question="q", handling=Handling.SELECTED,
                              at=later(1), entry_id="horario"))  # the same person on another page
    counts = store.counts_by_handling(PAGE, NOW - DAY, NOW + DAY)
    assert (counts["selected"], counts["did_you_mean"]) == (1, 1)


def test_a_tap_after_the_ten_minutes_takes_nothing_back(store: AnswersStore) -> None:
    offer(store, NOW)
    tap(store, later(10.01))
    counts = store.counts_by_handling(None, NOW - DAY, NOW + DAY)
    assert (counts["selected"], counts["did_you_mean"]) == (1, 1)
    assert store.handling_hours(None, NOW - DAY, NOW + DAY) == [
        HandlingHour(NOW, PAGE, Handling.DID_YOU_MEAN, 1), HandlingHour(NOW, PAGE, Handling.SELECTED, 1)]


# --- migration 004 ---------------------------------------------------------------------------------------------

# At schema 3: journal rows (two in one hour, one in the next, one on the other page, an offer followed by a tap and
# one not) and a day the old prune added up.
ROWS = [(PAGE, "matrix", "horario", 0, False), (PAGE, "matrix", "horario", 20, False),
        (PAGE, "no_answer", None, 70, False), (OTHER_PAGE, "did_you_mean", None, 3, True),
        (OTHER_PAGE, "selected", "pagos", 5, False), (PAGE, "did_you_mean", None, 80, False)]
PRUNED_DAY = NOW.replace(hour=0) - timedelta(days=200)
DAYS = [(PRUNED_DAY, PAGE, "matrix", "horario", 7), (PRUNED_DAY, PAGE, "gpt", "", 2)]


def write_schema_3(url: str) -> None:
    def stamp(at: datetime) -> str:
        return at.isoformat(timespec="microseconds")

    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        mark = "?"
        for migration in load_migrations(SQL_DIR / "sqlite")[:3]:
            conn.executescript(migration.script)
        conn.execute("PRAGMA user_version=3")
    else:
        conn = psycopg2.connect(url)
        mark = "%s"
        with conn.cursor() as cursor:
            schema = schema_in_url(url)
            cursor.execute(f'CREATE SCHEMA "{schema}"')
            cursor.execute(f'SET search_path TO "{schema}"')
            cursor.execute("CREATE TABLE schema_migrations (store text NOT NULL, version integer NOT NULL, name text "
                           "NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (store, version))")
            for migration in load_migrations(SQL_DIR / "postgres")[:3]:
                cursor.execute(migration.script)
                cursor.execute("INSERT INTO schema_migrations (store, version, name) VALUES (%s, %s, %s)",
                               ("answers", migration.version, migration.name))
    with conn:
        cursor = conn.cursor()
        for page_id, handling, entry_id, minutes, followed in ROWS:
            cursor.execute(f"INSERT INTO answers (page_id, person_key, question, handling, at, entry_id, followed) "
                           f"VALUES ({mark}, 'k', 'q', {mark}, {mark}, {mark}, {mark})",
                           (page_id, handling, stamp(later(minutes)), entry_id, followed))
        for day, page_id, handling, entry_id, n in DAYS:
            cursor.execute(f"INSERT INTO answer_days (day, page_id, handling, entry_id, n) VALUES "
                           f"({mark}, {mark}, {mark}, {mark}, {mark})", (stamp(day), page_id, handling, entry_id, n))
    conn.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_004_counts_the_journal_and_pruned_days_a_followed_offer_once(backend: str, tmp_path: Path) -> None:
    with store_url(backend, tmp_path, "answers") as old_url:
        write_schema_3(old_url)
        migrated = open_answers_store(old_url)
        try:
            assert migrated.schema_version == len(load_migrations(SQL_DIR / "sqlite"))  # 004 and after
            everything = (NOW - timedelta(days=400), NOW + DAY)
            assert migrated.handling_hours(None, *everything) == [
                HandlingHour(PRUNED_DAY, PAGE, Handling.GPT, 2),
                HandlingHour(PRUNED_DAY, PAGE, Handling.MATRIX, 7),
                HandlingHour(NOW, PAGE, Handling.MATRIX, 2),
                HandlingHour(NOW, OTHER_PAGE, Handling.SELECTED, 1),
                HandlingHour(NOW + HOUR, PAGE, Handling.DID_YOU_MEAN, 1),
                HandlingHour(NOW + HOUR, PAGE, Handling.NO_ANSWER, 1),
            ], "the followed offer counts once, as its tap"
            assert migrated.entry_use(None, *everything) == {"horario": 9, "pagos": 1}
            record(migrated, Handling.MATRIX, later(30), "horario")
            assert migrated.counts_by_handling(PAGE, NOW, NOW + HOUR)["matrix"] == 3
        finally:
            migrated.close()
