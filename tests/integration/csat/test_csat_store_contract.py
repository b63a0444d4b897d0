"""One contract suite for `CsatStore` on its two databases: a real SQLite file and a PostgreSQL schema of the test's
own. One ask per close, sent / not sent, the newest open ask of a person, one answer per ask and per event, a
conversation's asks, each agent's average. PostgreSQL missing → its half is skipped (failed with REQUIRE_SERVICES=1)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from csat.model import AskStatus, How
from csat.store import CsatStore, open_csat_store
from tests.support.postgres import store_fixture, url_fixture

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
PAGE, USER, OTHER = "100000000000001", "2000000000000001", "2000000000000002"


def later(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


url = url_fixture("csat")
store = store_fixture(open_csat_store)


def test_one_ask_per_close_and_what_became_of_it(store: CsatStore) -> None:
    ask, created = store.create_ask(PAGE, USER, f"{PAGE}:{USER}", "ana", NOW, later(0.1))
    again, created_again = store.create_ask(PAGE, USER, f"{PAGE}:{USER}", "ana", NOW, later(0.2))
    assert created and not created_again and again == ask
    assert (ask.status, ask.agent, ask.closed_at, ask.asked_at) == (AskStatus.ASKING, "ana", NOW, later(0.1))
    store.mark_sent(ask.id, How.TEMPLATE, "CUSTOMER_FEEDBACK", 41)
    sent = store.get(ask.id)
    assert sent is not None and (sent.how, sent.tag, sent.outbox_id) == (How.TEMPLATE, "CUSTOMER_FEEDBACK", 41)
    late, _ = store.create_ask(PAGE, OTHER, f"{PAGE}:{OTHER}", "luis", later(1), later(1))
    store.mark_not_sent(late.id, How.TEMPLATE, "outside_window", "Pasaron más de 7 días.")
    refused = store.get(late.id)
    assert refused is not None and (refused.status, refused.reason_code, refused.reason_es) == (
        AskStatus.NOT_SENT, "outside_window", "Pasaron más de 7 días.")
    assert store.latest_open(PAGE, OTHER) is None  # a refused ask waits for nothing
    assert store.get(999_999) is None


def test_answers_count_once_and_the_first_stays(store: CsatStore) -> None:
    first, _ = store.create_ask(PAGE, USER, f"{PAGE}:{USER}", "ana", NOW, NOW)
    newest, _ = store.create_ask(PAGE, USER, f"{PAGE}:{USER}", "ana", later(60), later(60))
    assert store.latest_open(PAGE, USER) is None  # nothing sent yet
    store.mark_sent(first.id, How.TEMPLATE, None, 1)
    store.mark_sent(newest.id, How.TEMPLATE, None, 2)
    latest = store.latest_open(PAGE, USER)
    assert latest is not None and latest.id == newest.id
    assert store.record_answer(newest.id, 5, "Excelente", later(61), "key:1")
    assert not store.record_answer(newest.id, 1, None, later(62), "key:2")  # answered already
    assert not store.record_answer(first.id, 1, None, later(62), "key:1")  # the same event again
    latest = store.latest_open(PAGE, USER)
    assert latest is not None and latest.id == first.id
    answered = store.get(newest.id)
    assert answered is not None and (answered.status, answered.rating, answered.comment, answered.answered_at) == (
        AskStatus.ANSWERED, 5, "Excelente", later(61))
    assert [ask.id for ask in store.of_conversation(f"{PAGE}:{USER}")] == [newest.id, first.id]


def test_each_agents_average_over_a_period(store: CsatStore) -> None:
    for minute, agent, rating in [(0, "ana", 5), (1, "ana", 4), (2, "ana", None), (3, "luis", 2)]:
        ask, _ = store.create_ask(PAGE, f"u{minute}", f"{PAGE}:u{minute}", agent, later(minute), later(minute))
        store.mark_sent(ask.id, How.QUICK_REPLIES, None, minute + 1)
        if rating is not None:
            assert store.record_answer(ask.id, rating, None, later(minute + 5), f"k{minute}")
    refused, _ = store.create_ask(PAGE, "u9", f"{PAGE}:u9", "luis", later(9), later(9))
    store.mark_not_sent(refused.id, How.QUICK_REPLIES, "outside_window", "Fuera de la ventana.")
    by_agent = {row.agent: row for row in store.agent_satisfaction()}
    assert (by_agent["ana"].asked, by_agent["ana"].answered, by_agent["ana"].average) == (3, 2, 4.5)
    assert (by_agent["luis"].asked, by_agent["luis"].answered, by_agent["luis"].average) == (1, 1, 2.0)
    recent = {row.agent: row for row in store.agent_satisfaction(since=later(2))}
    assert recent["ana"].answered == 0 and recent["ana"].average is None and recent["luis"].average == 2.0


def test_a_person_asked_recently_gets_no_second_ask_and_the_closer_is_kept(store: CsatStore) -> None:
    day = timedelta(hours=24)
    first, created = store.create_ask(PAGE, USER, f"{PAGE}:{USER}", "ana", NOW, NOW, closed_by="luis",
                                      unless_asked_since=NOW - day)
    assert created and first is not None and (first.agent, first.closed_by) == ("ana", "luis")
    soon, created_soon = store.create_ask(PAGE, USER, f"{PAGE}:{USER}", "ana", later(30), later(30),
                                          unless_asked_since=later(30) - day)
    assert (soon, created_soon) == (None, False)
    # The same close seen again returns its ask (the recent ask is its own).
    assert store.create_ask(PAGE, USER, f"{PAGE}:{USER}", "ana", NOW, later(31),
                            unless_asked_since=NOW - day) == (first, False)
    # Another person is not held back; a refused ask does not count as asked.
    other, _ = store.create_ask(PAGE, OTHER, f"{PAGE}:{OTHER}", "ana", later(30), later(30),
                                unless_asked_since=later(30) - day)
    assert other is not None
    store.mark_not_sent(other.id, How.QUICK_REPLIES, "outside_window", "Fuera de la ventana.")
    again, created_again = store.create_ask(PAGE, OTHER, f"{PAGE}:{OTHER}", "ana", later(40), later(40),
                                            unless_asked_since=later(40) - day)
    assert created_again and again is not None and again.closed_by is None
    # More than a day after the first ask the person may be asked again.
    next_day, created_next = store.create_ask(PAGE, USER, f"{PAGE}:{USER}", "ana", NOW + day, NOW + day,
                                              unless_asked_since=later(1))
    assert created_next and next_day is not None
