"""Customer satisfaction for the reports (issue 14): a period's summary by the closes in it, and each agent's average
over a period and a page (the leaderboard), on a real SQLite file and a PostgreSQL schema of the test's own
(PostgreSQL missing → skipped, failed with REQUIRE_SERVICES=1)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from csat.model import CsatSummary, How
from csat.store import CsatStore, open_csat_store
from tests.support.postgres import store_fixture, url_fixture

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
PAGE, OTHER_PAGE = "100000000000001", "100000000000002"
DAY = timedelta(days=1)

url = url_fixture("csat")
store = store_fixture(open_csat_store)


def later(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


def close(store: CsatStore, minute: float, agent: str, rating: int | None, *, page_id: str = PAGE,
          sent: bool = True, asked_after: float = 0.5) -> None:
    """A close at `minute`, asked `asked_after` minutes later; sent (and rated) or refused by the policy."""
    user = f"u{minute}"
    ask, _ = store.create_ask(page_id, user, f"{page_id}:{user}", agent, later(minute), later(minute + asked_after))
    assert ask is not None
    if not sent:
        store.mark_not_sent(ask.id, How.TEMPLATE, "outside_window", "Fuera de la ventana.")
        return
    store.mark_sent(ask.id, How.QUICK_REPLIES, None, int(minute) + 1)
    if rating is not None:
        assert store.record_answer(ask.id, rating, None, later(minute + 5), f"k{minute}")


def test_a_periods_summary_counts_the_closes_in_it(store: CsatStore) -> None:
    close(store, 0, "ana", 5)
    close(store, 1, "ana", 4)
    close(store, 2, "luis", 4)
    close(store, 3, "luis", None)  # asked, not answered
    close(store, 4, "luis", None, sent=False)  # refused: never reached the person
    close(store, 5, "ana", 1, page_id=OTHER_PAGE)
    close(store, 60, "ana", 2)  # the next hour
    assert store.summary(None, NOW, later(60)) == CsatSummary(5, 4, 3.5, {1: 1, 2: 0, 3: 0, 4: 2, 5: 1})
    assert store.summary(PAGE, NOW, later(60)) == CsatSummary(4, 3, 13 / 3, {1: 0, 2: 0, 3: 0, 4: 2, 5: 1})
    assert store.summary(PAGE, later(60), NOW + DAY).by_rating[2] == 1, "until exclusive, since inclusive"
    assert store.summary(None, NOW - DAY, NOW) == CsatSummary(0, 0, None, {1: 0, 2: 0, 3: 0, 4: 0, 5: 0})
    assert store.summary(None, NOW, later(60)).to_dict() == {
        "asked": 5, "answered": 4, "average": 3.5, "by_rating": {"1": 1, "2": 0, "3": 0, "4": 2, "5": 1}}


def test_the_summary_reads_the_close_time_not_when_it_was_asked(store: CsatStore) -> None:
    close(store, 0, "ana", 5, asked_after=90)  # a close asked late (the catch-up after a restart)
    assert store.summary(None, NOW, later(1)).answered == 1
    assert store.summary(None, later(1), NOW + DAY).answered == 0


def test_each_agents_average_over_a_period_and_a_page(store: CsatStore) -> None:
    close(store, 0, "ana", 5)
    close(store, 1, "ana", 3, page_id=OTHER_PAGE)
    close(store, 2, "luis", 2)
    close(store, 120, "luis", 4)
    by_agent = {row.agent: row for row in store.agent_satisfaction(since=NOW, until=later(60))}
    assert (by_agent["ana"].answered, by_agent["ana"].average) == (2, 4.0)
    assert (by_agent["luis"].answered, by_agent["luis"].average) == (1, 2.0)
    on_page = {row.agent: row for row in store.agent_satisfaction(since=NOW, until=later(60), page_id=PAGE)}
    assert (on_page["ana"].answered, on_page["ana"].average) == (1, 5.0)
    assert [row.agent for row in store.agent_satisfaction(page_id=OTHER_PAGE)] == ["ana"]
    assert {row.agent: row.answered for row in store.agent_satisfaction(until=later(60))} == {"ana": 2, "luis": 1}
    assert {row.agent: row.answered for row in store.agent_satisfaction()} == {"ana": 2, "luis": 2}, \
        "without bounds: every ask, as before"


def test_each_agents_average_reads_the_close_time_as_the_summary(store: CsatStore) -> None:
    close(store, 0, "ana", 5, asked_after=90)  # a close asked late (the catch-up after a restart)
    close(store, 30, "luis", 4)
    for since, until in ((NOW, later(60)), (NOW, later(1)), (later(1), NOW + DAY), (later(60), NOW + DAY)):
        by_agent = {row.agent: row.answered for row in store.agent_satisfaction(since, until)}
        assert sum(by_agent.values()) == store.summary(None, since, until).answered, (since, until)
    assert {row.agent: row.answered for row in store.agent_satisfaction(NOW, later(1))} == {"ana": 1}
    assert [row.agent for row in store.agent_satisfaction(later(1), NOW + DAY)] == ["luis"], \
        "asked at minute 90, closed at 0: not in the period"
    assert [row.agent for row in store.agent_satisfaction(later(1))] == ["luis"], "since alone: the close time too"


def test_each_agents_average_reads_the_close_time_index(url: str, store: CsatStore) -> None:
    if not url.startswith("sqlite:///"):
        pytest.skip("SQLite's plan (PostgreSQL plans by its statistics)")
    with store._db.write() as conn:
        for params in ({"since": "2026", "until": "2027"}, {"since": "2026", "until": None},
                       {"since": None, "until": "2027"}):
            plan = [str(tuple(row)) for row in conn.execute(
                "EXPLAIN QUERY PLAN " + store._db.queries["agent_satisfaction"], {**params, "page_id": None})]
            assert any("csat_asks_closed_at" in step for step in plan), (params, plan)
