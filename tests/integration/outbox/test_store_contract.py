"""The one contract suite for `OutboxStore`: the same tests against the in-memory fake, SQLite and
PostgreSQL. The fake passing here is what makes it a faithful fake.

`now` is always passed in: no sleeping, no patching. PostgreSQL: a fresh schema per test run (and per
test for the durability tests), picked with search_path in the URL and dropped afterwards, so parallel
runs never meet; unavailable → skipped (fails with REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import functools
import os
import random
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from outbox.model import (
    Alert,
    ConversationSeen,
    InvalidTransition,
    MessageFilter,
    NewMessage,
    NotFound,
    OutboxError,
    OutboxInputError,
    OutboxMessage,
    OutboxStore,
    Outcome,
    PageState,
    Purpose,
    SenderKind,
    SendSlot,
    Status,
)
from outbox.store import InMemoryOutboxStore, PostgresOutboxStore, SQLiteOutboxStore, open_store
from tests.conftest import require_or_skip

ROOT = Path(__file__).resolve().parents[3]
POSTGRES_DSN = os.environ.get("OUTBOX_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
PAGE, OTHER_PAGE = "100000000000001", "100000000000002"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# --- backends ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def postgres_available() -> bool:
    try:
        psycopg2.connect(POSTGRES_DSN, connect_timeout=3).close()
    except psycopg2.OperationalError:
        return False
    return True


def with_search_path(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A store URL whose search_path is a fresh schema, dropped afterwards (parallel runs never meet)."""
    require_or_skip(postgres_available(), "PostgreSQL")
    schema = f"outbox_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(POSTGRES_DSN)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA {schema}")
        try:
            yield with_search_path(POSTGRES_DSN, schema)
        finally:
            with admin.cursor() as cursor:
                cursor.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        admin.close()


@contextmanager
def database_url(backend: str, tmp_path: Path) -> Iterator[str]:
    if backend == "memory":
        yield "memory://"
    elif backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'outbox.sqlite3'}"
    else:
        with postgres_schema() as url:
            yield url


@pytest.fixture(scope="session")
def postgres_run_url() -> Iterator[str]:
    """One schema for the contract tests of this run, migrated once (creating a schema per test
    costs ~0.2 s of DDL); each test starts from empty tables (`store_url`)."""
    with postgres_schema() as url:
        open_store(url).close()
        yield url


def empty_postgres_tables(url: str) -> None:
    with closing(psycopg2.connect(url)) as conn, conn, conn.cursor() as cursor:
        cursor.execute(
            "DELETE FROM messages; DELETE FROM conversations; DELETE FROM pages; DELETE FROM alerts; "
            "DELETE FROM page_send_slots"
        )


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_run_url")
        empty_postgres_tables(url)
        yield url
        return
    with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def store(store_url: str) -> Iterator[OutboxStore]:
    opened = open_store(store_url)
    yield opened
    opened.close()


@pytest.fixture(params=["sqlite", "postgres"])
def durable_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(request.param, tmp_path) as url:
        yield url


def new(recipient: str = "u1", page: str = PAGE, **fields: Any) -> NewMessage:
    fields.setdefault("message", {"text": f"hola {recipient}"})
    return NewMessage(page_id=page, recipient_id=recipient, **fields)


def enqueue(store: OutboxStore, now: datetime = T0, recipient: str = "u1", **fields: Any) -> OutboxMessage:
    message, created = store.enqueue(new(recipient, **fields), now)
    assert created
    return message


def ids(messages: list[OutboxMessage]) -> list[int]:
    return [message.id for message in messages]


def claim(store: OutboxStore, now: datetime = T0, worker: str = "w1", limit: int = 10) -> list[int]:
    return ids(store.claim(worker, now, 30, limit))


def sent(worker: str = "w1") -> Outcome:
    return Outcome(Status.SENT, messaging_type="RESPONSE", graph_message_id="m_1", sent_at=T0)


def send(store: OutboxStore, message_id: int, worker: str = "w1") -> OutboxMessage:
    return store.complete(message_id, worker, sent())


# --- open_store ----------------------------------------------------------------------------------


def test_open_store_picks_the_backend_from_the_url(store_url: str, store: OutboxStore) -> None:
    expected = {"memory": InMemoryOutboxStore, "sqlite": SQLiteOutboxStore, "postgresql": PostgresOutboxStore}
    assert isinstance(store, expected[store_url.split(":", 1)[0]])


def test_open_store_refuses_an_unknown_url() -> None:
    with pytest.raises(OutboxInputError) as refused:
        open_store("mysql://localhost/outbox")
    assert refused.value.reason_code == "invalid_store_url"


def test_a_relative_sqlite_url_is_relative_to_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    opened = open_store("sqlite:///var/outbox.sqlite3")
    opened.close()
    assert (tmp_path / "var" / "outbox.sqlite3").exists()


# --- enqueue, get ------------------------------------------------------------------------------


def test_enqueue_writes_a_pending_message_due_now(store: OutboxStore) -> None:
    payload = {"text": "¿Seguimos? 👋", "quick_replies": [{"content_type": "text", "title": "Sí", "payload": "YES"}]}
    message, created = store.enqueue(
        new(
            message=payload,
            sender=SenderKind.HUMAN,
            purpose=Purpose.REPLY,
            tag="HUMAN_AGENT",
            promotional=True,
            sender_name="Ana",
            max_attempts=3,
        ),
        T0,
    )

    assert created
    assert message.id > 0
    assert (message.page_id, message.recipient_id, message.message) == (PAGE, "u1", payload)
    assert (message.sender, message.purpose, message.tag, message.promotional) == (
        SenderKind.HUMAN,
        Purpose.REPLY,
        "HUMAN_AGENT",
        True,
    )
    assert (message.sender_name, message.max_attempts, message.attempts) == ("Ana", 3, 0)
    assert message.status is Status.PENDING
    assert message.created_at == message.due_at == message.next_attempt_at == T0
    assert uuid.UUID(message.idempotency_key)  # a fresh uuid4 when the caller gave none
    assert message.messaging_type is message.sent_tag is message.reason_code is message.reason is None
    assert message.last_error_code is message.graph_message_id is message.sent_at is None
    assert message.claimed_by is message.lease_until is None
    assert store.get(message.id) == message


