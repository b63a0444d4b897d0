"""The worker while its database is away (a PostgreSQL restart): in-memory store, fake Graph transport, no I/O.

A store that raises `StoreUnavailable` for a while stands in for the restart. On the old worker the outcome of
a message already accepted by Meta was dropped ("could not record"), the message stayed `sending`, and its lease
expiry sent it a second time; the first test fails there. The integration test with a real restart is
tests/integration/faults/test_outbox_postgres_restart.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from core.settings import SANDBOX_PAGE_ID, Settings
from meta.graph import GraphClient, GraphRequest, GraphResponse
from outbox.model import MessageFilter, NewMessage, Outcome, Status
from outbox.policy_file import load_policy
from outbox.store import InMemoryOutboxStore, StoreUnavailable
from outbox.worker import OutboxWorker

USER = "psid-outage"


class RecordingTransport:
    """Meta accepting every send, remembering each one."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, request: GraphRequest) -> GraphResponse:
        self.sent.append(dict(request.json_body or {}))
        return GraphResponse(200, {"recipient_id": USER, "message_id": f"m_{len(self.sent)}"})

    async def close(self) -> None:
        return None


class RestartingStore(InMemoryOutboxStore):
    """`complete` (or every call, with `all_calls`) fails as a lost connection does, `failures` times."""

    def __init__(self, failures: int, all_calls: bool = False) -> None:
        super().__init__()
        self.failures = failures
        self.all_calls = all_calls

    def _maybe_fail(self) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise StoreUnavailable("PostgreSQL connection lost: server closed the connection unexpectedly")

    def complete(self, message_id: int, worker_id: str, outcome: Outcome) -> Any:
        self._maybe_fail()
        return super().complete(message_id, worker_id, outcome)

    def last_user_message_at(self, page_id: str, user_id: str) -> datetime | None:
        if self.all_calls:
            self._maybe_fail()
        return super().last_user_message_at(page_id, user_id)


def worker_for(store: InMemoryOutboxStore, transport: RecordingTransport, lease_seconds: float) -> OutboxWorker:
    client = GraphClient(Settings().page_tokens, transport=transport)
    return OutboxWorker(store, client, load_policy(), worker_id="w1", lease_seconds=lease_seconds, page_rate=0)


def enqueue_one(store: InMemoryOutboxStore) -> None:
    now = datetime.now(timezone.utc)
    store.record_user_message(SANDBOX_PAGE_ID, USER, now)
    store.enqueue(NewMessage(SANDBOX_PAGE_ID, USER, {"text": "su pedido salió"}), now)


async def test_an_outcome_lost_to_a_restart_is_recorded_when_the_database_is_back() -> None:
    store, transport = RestartingStore(failures=3), RecordingTransport()
    enqueue_one(store)
    worker = worker_for(store, transport, lease_seconds=30)
    assert await worker.run_once() == 1
    [message] = store.find(MessageFilter())
    assert message.status is Status.SENT, "the outcome was recorded once the store answered again, within the lease"
    assert len(transport.sent) == 1
    later = datetime.now(timezone.utc) + timedelta(seconds=31)
    assert store.reclaim_expired(later) == 0 and await worker.run_once() == 0
    assert len(transport.sent) == 1, "nothing left `sending` for a lease expiry to send again"


async def test_a_read_before_the_send_is_retried_too() -> None:
    store, transport = RestartingStore(failures=2, all_calls=True), RecordingTransport()
    enqueue_one(store)
    worker = worker_for(store, transport, lease_seconds=30)
    assert await worker.run_once() == 1
    assert [m.status for m in store.find(MessageFilter())] == [Status.SENT]
    assert len(transport.sent) == 1


async def test_past_the_lease_the_worker_gives_up_and_the_lease_returns_the_message() -> None:
    """An outage longer than the lease: the message stays `sending` (another worker may own it by now), the worker
    does not hang on it, and after the lease it goes again: the documented at-least-once window."""
    store, transport = RestartingStore(failures=1_000), RecordingTransport()
    enqueue_one(store)
    worker = worker_for(store, transport, lease_seconds=0.3)
    assert await worker.run_once() == 1
    [message] = store.find(MessageFilter())
    assert message.status is Status.SENDING
    store.failures = 0
    assert store.reclaim_expired(datetime.now(timezone.utc) + timedelta(seconds=1)) == 1
    assert len(transport.sent) == 1
