"""The outbox façade's issue 13 parts (in-memory store, fake Graph transport, the clock fixed): a batch enqueued in one
call and one wake, the states of many messages, who cannot be reached, receipts, the person's last text, and a pause
cancelling a broadcast's pending messages."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from core.settings import SANDBOX_PAGE_ID, Settings
from meta.graph import GraphClient
from outbox.model import MAX_BATCH, NewMessage, OutboxInputError, Outcome, Purpose, SenderKind, Status
from outbox.outbox import Outbox
from outbox.policy_file import load_policy
from outbox.store import InMemoryOutboxStore
from tests.unit.outbox.test_worker_store_outage import RecordingTransport

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=timezone.utc)
PAGE = SANDBOX_PAGE_ID


class CountingStore(InMemoryOutboxStore):
    """Counts the store calls a façade method makes."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def enqueue(self, new: NewMessage, now: datetime):  # type: ignore[no-untyped-def]
        self.calls.append("enqueue")
        return super().enqueue(new, now)

    def enqueue_many(self, news, now):  # type: ignore[no-untyped-def]
        self.calls.append("enqueue_many")
        return super().enqueue_many(news, now)


class CountingOutbox(Outbox):
    kicks = 0

    def kick(self) -> None:
        self.kicks += 1
        super().kick()


@pytest.fixture
def parts() -> tuple[CountingOutbox, CountingStore, RecordingTransport]:
    store, transport = CountingStore(), RecordingTransport()
    client = GraphClient(Settings().page_tokens, transport=transport)
    return CountingOutbox(store, client, load_policy(), worker_id="w1", page_rate=0, clock=lambda: T0), store, transport


def broadcast(user: str, broadcast_id: int = 7, part: int = 0) -> NewMessage:
    return NewMessage(PAGE, user, {"text": "¡Oferta!"}, sender=SenderKind.SYSTEM, purpose=Purpose.FOLLOW_UP,
                      promotional=True, idempotency_key=f"broadcast:{broadcast_id}:{user}:0:{part}")


async def test_a_batch_is_one_store_call_and_one_wake_and_the_worker_sends_it(parts) -> None:
    outbox, store, transport = parts
    for n in range(3):
        await outbox.record_user_message(PAGE, f"p{n}", T0 - timedelta(hours=1), "hola")

    results = await outbox.enqueue_many([broadcast(f"p{n}") for n in range(3)])
    again = await outbox.enqueue_many([broadcast(f"p{n}") for n in range(3)])  # a crashed runner's second try

    assert [created for _, created in results] == [True] * 3 and [created for _, created in again] == [False] * 3
    assert store.calls == ["enqueue_many", "enqueue_many"] and outbox.kicks == 2
    assert await outbox.run_once() == 3
    assert len(transport.sent) == 3
    states = await outbox.states_of([message.id for message, _ in results] + [404])
    assert sorted(states) == sorted(message.id for message, _ in results)
    assert {message.status for message in states.values()} == {Status.SENT}
    assert await outbox.enqueue_many([]) == [] and await outbox.states_of([]) == {}


async def test_batches_over_the_limit_are_refused_before_the_store(parts) -> None:
    outbox, store, _transport = parts

    with pytest.raises(OutboxInputError):
        await outbox.enqueue_many([broadcast(f"p{n}") for n in range(MAX_BATCH + 1)])
    with pytest.raises(OutboxInputError):
        await outbox.states_of(list(range(MAX_BATCH + 1)))
    with pytest.raises(OutboxInputError):
        await outbox.unreachable(PAGE, [f"p{n}" for n in range(MAX_BATCH + 1)])
    assert store.calls == [] and outbox.kicks == 0


async def test_receipts_mark_what_the_worker_sent(parts) -> None:
    outbox, _store, _transport = parts
    await outbox.record_user_message(PAGE, "p1", T0 - timedelta(minutes=1), "hola")
    message, _ = await outbox.enqueue(NewMessage(PAGE, "p1", {"text": "respuesta"}, purpose=Purpose.REPLY))
    await outbox.run_once()
    sent = await outbox.get(message.id)

    assert await outbox.record_receipt(PAGE, "p1", "delivery", None, [sent.graph_message_id or ""]) == 1
    assert await outbox.record_receipt(PAGE, "p1", "read", T0 + timedelta(seconds=5), ()) == 1
    found = await outbox.get(message.id)
    assert (found.delivered_at, found.read_at) == (T0, T0 + timedelta(seconds=5))
    with pytest.raises(OutboxInputError):
        await outbox.record_receipt(PAGE, "p1", "opened", T0, ())


async def test_the_person_s_last_text_reaches_the_contacts_sync(parts) -> None:
    outbox, _store, _transport = parts
    await outbox.record_user_message(PAGE, "p1", T0, "¿a qué hora abren?")
    await outbox.record_user_message(PAGE, "p1", T0 + timedelta(seconds=1))

    [seen] = await outbox.conversations_since(None, 10)
    assert (seen.last_text, seen.message_count) == ("¿a qué hora abren?", 2)


async def test_someone_whose_latest_message_failed_with_551_is_unreachable(parts) -> None:
    outbox, store, _transport = parts
    for user in ("gone", "fine"):
        message, _ = await outbox.enqueue(NewMessage(PAGE, user, {"text": "hola"}))
        [claimed] = store.claim("w0", T0, 30, 1)
        code = 551 if user == "gone" else None
        status = Status.FAILED if code else Status.SENT
        store.complete(claimed.id, "w0", Outcome(status, last_error_code=code, sent_at=None if code else T0))

    assert await outbox.unreachable(PAGE, ["gone", "fine", "unknown"]) == {"gone": "blocked"}
    assert await outbox.unreachable(PAGE, []) == {}


async def test_a_pause_cancels_the_person_s_pending_broadcast_messages_but_not_other_system_ones(parts) -> None:
    outbox, store, _transport = parts
    first, _ = await outbox.enqueue(broadcast("p1", part=0))
    second, _ = await outbox.enqueue(broadcast("p1", part=1))
    someone_else, _ = await outbox.enqueue(broadcast("p2"))
    reminder, _ = await outbox.enqueue(NewMessage(PAGE, "p1", {"text": "su cita es mañana"}, sender=SenderKind.SYSTEM,
                                                  idempotency_key="reminder:42"))

    cancelled = await outbox.cancel_stale_bot_messages(PAGE, "p1", T0)

    assert sorted(cancelled) == sorted([first.id, second.id])
    assert store.get(someone_else.id).status is Status.PENDING and store.get(reminder.id).status is Status.PENDING