def test_a_scheduled_message_is_due_at_not_before(store: OutboxStore) -> None:
    message = enqueue(store, T0, not_before=at(3600))

    assert (message.created_at, message.due_at, message.next_attempt_at) == (T0, at(3600), at(3600))


def test_times_come_back_as_utc_whatever_zone_went_in(store: OutboxStore) -> None:
    quito = timezone(timedelta(hours=-5))
    message = enqueue(store, T0.astimezone(quito), not_before=at(60).astimezone(quito))

    for value in (message.created_at, message.due_at, store.get(message.id).due_at):
        assert value.tzinfo == timezone.utc
    assert (message.created_at, message.due_at) == (T0, at(60))


def test_naive_times_are_refused(store: OutboxStore) -> None:
    with pytest.raises(ValueError):
        store.enqueue(new(), datetime(2024, 5, 1, 12, 0))
    with pytest.raises(ValueError):
        store.enqueue(new(not_before=datetime(2024, 5, 1, 12, 0)), T0)
    assert store.find(MessageFilter()) == []


@pytest.mark.parametrize(
    ("fields", "reason_code"),
    [
        ({"message": {"text": {1, 2}}}, "invalid_message"),
        ({"message": {"value": float("nan")}}, "invalid_message"),
        ({"max_attempts": 0}, "invalid_max_attempts"),
        ({"recipient": ""}, "missing_recipient"),
    ],
)
def test_enqueue_refuses_what_cannot_be_sent(store: OutboxStore, fields: dict[str, Any], reason_code: str) -> None:
    fields = dict(fields)  # the parameters are shared by the three backends
    recipient = fields.pop("recipient", "u1")
    with pytest.raises(OutboxInputError) as refused:
        store.enqueue(new(recipient, **fields), T0)
    assert refused.value.reason_code == reason_code
    assert store.find(MessageFilter()) == []


def test_the_same_idempotency_key_returns_the_stored_message(store: OutboxStore) -> None:
    first, created = store.enqueue(new(idempotency_key="reply:mid.1:0"), T0)
    again, created_again = store.enqueue(new(message={"text": "otro"}, idempotency_key="reply:mid.1:0"), at(5))

    assert (created, created_again) == (True, False)
    assert again == first
    assert store.counts()[Status.PENDING.value] == 1


def test_the_same_idempotency_key_returns_the_message_whatever_its_state(store: OutboxStore) -> None:
    first = enqueue(store, idempotency_key="k")
    claim(store)
    done = send(store, first.id)

    again, created = store.enqueue(new("u9", message={"text": "otro"}, idempotency_key="k"), at(60))

    assert (again, created) == (done, False)
    assert again.status is Status.SENT


# --- one private reply per comment (Meta: "(#10900) Activity already replied to") ------------------------------


def private_reply(comment: str = "111_222", key: str | None = None, page: str = PAGE) -> NewMessage:
    return new(comment, page=page, purpose=Purpose.PRIVATE_REPLY, idempotency_key=key or f"private:{uuid.uuid4()}")


def test_a_second_private_reply_to_one_comment_is_refused_whatever_its_key(store: OutboxStore) -> None:
    first, created = store.enqueue(private_reply(key="private_reply:p:111_222"), T0)

    with pytest.raises(OutboxInputError) as refused:
        store.enqueue(private_reply(key="another-key"), at(1))

    assert created and refused.value.reason_code == "private_reply_already_sent"
    assert refused.value.details() == {"page_id": PAGE, "comment_id": "111_222"}
    assert "una sola por comentario" in refused.value.message_es
    assert store.find(MessageFilter(recipient_id="111_222")) == [first]
    # The same key is the same message, not a refusal; another comment, another page, a public reply are free.
    assert store.enqueue(private_reply(key="private_reply:p:111_222"), at(2)) == (first, False)
    assert store.enqueue(private_reply("111_333"), at(3))[1]
    assert store.enqueue(private_reply(page=OTHER_PAGE), at(4))[1]
    assert store.enqueue(new("111_222", purpose=Purpose.PUBLIC_REPLY), at(5))[1]


@pytest.mark.parametrize("final", [Status.SENT, Status.FAILED, Status.DEAD])
def test_a_private_reply_that_may_have_reached_meta_keeps_its_comment(store: OutboxStore, final: Status) -> None:
    first, _ = store.enqueue(private_reply(), T0)
    claim(store)
    store.complete(first.id, "w1", Outcome(final, sent_at=T0 if final is Status.SENT else None))

    with pytest.raises(OutboxInputError, match="one per comment"):
        store.enqueue(private_reply(), at(60))


def test_a_cancelled_or_blocked_private_reply_leaves_room_for_another(store: OutboxStore) -> None:
    cancelled, _ = store.enqueue(private_reply(), T0)
    store.cancel(cancelled.id, at(1))
    blocked, created = store.enqueue(private_reply(), at(2))
    assert created
    claim(store, at(2))
    store.complete(blocked.id, "w1", Outcome(Status.BLOCKED, reason_code="outside_window"))

    third, created = store.enqueue(private_reply(), at(3))

    assert created and third.status is Status.PENDING


def test_the_send_apis_recipient_id_is_kept_with_the_message(store: OutboxStore) -> None:
    message, _ = store.enqueue(private_reply(), T0)
    claim(store)

    done = store.complete(message.id, "w1", Outcome(Status.SENT, graph_message_id="m_1", graph_recipient_id="psid-9",
                                                    sent_at=T0))

    assert (done.graph_recipient_id, store.get(message.id).graph_recipient_id) == ("psid-9", "psid-9")
    assert message.graph_recipient_id is None


def test_a_stored_message_does_not_change_with_the_callers_dicts(store: OutboxStore) -> None:
    payload: dict[str, Any] = {"text": "hola", "quick_replies": [{"title": "Sí"}]}
    message = enqueue(store, message=payload)
    payload["text"] = "changed"
    payload["quick_replies"].append({"title": "No"})
    message.message["text"] = "changed too"  # type: ignore[index]

    assert store.get(message.id).message == {"text": "hola", "quick_replies": [{"title": "Sí"}]}


