"""The reports' counters the outbox keeps at write time (issue 14), by UTC hour: the people's messages
(`message_hours`: messages, conversations, new people) and each message's final outcome (`send_hours`), on the
in-memory fake and SQLite here; tests/integration/outbox/test_store_contract_report_counters.py runs the store tests
on PostgreSQL too. `now` and Meta's times are passed in: no sleeping, no patching.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core.settings import SANDBOX_PAGE_ID, Settings
from core.sqlite import load_migrations, sqlite_statements
from meta.graph import GraphClient
from outbox.model import (
    InvalidTransition,
    MessageHour,
    NewMessage,
    OutboxInputError,
    OutboxMessage,
    OutboxStore,
    Outcome,
    Purpose,
    SenderKind,
    SendHour,
    Status,
    hour_start,
    user_message_counts,
)
from outbox.outbox import Outbox
from outbox.policy_file import load_policy
from outbox.store import InMemoryOutboxStore, SQLiteOutboxStore, open_store, sqlite_time
from tests.unit.outbox.test_worker_store_outage import RecordingTransport

ROOT = Path(__file__).resolve().parents[3]
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)  # an hour's start
PAGE, OTHER_PAGE = "100000000000001", "100000000000002"
DAY = timedelta(days=1)
WIDE = (T0 - 30 * DAY, T0 + 30 * DAY)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OutboxStore]:
    opened = open_store("memory://" if request.param == "memory" else f"sqlite:///{tmp_path / 'outbox.sqlite3'}")
    yield opened
    opened.close()


def enqueue(store: OutboxStore, recipient: str, now: datetime = T0, page: str = PAGE,
            purpose: Purpose = Purpose.REPLY, key: str | None = None) -> OutboxMessage:
    message, created = store.enqueue(NewMessage(page, recipient, {"text": "hola"}, purpose=purpose,
                                                idempotency_key=key), now)
    assert created
    return message


def finish(store: OutboxStore, message: OutboxMessage, outcome: Outcome, now: datetime = T0) -> OutboxMessage:
    """Claim `message` (the head of its recipient's queue) and complete it with `outcome`."""
    assert message.id in [claimed.id for claimed in store.claim("w1", now, 30, 100)]
    return store.complete(message.id, "w1", outcome)


def sent(when: datetime) -> Outcome:
    return Outcome(Status.SENT, messaging_type="RESPONSE", graph_message_id="m_1", sent_at=when)


def failed(when: datetime, code: int = 551) -> Outcome:
    return Outcome(Status.FAILED, reason_code=f"graph_{code}", reason="No disponible", last_error_code=code,
                   finished_at=when)


def hours(store: OutboxStore, page: str | None = PAGE) -> list[SendHour]:
    return store.send_hours(page, *WIDE)


def row(hour: datetime, status: Status, n: int = 1, page: str = PAGE, purpose: Purpose = Purpose.REPLY,
        reason: str | None = None, error: int | None = None) -> SendHour:
    return SendHour(hour, page, purpose, status, reason, error, n)


# --- the pure parts -----------------------------------------------------------------------------------------------


def test_a_first_message_starts_a_conversation_and_a_new_person() -> None:
    assert user_message_counts(None, T0) == (1, 1)


@pytest.mark.parametrize(("gap", "conversations"), [
    (timedelta(hours=24), 1),
    (timedelta(hours=24) - timedelta(microseconds=1), 0),
    (timedelta(days=3), 1),
    (timedelta(0), 0),
    (-timedelta(days=3), 0),  # late: older than the latest message, whatever the gap
])
def test_a_conversation_starts_after_24_hours_of_silence(gap: timedelta, conversations: int) -> None:
    assert user_message_counts(T0, T0 + gap) == (conversations, 0)


def test_an_hour_is_the_utc_start_of_the_hour_whatever_zone_went_in() -> None:
    local = datetime(2024, 5, 1, 7, 59, 59, 999999, tzinfo=ZoneInfo("America/Guayaquil"))  # 12:59:59 UTC
    assert hour_start(local) == T0 and hour_start(local).tzinfo == timezone.utc
    assert hour_start(T0) == T0


# --- people's messages: message_hours ---------------------------------------------------------------------------


def test_conversations_start_with_a_first_message_or_after_24_hours_of_silence(store: OutboxStore) -> None:
    store.record_user_message(PAGE, "u1", at(10), "hola")
    store.record_user_message(PAGE, "u1", at(20), "¿precio?")
    store.record_user_message(PAGE, "u2", at(30), "buenas")
    store.record_user_message(OTHER_PAGE, "u1", at(40), "otra página")  # new on that page
    store.record_user_message(PAGE, "u1", at(20) + DAY - timedelta(minutes=1), "sigo aquí")  # 23h59 later
    store.record_user_message(PAGE, "u1", at(19) + 2 * DAY, "volví")  # exactly 24 h after the latest

    assert store.message_hours(PAGE, T0, T0 + 3 * DAY) == [
        MessageHour(T0, PAGE, 3, 2, 2),
        MessageHour(T0 + DAY, PAGE, 1, 0, 0),
        MessageHour(T0 + 2 * DAY, PAGE, 1, 1, 0),
    ]
    assert store.message_hours(OTHER_PAGE, T0, T0 + 3 * DAY) == [MessageHour(T0, OTHER_PAGE, 1, 1, 1)]


def test_a_late_message_is_counted_but_never_starts_a_conversation(store: OutboxStore) -> None:
    store.record_user_message(PAGE, "u1", at(0) + 2 * DAY, "lo último")
    store.record_user_message(PAGE, "u1", at(0), "llegó dos días tarde")  # older than the latest: late
    store.record_user_message(PAGE, "u1", at(0) + DAY, "también tarde")

    assert store.message_hours(PAGE, T0, T0 + 3 * DAY) == [
        MessageHour(T0, PAGE, 1, 0, 0),
        MessageHour(T0 + DAY, PAGE, 1, 0, 0),
        MessageHour(T0 + 2 * DAY, PAGE, 1, 1, 1),
    ]


def test_messages_fall_in_the_utc_hour_of_metas_time_and_the_period_is_half_open(store: OutboxStore) -> None:
    store.record_user_message(PAGE, "u1", T0, "en punto")
    store.record_user_message(PAGE, "u2", at(60) - timedelta(microseconds=1), "al filo")
    store.record_user_message(PAGE, "u3", at(60).astimezone(ZoneInfo("America/Guayaquil")), "hora local")
    store.record_user_message(OTHER_PAGE, "u1", at(61), "otra")

    both = [MessageHour(T0, PAGE, 2, 2, 2), MessageHour(at(60), PAGE, 1, 1, 1),
            MessageHour(at(60), OTHER_PAGE, 1, 1, 1)]
    assert store.message_hours(None, T0, at(120)) == both
    assert store.message_hours(None, at(60), at(120)) == both[1:]  # since: inclusive
    assert store.message_hours(None, T0, at(60)) == both[:1]  # until: exclusive
    assert store.message_hours(PAGE, at(1), at(120)) == both[1:2]  # an hour that starts before since is not in it
    assert store.message_hours(PAGE, at(120), at(180)) == []
    assert all(found.hour.tzinfo == timezone.utc for found in both)


def test_a_report_period_must_be_aware_and_not_reversed(store: OutboxStore) -> None:
    with pytest.raises(OutboxInputError, match="aware"):
        store.message_hours(PAGE, datetime(2024, 5, 1), T0)  # noqa: DTZ001 (the naive time is the point)
    with pytest.raises(OutboxInputError, match="end before"):
        store.send_hours(PAGE, at(60), T0)
    assert store.send_hours(PAGE, T0, T0) == []


# --- final outcomes: send_hours -----------------------------------------------------------------------------------


def test_every_final_outcome_counts_once_at_the_hour_it_was_reached(store: OutboxStore) -> None:
    finish(store, enqueue(store, "u1"), sent(at(5)))
    finish(store, enqueue(store, "u2"), Outcome(Status.BLOCKED, reason_code="outside_window", reason="Fuera",
                                               finished_at=at(70)))
    finish(store, enqueue(store, "u3"), failed(at(75)))
    finish(store, enqueue(store, "u4", purpose=Purpose.FOLLOW_UP),
           Outcome(Status.DEAD, reason_code="graph_2", last_error_code=2, finished_at=at(130)))
    store.cancel(enqueue(store, "u5").id, at(135))
    waiting = finish(store, enqueue(store, "u6"), Outcome(Status.PENDING, next_attempt_at=at(200),
                                                         reason_code="graph_2", last_error_code=2))
    enqueue(store, "u7")  # pending: not final, not counted

    assert waiting.status is Status.PENDING
    assert hours(store) == [
        row(T0, Status.SENT),
        row(at(60), Status.BLOCKED, reason="outside_window"),
        row(at(60), Status.FAILED, reason="graph_551", error=551),
        row(at(120), Status.DEAD, purpose=Purpose.FOLLOW_UP, reason="graph_2", error=2),  # by purpose, then status
        row(at(120), Status.CANCELLED),
    ]


def test_outcomes_of_one_key_add_up_per_page_and_for_every_page(store: OutboxStore) -> None:
    for recipient in ("u1", "u2", "u3"):
        finish(store, enqueue(store, recipient), sent(at(1)))
    finish(store, enqueue(store, "u1", page=OTHER_PAGE), sent(at(2)))

    assert hours(store) == [row(T0, Status.SENT, 3)]
    assert hours(store, OTHER_PAGE) == [row(T0, Status.SENT, 1, page=OTHER_PAGE)]
    assert hours(store, None) == [row(T0, Status.SENT, 3), row(T0, Status.SENT, 1, page=OTHER_PAGE)]
    assert store.send_hours(None, at(60), at(120)) == []


def test_a_failed_message_retried_then_sent_counts_once_as_sent(store: OutboxStore) -> None:
    message = finish(store, enqueue(store, "u1"), failed(at(10)))
    assert hours(store) == [row(T0, Status.FAILED, reason="graph_551", error=551)]

    store.retry(message.id, at(70))
    assert hours(store) == []  # out of the report until it is final again
    finish(store, store.get(message.id), sent(at(130)), now=at(130))

    assert hours(store) == [row(at(120), Status.SENT)]


def test_a_dead_message_retried_and_failing_again_counts_once_at_its_new_hour(store: OutboxStore) -> None:
    message = finish(store, enqueue(store, "u1"),
                     Outcome(Status.DEAD, reason_code="graph_2", last_error_code=2, finished_at=at(10)))
    store.retry(message.id, at(70))
    finish(store, store.get(message.id), failed(at(190), code=100), now=at(190))
    store.retry(message.id, at(200))
    finish(store, store.get(message.id), failed(at(250), code=100), now=at(250))

    assert hours(store) == [row(at(240), Status.FAILED, reason="graph_100", error=100)]


def test_a_refused_transition_changes_no_counter(store: OutboxStore) -> None:
    done = finish(store, enqueue(store, "u1"), sent(at(1)))
    cancelled = enqueue(store, "u2")
    store.cancel(cancelled.id, at(2))
    before = hours(store)

    for refused in (lambda: store.retry(done.id, at(3)), lambda: store.cancel(done.id, at(3)),
                    lambda: store.cancel(cancelled.id, at(3)), lambda: store.retry(cancelled.id, at(3))):
        with pytest.raises(InvalidTransition):
            refused()

    assert hours(store) == before == [row(T0, Status.CANCELLED), row(T0, Status.SENT)]


def test_what_never_becomes_final_counts_nothing(store: OutboxStore) -> None:
    message = enqueue(store, "u1", key="k1")
    store.enqueue(NewMessage(PAGE, "u1", {"text": "otra vez"}, idempotency_key="k1"), at(1))  # the same key
    [claimed] = store.claim("w1", T0, 30, 10)
    store.release(claimed.id, "w1", at(5))
    store.claim("w2", at(5), 30, 10)
    assert store.reclaim_expired(at(60)) == 1

    assert store.get(message.id).status is Status.PENDING
    assert hours(store) == []


def test_a_broadcast_cancel_counts_each_message_it_cancelled_once(store: OutboxStore) -> None:
    in_flight = enqueue(store, "p4", purpose=Purpose.FOLLOW_UP, key="broadcast:7:p4:0:0")
    assert [claimed.id for claimed in store.claim("w1", T0, 30, 100)] == [in_flight.id]  # being sent: left alone
    for user in ("p1", "p2", "p3"):
        enqueue(store, user, purpose=Purpose.FOLLOW_UP, key=f"broadcast:7:{user}:0:0")
    enqueue(store, "p5", purpose=Purpose.FOLLOW_UP, key="broadcast:70:p5:0:0")  # another broadcast

    assert store.cancel_pending_by_key_prefix("broadcast:7:", at(65)) == 3
    assert store.cancel_pending_by_key_prefix("broadcast:7:", at(66)) == 0  # again: nothing more
    store.complete(in_flight.id, "w1", sent(at(70)))

    assert hours(store) == [row(at(60), Status.CANCELLED, 3, purpose=Purpose.FOLLOW_UP),
                            row(at(60), Status.SENT, purpose=Purpose.FOLLOW_UP)]


def test_a_cancelled_message_keeps_the_error_of_its_last_attempt(store: OutboxStore) -> None:
    """The key is the message's own fields: a message waiting to retry after an error, then cancelled, is counted
    with that error (as the console shows it)."""
    message = finish(store, enqueue(store, "u1"), Outcome(Status.PENDING, next_attempt_at=at(30),
                                                         reason_code="graph_2", last_error_code=2))
    store.cancel(message.id, at(10))

    assert hours(store) == [row(T0, Status.CANCELLED, reason="graph_2", error=2)]


def test_an_outcome_without_a_time_counts_at_its_send_time_else_at_the_stores_clock(store: OutboxStore) -> None:
    finish(store, enqueue(store, "u1"), sent(at(5)))
    before = datetime.now(timezone.utc)
    finish(store, enqueue(store, "u2"), Outcome(Status.BLOCKED, reason_code="outside_window"))
    after = datetime.now(timezone.utc)

    [blocked] = [found for found in store.send_hours(PAGE, T0, after + DAY) if found.status is Status.BLOCKED]
    assert hour_start(before) <= blocked.hour <= hour_start(after)
    assert store.send_hours(PAGE, T0, at(60)) == [row(T0, Status.SENT)]


# --- the façade ----------------------------------------------------------------------------------------------------


async def test_the_outbox_reports_what_its_worker_sent_and_blocked() -> None:
    store = InMemoryOutboxStore()
    client = GraphClient(Settings().page_tokens, transport=RecordingTransport())
    outbox = Outbox(store, client, load_policy(), worker_id="w1", page_rate=0, clock=lambda: T0)
    page = SANDBOX_PAGE_ID
    await outbox.record_user_message(page, "u1", T0 - timedelta(minutes=5), "hola")
    await outbox.record_user_message(page, "u1", T0 - timedelta(minutes=4), "¿me ayuda?")
    await outbox.enqueue(NewMessage(page, "u1", {"text": "Claro"}, purpose=Purpose.REPLY))
    await outbox.enqueue(NewMessage(page, "u9", {"text": "Oferta"}, sender=SenderKind.SYSTEM,
                                    purpose=Purpose.FOLLOW_UP, promotional=True))  # never wrote: blocked
    assert await outbox.run_once() == 2

    # The worker gives no time with a blocked outcome: the store's clock stands in (a real now, past this test's T0).
    sends = await outbox.send_hours(page, WIDE[0], datetime.now(timezone.utc) + DAY)
    assert {(found.status, found.purpose, found.n) for found in sends} == {
        (Status.SENT, Purpose.REPLY, 1), (Status.BLOCKED, Purpose.FOLLOW_UP, 1)}
    assert next(found for found in sends if found.status is Status.SENT).hour == T0
    assert [found.reason_code for found in sends if found.status is Status.BLOCKED] != [None]
    assert await outbox.message_hours(page, *WIDE) == [MessageHour(T0 - timedelta(hours=1), page, 2, 1, 1)]
    assert await outbox.message_hours(None, T0, T0) == []
    with pytest.raises(OutboxInputError):
        await outbox.send_hours(page, T0, T0 - DAY)


# --- the migration's backfill ------------------------------------------------------------------------------------


def insert_old_message(conn: Any, key: str, status: str, created_at: datetime, sent_at: datetime | None = None,
                       reason_code: str | None = None, error: int | None = None, purpose: str = "reply") -> None:
    conn.execute(
        "INSERT INTO messages (page_id, recipient_id, message, sender, purpose, promotional, idempotency_key, status,"
        " created_at, due_at, next_attempt_at, attempts, max_attempts, reason_code, last_error_code, sent_at)"
        " VALUES (?, ?, '{}', 'bot', ?, 0, ?, ?, ?, ?, ?, 1, 8, ?, ?, ?)",
        (PAGE, key, purpose, key, status, sqlite_time(created_at), sqlite_time(created_at), sqlite_time(created_at),
         reason_code, error, sqlite_time(sent_at)),
    )


def test_the_migration_counts_the_outcomes_already_stored(tmp_path: Path) -> None:
    """SQLite migration 007: each final message at its send time, else its creation time; a retry of one of them
    takes back exactly what the backfill counted."""
    path = tmp_path / "outbox.sqlite3"
    migrations = load_migrations(ROOT / "outbox" / "sql" / "sqlite")
    with closing(sqlite3.connect(path)) as conn:
        for migration in migrations[:6]:
            for statement in sqlite_statements(migration.script):
                conn.execute(statement)
        conn.execute("PRAGMA user_version=6")
        insert_old_message(conn, "a", "sent", at(-130), sent_at=at(10))
        insert_old_message(conn, "b", "sent", at(20), sent_at=at(30))
        insert_old_message(conn, "c", "blocked", at(-50), reason_code="outside_window")
        insert_old_message(conn, "d", "failed", at(70), reason_code="graph_551", error=551)
        insert_old_message(conn, "e", "cancelled", at(80), purpose="follow_up")
        insert_old_message(conn, "f", "pending", at(90))
        conn.commit()
    store = SQLiteOutboxStore(path)
    try:
        assert store.send_hours(None, *WIDE) == [
            row(at(-60), Status.BLOCKED, reason="outside_window"),
            row(T0, Status.SENT, 2),
            row(at(60), Status.CANCELLED, purpose=Purpose.FOLLOW_UP),
            row(at(60), Status.FAILED, reason="graph_551", error=551),
        ]
        old_failed = store.get(4)
        assert old_failed.idempotency_key == "d"
        store.retry(old_failed.id, at(300))
        assert [found.status for found in store.send_hours(None, *WIDE)] == [
            Status.BLOCKED, Status.SENT, Status.CANCELLED]
        assert store.message_hours(None, *WIDE) == []  # the outbox kept no history of people's messages
        assert store.message_hours_since() is None  # nobody had written: nothing is missing before the counter
    finally:
        store.close()


def test_a_new_outbox_counts_people_from_the_start(store: OutboxStore) -> None:
    store.record_user_message(PAGE, "u1", T0, "hola")
    assert store.message_hours_since() is None


def test_an_outbox_upgraded_with_peoples_messages_says_when_its_counter_began(tmp_path: Path) -> None:
    """SQLite migration 007 on an outbox where people had written: the reports must say «sin datos» before it."""
    path = tmp_path / "outbox.sqlite3"
    with closing(sqlite3.connect(path)) as conn:
        for migration in load_migrations(ROOT / "outbox" / "sql" / "sqlite")[:6]:
            for statement in sqlite_statements(migration.script):
                conn.execute(statement)
        conn.execute("PRAGMA user_version=6")
        conn.execute("INSERT INTO conversations (page_id, user_id, last_user_message_at) VALUES (?, 'u1', ?)",
                     (PAGE, sqlite_time(T0)))
        conn.commit()
    store = SQLiteOutboxStore(path)
    try:
        started = store.message_hours_since()
        assert started is not None and started.utcoffset() == timedelta(0)
        assert started > T0  # the migration's clock, after the person's message
    finally:
        store.close()