def test_get_of_an_unknown_message_is_not_found(store: OutboxStore) -> None:
    with pytest.raises(NotFound):
        store.get(4242)


# --- claim ----------------------------------------------------------------------------------------


def test_claim_moves_due_messages_to_sending_with_a_lease(store: OutboxStore) -> None:
    message = enqueue(store)

    claimed = store.claim("worker-a", at(1), 30.5, 10)

    assert len(claimed) == 1
    taken = claimed[0]
    assert taken.id == message.id
    assert (taken.status, taken.claimed_by, taken.lease_until) == (Status.SENDING, "worker-a", at(31.5))
    assert taken.attempts == 0
    assert store.get(message.id) == taken


def test_claim_takes_nothing_before_it_is_due(store: OutboxStore) -> None:
    message = enqueue(store, not_before=at(60))

    assert claim(store, at(59.999999)) == []
    assert claim(store, at(60)) == [message.id]


def test_claim_orders_by_due_time_and_respects_the_limit(store: OutboxStore) -> None:
    later = enqueue(store, recipient="u1", not_before=at(10))
    first = enqueue(store, recipient="u2")
    middle = enqueue(store, recipient="u3", not_before=at(5))

    assert claim(store, at(10), limit=2) == [first.id, middle.id]
    assert claim(store, at(10), limit=2) == [later.id]
    assert claim(store, at(10), limit=0) == []


def test_a_claimed_message_is_not_claimed_again(store: OutboxStore) -> None:
    enqueue(store)
    assert len(claim(store, worker="w1")) == 1

    assert claim(store, worker="w2") == []
    assert claim(store, worker="w1") == []


def test_only_the_head_of_a_recipients_queue_is_claimed(store: OutboxStore) -> None:
    first = enqueue(store, recipient="u1")
    second = enqueue(store, recipient="u1")
    other = enqueue(store, recipient="u2")

    assert claim(store, worker="w1") == [first.id, other.id]
    assert claim(store, worker="w2") == [], "u1's second message waits for the first"

    send(store, first.id)
    assert claim(store, worker="w2") == [second.id]


def test_the_same_recipient_on_another_page_is_another_queue(store: OutboxStore) -> None:
    mine = enqueue(store, recipient="u1")
    theirs = enqueue(store, recipient="u1", page=OTHER_PAGE)

    assert claim(store) == [mine.id, theirs.id]


def test_a_recipients_queue_is_ordered_by_due_time_then_id(store: OutboxStore) -> None:
    scheduled = enqueue(store, T0, not_before=at(20))
    soon = enqueue(store, at(1))
    tie_a = enqueue(store, at(2), not_before=at(30))
    tie_b = enqueue(store, at(2), not_before=at(30))

    order = []
    for _ in range(4):
        (taken,) = claim(store, at(30))
        order.append(taken)
        send(store, taken)

    assert order == [soon.id, scheduled.id, tie_a.id, tie_b.id]


@pytest.mark.parametrize("final", [Status.SENT, Status.BLOCKED, Status.FAILED, Status.DEAD])
def test_a_final_outcome_lets_the_next_message_go(store: OutboxStore, final: Status) -> None:
    first = enqueue(store)
    second = enqueue(store)
    claim(store)

    store.complete(first.id, "w1", Outcome(final, reason_code="x"))

    assert claim(store) == [second.id]


def test_a_cancelled_head_lets_the_next_message_go(store: OutboxStore) -> None:
    first = enqueue(store)
    second = enqueue(store)

    store.cancel(first.id, T0)

    assert claim(store) == [second.id]


def test_a_head_waiting_to_retry_holds_back_its_recipient_only(store: OutboxStore) -> None:
    first = enqueue(store, recipient="u1")
    second = enqueue(store, recipient="u1")
    claim(store)
    store.complete(first.id, "w1", Outcome(Status.PENDING, next_attempt_at=at(60), last_error_code=2))
    other = enqueue(store, at(1), recipient="u2")

    assert claim(store, at(59)) == [other.id], "u1's second message does not overtake the first"
    assert claim(store, at(60)) == [first.id]
    send(store, first.id)
    assert claim(store, at(60)) == [second.id]


def test_a_message_that_sorts_earlier_waits_for_the_one_in_flight(store: OutboxStore) -> None:
    in_flight = enqueue(store)
    assert claim(store) == [in_flight.id]
    earlier = enqueue(store, at(1), not_before=at(-60))  # sorts before the one being sent

    assert claim(store, at(1)) == [], "never two messages of one recipient at once"
    send(store, in_flight.id)
    assert claim(store, at(1)) == [earlier.id]


def test_paused_pages_are_skipped_until_resumed(store: OutboxStore) -> None:
    paused = enqueue(store, page=PAGE)
    running = enqueue(store, page=OTHER_PAGE)

    store.pause_page(PAGE, "token invalid (190)", T0)
    assert claim(store) == [running.id]

    store.resume_page(PAGE)
    assert claim(store) == [paused.id]


def test_a_message_claimed_before_its_page_was_paused_can_still_be_completed(store: OutboxStore) -> None:
    message = enqueue(store)
    claim(store)
    store.pause_page(PAGE, "token invalid", T0)

    done = store.complete(message.id, "w1", Outcome(Status.PENDING, next_attempt_at=at(1), last_error_code=190))

    assert done.status is Status.PENDING
    assert claim(store, at(2)) == []


# --- complete ---------------------------------------------------------------------------------------


def test_complete_applies_the_outcome_and_clears_the_claim(store: OutboxStore) -> None:
    message = enqueue(store)
    claim(store, worker="w1")

    done = store.complete(
        message.id,
        "w1",
        Outcome(
            Status.SENT,
            messaging_type="MESSAGE_TAG",
            sent_tag="HUMAN_AGENT",
            reason_code="human_agent_tag",
            reason="Enviado con la etiqueta HUMAN_AGENT",
            graph_message_id="m_abc",
            sent_at=at(2),
        ),
    )

    assert (done.status, done.attempts) == (Status.SENT, 1)
    assert (done.messaging_type, done.sent_tag, done.graph_message_id, done.sent_at) == (
        "MESSAGE_TAG",
        "HUMAN_AGENT",
        "m_abc",
        at(2),
    )
    assert (done.reason_code, done.reason) == ("human_agent_tag", "Enviado con la etiqueta HUMAN_AGENT")
    assert (done.claimed_by, done.lease_until) == (None, None)
    assert done.next_attempt_at == message.next_attempt_at
    assert store.get(message.id) == done


def test_retry_later_keeps_the_message_pending_until_next_attempt_at(store: OutboxStore) -> None:
    message = enqueue(store)
    claim(store)

    waiting = store.complete(
        message.id,
        "w1",
        Outcome(Status.PENDING, next_attempt_at=at(30), reason_code="rate_limited", last_error_code=4),
    )

    assert (waiting.status, waiting.attempts, waiting.next_attempt_at) == (Status.PENDING, 1, at(30))
    assert (waiting.reason_code, waiting.last_error_code) == ("rate_limited", 4)
    assert waiting.due_at == T0, "the queue position does not move"
    assert claim(store, at(29)) == []
    assert claim(store, at(30)) == [message.id]
    assert store.complete(message.id, "w1", Outcome(Status.DEAD, reason_code="gave_up")).attempts == 2


def test_each_outcome_describes_the_latest_attempt_only(store: OutboxStore) -> None:
    message = enqueue(store)
    claim(store)
    store.complete(message.id, "w1", Outcome(Status.PENDING, next_attempt_at=at(5), reason_code="x", last_error_code=2))
    claim(store, at(5))

    done = send(store, message.id)

    assert (done.reason_code, done.last_error_code, done.attempts) == (None, None, 2)


def test_complete_by_a_worker_that_does_not_hold_the_message_is_refused(store: OutboxStore) -> None:
    message = enqueue(store)
    claim(store, worker="w1")

    with pytest.raises(InvalidTransition):
        store.complete(message.id, "w2", sent())
    held = store.get(message.id)
    assert (held.status, held.claimed_by, held.attempts) == (Status.SENDING, "w1", 0)


def test_complete_of_a_message_not_sending_is_refused(store: OutboxStore) -> None:
    message = enqueue(store)
    with pytest.raises(InvalidTransition):
        store.complete(message.id, "w1", sent())

    claim(store)
    send(store, message.id)
    with pytest.raises(InvalidTransition):
        store.complete(message.id, "w1", sent())
    assert store.get(message.id).attempts == 1


def test_complete_of_an_unknown_message_is_not_found(store: OutboxStore) -> None:
    with pytest.raises(NotFound):
        store.complete(4242, "w1", sent())


@pytest.mark.parametrize(
    "outcome",
    [Outcome(Status.PENDING), Outcome(Status.SENDING), Outcome(Status.CANCELLED)],
    ids=["pending-without-time", "sending", "cancelled"],
)
def test_complete_refuses_an_outcome_that_is_not_one(store: OutboxStore, outcome: Outcome) -> None:
    message = enqueue(store)
    claim(store)

    with pytest.raises(OutboxInputError) as refused:
        store.complete(message.id, "w1", outcome)

    assert refused.value.reason_code == "invalid_outcome"
    assert store.get(message.id).status is Status.SENDING


# --- reclaim_expired --------------------------------------------------------------------------------


def test_expired_leases_go_back_to_pending(store: OutboxStore) -> None:
    crashed = enqueue(store, recipient="u1")
    alive = enqueue(store, recipient="u2")
    store.claim("crashed", T0, 30, 1)
    store.claim("alive", at(10), 30, 1)

    assert store.reclaim_expired(at(30)) == 0, "a lease ending exactly now is still held"
    assert store.reclaim_expired(at(31)) == 1

    back = store.get(crashed.id)
    assert (back.status, back.claimed_by, back.lease_until, back.attempts) == (Status.PENDING, None, None, 0)
    assert store.get(alive.id).status is Status.SENDING
    assert store.reclaim_expired(at(31)) == 0


def test_a_reclaimed_message_goes_to_the_next_worker_and_the_old_one_is_refused(store: OutboxStore) -> None:
    message = enqueue(store)
    later = enqueue(store)
    claim(store, T0, worker="crashed")
    store.reclaim_expired(at(31))

    assert claim(store, at(31), worker="w2") == [message.id], "still the head of its queue"
    with pytest.raises(InvalidTransition):
        store.complete(message.id, "crashed", sent())
    send(store, message.id, "w2")
    assert claim(store, at(31), worker="w2") == [later.id]


def test_reclaim_keeps_the_attempts_made(store: OutboxStore) -> None:
    message = enqueue(store)
    claim(store)
    store.complete(message.id, "w1", Outcome(Status.PENDING, next_attempt_at=at(1), last_error_code=2))
    claim(store, at(1))

    store.reclaim_expired(at(100))

    assert store.get(message.id).attempts == 1


# --- release ---------------------------------------------------------------------------------------


def test_release_gives_a_claimed_message_back_unsent_due_later(store: OutboxStore) -> None:
    message = enqueue(store)
    later = enqueue(store)
    claim(store)

    released = store.release(message.id, "w1", at(5))

    assert (released.status, released.claimed_by, released.lease_until) == (Status.PENDING, None, None)
    assert (released.next_attempt_at, released.due_at, released.attempts) == (at(5), T0, 0), "not an attempt"
    assert store.get(message.id) == released
    assert claim(store, at(4.9), worker="w2") == [], "not before not_before, and its recipient's next one waits"
    assert claim(store, at(5), worker="w2") == [message.id], "still the head of its recipient's queue"
    send(store, message.id, "w2")
    assert claim(store, at(5), worker="w2") == [later.id]


def test_release_keeps_the_attempts_made(store: OutboxStore) -> None:
    message = enqueue(store)
    claim(store)
    store.complete(message.id, "w1", Outcome(Status.PENDING, next_attempt_at=at(1), last_error_code=2))
    claim(store, at(1))

    released = store.release(message.id, "w1", at(3))

    assert (released.attempts, released.last_error_code) == (1, 2)


def test_release_by_a_worker_that_does_not_hold_the_message_is_refused(store: OutboxStore) -> None:
    message = enqueue(store)
    pending = enqueue(store, recipient="u2", not_before=at(60))
    claim(store, worker="w1")

    with pytest.raises(InvalidTransition):
        store.release(message.id, "w2", at(5))
    with pytest.raises(InvalidTransition):
        store.release(pending.id, "w1", at(5))
    with pytest.raises(NotFound):
        store.release(999_999, "w1", at(5))
    assert store.get(message.id).status is Status.SENDING
    assert store.get(pending.id).next_attempt_at == at(60)


# --- reserve_send_slot ----------------------------------------------------------------------------


def test_send_slots_of_a_page_are_an_interval_apart(store: OutboxStore) -> None:
    slots = [store.reserve_send_slot(PAGE, T0, 5) for _ in range(3)]

    assert slots == [SendSlot(True, T0), SendSlot(True, at(0.2)), SendSlot(True, at(0.4))]


def test_send_slots_are_per_page(store: OutboxStore) -> None:
    store.reserve_send_slot(PAGE, T0, 5)
    store.reserve_send_slot(PAGE, T0, 5)

    assert store.reserve_send_slot(OTHER_PAGE, T0, 5) == SendSlot(True, T0), "another page is not held up"


def test_an_idle_page_gets_its_slot_at_once(store: OutboxStore) -> None:
    store.reserve_send_slot(PAGE, T0, 5)

    assert store.reserve_send_slot(PAGE, at(60), 5) == SendSlot(True, at(60))
    assert store.reserve_send_slot(PAGE, at(60), 5) == SendSlot(True, at(60.2))


def test_a_slot_after_not_after_is_not_granted_and_not_recorded(store: OutboxStore) -> None:
    store.reserve_send_slot(PAGE, T0, 5)

    refused = store.reserve_send_slot(PAGE, T0, 5, not_after=at(0.1))

    assert refused == SendSlot(False, at(0.2)), "it says when the page is free"
    assert store.reserve_send_slot(PAGE, T0, 5) == SendSlot(True, at(0.2)), "the refused slot is still free"


def test_a_new_rate_applies_from_the_next_slot(store: OutboxStore) -> None:
    store.reserve_send_slot(PAGE, T0, 1)

    assert store.reserve_send_slot(PAGE, T0, 10) == SendSlot(True, at(0.1)), "the latest slot is kept, not a debt"


def test_send_slots_come_back_as_utc_whatever_zone_went_in(store: OutboxStore) -> None:
    madrid = timezone(timedelta(hours=2))
    store.reserve_send_slot(PAGE, T0.astimezone(madrid), 5)

    slot = store.reserve_send_slot(PAGE, T0.astimezone(madrid), 5)

    assert slot.send_at == at(0.2) and slot.send_at.tzinfo == timezone.utc


# --- cancel, retry -------------------------------------------------------------------------------


def test_cancel_a_pending_message(store: OutboxStore) -> None:
    message = enqueue(store, not_before=at(60))

    cancelled = store.cancel(message.id, T0)

    assert cancelled.status is Status.CANCELLED
    assert store.get(message.id) == cancelled
    assert claim(store, at(60)) == []


def test_only_a_pending_message_can_be_cancelled(store: OutboxStore) -> None:
    sending = enqueue(store, recipient="u1")
    done = enqueue(store, recipient="u2")
    claim(store)
    send(store, done.id)
    cancelled = enqueue(store, recipient="u3")
    store.cancel(cancelled.id, T0)

    for message_id in (sending.id, done.id, cancelled.id):
        before = store.get(message_id)
        with pytest.raises(InvalidTransition):
            store.cancel(message_id, T0)
        assert store.get(message_id) == before
    with pytest.raises(NotFound):
        store.cancel(4242, T0)


@pytest.mark.parametrize("final", [Status.DEAD, Status.FAILED])
def test_retry_revives_a_dead_or_failed_message_due_now(store: OutboxStore, final: Status) -> None:
    message = enqueue(store)
    claim(store)
    store.complete(message.id, "w1", Outcome(final, reason_code="gave_up", last_error_code=2))

    revived = store.retry(message.id, at(600))

    assert (revived.status, revived.attempts) == (Status.PENDING, 0)
    assert (revived.due_at, revived.next_attempt_at) == (at(600), at(600))
    assert revived.created_at == T0
    assert store.get(message.id) == revived
    assert claim(store, at(599)) == []
    assert claim(store, at(600)) == [message.id]


def test_a_retried_message_joins_the_back_of_its_recipients_queue(store: OutboxStore) -> None:
    dead = enqueue(store, T0)
    claim(store)
    store.complete(dead.id, "w1", Outcome(Status.DEAD))
    queued_since = [enqueue(store, at(1)).id, enqueue(store, at(2)).id]

    store.retry(dead.id, at(3))
    order = []
    for _ in range(3):
        (taken,) = claim(store, at(3))
        order.append(taken)
        send(store, taken)

    assert order == [*queued_since, dead.id]


def test_only_a_dead_or_failed_message_can_be_retried(store: OutboxStore) -> None:
    pending = enqueue(store, recipient="u1", not_before=at(60))
    sending = enqueue(store, recipient="u2")
    blocked = enqueue(store, recipient="u3")
    claim(store)
    store.complete(blocked.id, "w1", Outcome(Status.BLOCKED, reason_code="outside_window"))
    cancelled = enqueue(store, recipient="u4", not_before=at(60))
    store.cancel(cancelled.id, T0)

    for message_id in (pending.id, sending.id, blocked.id, cancelled.id):
        before = store.get(message_id)
        with pytest.raises(InvalidTransition):
            store.retry(message_id, T0)
        assert store.get(message_id) == before
    with pytest.raises(NotFound):
        store.retry(4242, T0)


# --- conversations ----------------------------------------------------------------------------------


def test_last_user_message_at_keeps_the_latest_time_per_page_and_user(store: OutboxStore) -> None:
    assert store.last_user_message_at(PAGE, "u1") is None

    store.record_user_message(PAGE, "u1", at(10))
    store.record_user_message(PAGE, "u1", at(5))  # a late webhook
    store.record_user_message(OTHER_PAGE, "u1", at(1))

    assert store.last_user_message_at(PAGE, "u1") == at(10)
    assert store.last_user_message_at(OTHER_PAGE, "u1") == at(1)
    assert store.last_user_message_at(PAGE, "u2") is None

    store.record_user_message(PAGE, "u1", at(20).astimezone(timezone(timedelta(hours=-5))))
    latest = store.last_user_message_at(PAGE, "u1")
    assert latest == at(20) and latest.tzinfo == timezone.utc


def seen(rows: list[ConversationSeen]) -> list[tuple[str, str, datetime]]:
    return [(row.page_id, row.user_id, row.last_user_message_at) for row in rows]


def test_conversations_since_lists_who_wrote_in_the_order_they_were_recorded(store: OutboxStore) -> None:
    assert store.conversations_since(None, 10) == []
    store.record_user_message(PAGE, "u2", at(10))
    store.record_user_message(PAGE, "u1", at(10))
    store.record_user_message(OTHER_PAGE, "u1", at(5))  # Meta's time older, recorded later: read later
    enqueue(store, recipient="u9")  # a conversation we only wrote to: nobody wrote

    first = store.conversations_since(None, 10)
    assert seen(first) == [(PAGE, "u2", at(10)), (PAGE, "u1", at(10)), (OTHER_PAGE, "u1", at(5))]
    assert [row.recorded_at for row in first] == sorted(row.recorded_at for row in first)
    assert all(row.recorded_at.tzinfo == timezone.utc for row in first)
    assert seen(store.conversations_since(None, 2)) == [(PAGE, "u2", at(10)), (PAGE, "u1", at(10))]
    assert seen(store.conversations_since(first[0].recorded_at, 10)) == [
        (PAGE, "u1", at(10)), (OTHER_PAGE, "u1", at(5))]
    cursor = first[-1].recorded_at
    assert store.conversations_since(cursor, 10) == []

    store.record_user_message(PAGE, "u3", at(10) - timedelta(hours=1))  # handled an hour late: still after the cursor
    store.record_user_message(PAGE, "u2", at(40))  # wrote again: it moves after the cursor
    store.record_user_message(PAGE, "u1", at(1))  # a redelivery older than what is kept: nothing changed, not read
    assert seen(store.conversations_since(cursor, 10)) == [
        (PAGE, "u3", at(10) - timedelta(hours=1)), (PAGE, "u2", at(40))]
    assert store.last_user_message_at(PAGE, "u1") == at(10)


def test_messages_we_send_do_not_count_as_the_user_writing(store: OutboxStore) -> None:
    message = enqueue(store, recipient="u1")
    claim(store)
    send(store, message.id)

    assert store.last_user_message_at(PAGE, "u1") is None


# --- pages, alerts --------------------------------------------------------------------------------


def test_an_unknown_page_is_running(store: OutboxStore) -> None:
    assert store.page(PAGE) == PageState(PAGE)


def test_pause_page_records_why_and_raises_one_alert_per_outage(store: OutboxStore) -> None:
    store.pause_page(PAGE, "El token de la página no es válido (190)", at(1))
    store.pause_page(PAGE, "again, from another worker", at(2))

    assert store.page(PAGE) == PageState(PAGE, True, "El token de la página no es válido (190)", at(1))
    (alert,) = store.alerts()
    assert (alert.page_id, alert.code, alert.message, alert.created_at) == (
        PAGE,
        "token_invalid",
        "El token de la página no es válido (190)",
        at(1),
    )

    store.resume_page(PAGE)
    assert store.page(PAGE) == PageState(PAGE)
    store.pause_page(PAGE, "expired again", at(3))
    assert [alert.message for alert in store.alerts()] == ["expired again", "El token de la página no es válido (190)"]


def test_utility_templates_is_a_page_setting_of_its_own(store: OutboxStore) -> None:
    store.set_utility_templates(PAGE, True)
    store.pause_page(PAGE, "token", T0)
    store.resume_page(PAGE)

    assert store.page(PAGE) == PageState(PAGE, utility_templates=True)
    assert store.page(OTHER_PAGE) == PageState(OTHER_PAGE)

    store.set_utility_templates(PAGE, False)
    assert store.page(PAGE).utility_templates is False


def test_alerts_are_newest_first_up_to_the_limit(store: OutboxStore) -> None:
    for second, page in enumerate([PAGE, OTHER_PAGE, "p3"]):
        store.pause_page(page, f"token of {page}", at(second))

    alerts = store.alerts()
    assert [alert.page_id for alert in alerts] == ["p3", OTHER_PAGE, PAGE]
    assert all(isinstance(alert, Alert) for alert in alerts)
    assert alerts[0].id > alerts[1].id > alerts[2].id
    assert [alert.page_id for alert in store.alerts(limit=2)] == ["p3", OTHER_PAGE]


# --- counts, find -------------------------------------------------------------------------------


def test_counts_has_every_status(store: OutboxStore) -> None:
    assert store.counts() == {status.value: 0 for status in Status}

    messages = [enqueue(store, recipient=f"u{index}") for index in range(4)]
    claim(store, limit=3)
    send(store, messages[0].id)
    store.complete(messages[1].id, "w1", Outcome(Status.FAILED))
    store.cancel(messages[3].id, T0)

    assert store.counts() == {
        "pending": 0,
        "sending": 1,
        "sent": 1,
        "blocked": 0,
        "failed": 1,
        "dead": 0,
        "cancelled": 1,
    }


def test_find_is_newest_first_with_filters(store: OutboxStore) -> None:
    a1 = enqueue(store, recipient="a")
    b1 = enqueue(store, recipient="b")
    a2 = enqueue(store, recipient="a")
    a_other_page = enqueue(store, recipient="a", page=OTHER_PAGE)
    claim(store)
    send(store, a1.id)

    assert ids(store.find(MessageFilter())) == [a_other_page.id, a2.id, b1.id, a1.id]
    assert ids(store.find(MessageFilter(recipient_id="a"))) == [a_other_page.id, a2.id, a1.id]
    assert ids(store.find(MessageFilter(recipient_id="a", page_id=PAGE))) == [a2.id, a1.id]
    assert ids(store.find(MessageFilter(page_id=OTHER_PAGE))) == [a_other_page.id]
    assert ids(store.find(MessageFilter(statuses=[Status.SENT]))) == [a1.id]
    assert ids(store.find(MessageFilter(statuses=[Status.SENDING, Status.SENT]))) == [a_other_page.id, b1.id, a1.id]
    assert ids(store.find(MessageFilter(recipient_id="nobody"))) == []
    assert store.find(MessageFilter(recipient_id="a", limit=1))[0] == store.get(a_other_page.id)


def test_find_pages_through_everything_with_before_id(store: OutboxStore) -> None:
    everything = [enqueue(store, recipient=f"u{index % 3}").id for index in range(7)]

    seen: list[int] = []
    before: int | None = None
    while page := store.find(MessageFilter(limit=3, before_id=before)):
        assert len(page) <= 3
        seen += ids(page)
        before = page[-1].id

    assert seen == sorted(everything, reverse=True)
    assert store.find(MessageFilter(limit=0)) == []


def test_negative_limits_are_refused(store: OutboxStore) -> None:
    with pytest.raises(OutboxInputError):
        store.find(MessageFilter(limit=-1))
    with pytest.raises(OutboxInputError):
        store.alerts(limit=-1)


def test_close_twice_is_harmless(store_url: str) -> None:
    """A second close (a shutdown path running twice) raises nothing, and what was written before it is kept."""
    opened = open_store(store_url)
    message, created = opened.enqueue(new("psid-close"), T0)
    assert created
    opened.close()
    opened.close()
    if store_url == "memory://":
        return  # nothing outlives the in-memory store by design
    reopened = open_store(store_url)
    try:
        assert [m.id for m in reopened.find(MessageFilter(recipient_id="psid-close"))] == [message.id]
    finally:
        reopened.close()


# --- the fake answers like the databases --------------------------------------------------------------


def random_workload(store: OutboxStore, seed: int, steps: int = 300) -> list[Any]:
    """A seeded mix of every operation; what the store answers (or raises) at each step.

    Messages are named by the order they were created in: PostgreSQL's ids have gaps (a conflicting
    insert uses a sequence number), which the contract allows."""
    rng = random.Random(seed)
    now = T0
    created: list[int] = []  # the store's ids, in creation order
    given_up: list[int] = []  # dead or failed at some point: worth a retry
    held: dict[int, str] = {}  # claimed: message id → worker (maybe reclaimed since)
    answers: list[Any] = []

    def pick(among: list[int]) -> int:
        return rng.choice(among) if among and rng.random() < 0.95 else 10**9

    def normal(message: OutboxMessage) -> dict[str, Any]:
        data = message.to_dict()
        data["id"] = created.index(message.id)
        if not message.idempotency_key.startswith("k"):
            data["idempotency_key"] = "a uuid4"
        return data

    for _ in range(steps):
        now += timedelta(seconds=rng.choice([0, 0, 1, 7, 40]))
        operation = rng.choice(["enqueue"] * 4 + ["claim"] * 3 + ["complete"] * 3 + ["other"] * 2)
        try:
            if operation == "enqueue":
                recipient, page = f"u{rng.randrange(4)}", rng.choice([PAGE, PAGE, OTHER_PAGE])
                not_before = now + timedelta(seconds=rng.choice([-30, 0, 0, 20])) if rng.random() < 0.5 else None
                key = f"k{rng.randrange(60)}" if rng.random() < 0.5 else None
                stored, is_new = store.enqueue(new(recipient, page, not_before=not_before, idempotency_key=key), now)
                if is_new:
                    created.append(stored.id)
                answers.append(("enqueue", normal(stored), is_new))
            elif operation == "claim":
                worker = rng.choice(["w1", "w2"])
                claimed = store.claim(worker, now, 30, rng.randrange(1, 4))
                held.update((message.id, worker) for message in claimed)
                answers.append(("claim", [normal(message) for message in claimed]))
            elif operation == "complete":
                outcome = rng.choice(
                    [
                        Outcome(Status.SENT, sent_at=now, graph_message_id="m"),
                        Outcome(Status.PENDING, next_attempt_at=now + timedelta(seconds=15), last_error_code=2),
                        Outcome(Status.DEAD, reason_code="gave_up"),
                        Outcome(Status.FAILED, last_error_code=100),
                        Outcome(Status.BLOCKED),
                    ]
                )
                message_id = pick(sorted(held))
                worker = held.pop(message_id, "w1") if rng.random() < 0.9 else "w2"
                done = store.complete(message_id, worker, outcome)
                answers.append(("complete", normal(done)))
                if done.status in (Status.DEAD, Status.FAILED):
                    given_up.append(done.id)
            else:
                action = rng.choice(["reclaim", "cancel", "retry", "pause", "resume", "user"])
                if action == "reclaim":
                    answers.append(("reclaim", store.reclaim_expired(now)))
                elif action == "cancel":
                    answers.append(("cancel", normal(store.cancel(pick(created), now))))
                elif action == "retry":
                    answers.append(("retry", normal(store.retry(pick(given_up or created), now))))
                elif action == "pause":
                    store.pause_page(rng.choice([PAGE, OTHER_PAGE]), "token", now)
                elif action == "resume":
                    store.resume_page(rng.choice([PAGE, OTHER_PAGE]))
                else:
                    store.record_user_message(PAGE, f"u{rng.randrange(4)}", now - timedelta(seconds=rng.randrange(90)))
        except (NotFound, InvalidTransition) as refused:
            answers.append((operation, type(refused).__name__))
    answers.append(("end", store.counts(), [normal(message) for message in store.find(MessageFilter(limit=1000))]))
    answers.append(("pages", store.alerts(), store.page(PAGE), store.page(OTHER_PAGE)))
    answers.append(("window", [store.last_user_message_at(PAGE, f"u{index}") for index in range(4)]))
    return answers


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_database_store_answers_a_random_workload_like_the_fake(durable_url: str, seed: int) -> None:
    fake = InMemoryOutboxStore()
    database = open_store(durable_url)
    try:
        expected, actual = random_workload(fake, seed), random_workload(database, seed)
    finally:
        database.close()

    kinds = {answer[0] for answer in expected if not isinstance(answer[-1], str)}
    assert {"enqueue", "claim", "complete", "reclaim", "cancel", "retry"} <= kinds, "every operation succeeds sometimes"
    for step, (wanted, got) in enumerate(zip(expected, actual, strict=True)):
        assert got == wanted, f"step {step}"


# --- durability -------------------------------------------------------------------------------------


def test_a_reopened_store_sees_what_was_committed(durable_url: str) -> None:
    first = open_store(durable_url)
    message = enqueue(first, recipient="u1")
    waiting = enqueue(first, recipient="u1")
    claim(first)
    first.record_user_message(PAGE, "u1", at(3))
    first.pause_page(OTHER_PAGE, "token", at(4))
    first.close()

    reopened = open_store(durable_url)  # migrations already applied: nothing to do
    try:
        assert reopened.get(message.id).status is Status.SENDING
        assert reopened.get(waiting.id).status is Status.PENDING
        assert reopened.last_user_message_at(PAGE, "u1") == at(3)
        assert reopened.page(OTHER_PAGE).paused
        assert len(reopened.alerts()) == 1
        send(reopened, message.id)
        assert claim(reopened) == [waiting.id]
    finally:
        reopened.close()


def test_two_stores_on_one_database_share_the_send_slots(durable_url: str) -> None:
    app, rasa = open_store(durable_url), open_store(durable_url)
    try:
        slots = [store.reserve_send_slot(PAGE, T0, 5).send_at for store in (app, rasa, app, rasa)]
        assert slots == [T0, at(0.2), at(0.4), at(0.6)], "two processes on one page keep one rate"
    finally:
        app.close()
        rasa.close()
    reopened = open_store(durable_url)
    try:
        assert reopened.reserve_send_slot(PAGE, T0, 5).send_at == at(0.8), "the latest slot is committed"
    finally:
        reopened.close()


def test_two_stores_on_one_database_share_the_queue(durable_url: str) -> None:
    app, rasa = open_store(durable_url), open_store(durable_url)
    try:
        message = enqueue(rasa)
        assert claim(app, worker="app") == [message.id]
        assert claim(rasa, worker="rasa") == []
        assert app.get(message.id) == rasa.get(message.id)
    finally:
        app.close()
        rasa.close()


CRASHING_PROCESS = """
import sys, time
from datetime import datetime
from outbox.model import NewMessage
from outbox.store import open_store

url, now = sys.argv[1], datetime.fromisoformat(sys.argv[2])
store = open_store(url)
store.enqueue(NewMessage("p", "u1", {"text": "committed"}), now)
store.claim("crashed-worker", now, 30, 10)
store.enqueue(NewMessage("p", "u1", {"text": "also committed"}), now)
# A transaction still open when the process dies: none of it may survive.
if url.startswith("sqlite:///"):
    import sqlite3
    raw = sqlite3.connect(url[len("sqlite:///"):], isolation_level=None)
    raw.execute("BEGIN IMMEDIATE")
else:
    import psycopg2
    raw = psycopg2.connect(url)
raw.cursor().execute(
    "INSERT INTO alerts (page_id, code, message, created_at) VALUES ('p', 'x', 'uncommitted', '2024-05-01')"
)
print("ready", flush=True)
time.sleep(60)
"""


def test_after_a_crash_the_next_store_sees_exactly_what_was_committed(durable_url: str) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", CRASHING_PROCESS, durable_url, T0.isoformat()],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
    finally:
        process.kill()  # SIGKILL: no close, no rollback, the write lock still held
        process.wait()
        if process.stdout is not None:
            process.stdout.close()

    after = open_store(durable_url)
    try:
        claimed, waiting = sorted(after.find(MessageFilter()), key=lambda message: message.id)
        assert (claimed.status, claimed.claimed_by) == (Status.SENDING, "crashed-worker")
        assert waiting.status is Status.PENDING
        assert after.alerts() == []
        assert after.reclaim_expired(at(31)) == 1  # the database is writable again
        assert claim(after, at(31)) == [claimed.id]
    finally:
        after.close()


def test_a_database_written_by_newer_code_is_refused(durable_url: str) -> None:
    open_store(durable_url).close()
    if durable_url.startswith("sqlite:///"):
        with closing(sqlite3.connect(durable_url[len("sqlite:///") :])) as conn:
            conn.execute("PRAGMA user_version = 99")
    else:
        with closing(psycopg2.connect(durable_url)) as conn, conn, conn.cursor() as cursor:
            cursor.execute("INSERT INTO outbox_migrations (version, name) VALUES (99, 'from_the_future')")

    with pytest.raises(OutboxError, match="newer"):
        open_store(durable_url)


def test_conversations_recorded_before_the_recorded_time_existed_keep_their_place(tmp_path: Path) -> None:
    """Migration 005 (SQLite): rows written before it are read with Meta's time standing in for the recorded one,
    so the contacts' sync's saved cursor (Meta's time until then) goes on where it was."""
    from core.sqlite import load_migrations, sqlite_statements

    path = tmp_path / "outbox.sqlite3"
    with closing(sqlite3.connect(path)) as conn:
        for migration in load_migrations(ROOT / "outbox" / "sql" / "sqlite")[:4]:
            for statement in sqlite_statements(migration.script):
                conn.execute(statement)
        conn.execute("INSERT INTO conversations (page_id, user_id, last_user_message_at) VALUES (?, ?, ?)",
                     (PAGE, "old", at(10).isoformat(timespec="microseconds")))
        conn.execute("PRAGMA user_version=4")
        conn.commit()
    store = SQLiteOutboxStore(path)
    try:
        assert store.conversations_since(None, 10) == [ConversationSeen(PAGE, "old", at(10), at(10))]
        assert store.conversations_since(at(10), 10) == []
    finally:
        store.close()
