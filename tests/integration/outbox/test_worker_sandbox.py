"""The outbox worker against the Graph sandbox over real HTTP, with the sandbox's error injection.

The worker's clock is injected, so backoff is exercised without sleeping.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from meta.graph import GraphClient
from outbox.model import NewMessage, OutboxStore, Purpose, SenderKind, Status
from outbox.outbox import Outbox
from outbox.policy_file import load_policy
from outbox.store import open_store
from tests.integration.outbox.conftest import PAGE_A, PAGE_B, TOKENS
from tests.support.servers import RunningServer


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[OutboxStore]:
    opened = open_store(f"sqlite:///{tmp_path / 'outbox.sqlite3'}")
    yield opened
    opened.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime.now(timezone.utc).replace(microsecond=0))


@pytest.fixture
async def worker(store: OutboxStore, sandbox: RunningServer, clock: Clock) -> Iterator[Outbox]:
    """The outbox over `store`, its worker's rounds run by hand (`run_once`)."""
    client = GraphClient(TOKENS, base_url=sandbox.base_url)
    yield Outbox(store, client, load_policy(), clock=clock, page_rate=0)
    await client.close()


def user_wrote(store: OutboxStore, clock: Clock, page: str, user: str, hours_ago: float = 0.0) -> None:
    store.record_user_message(page, user, clock() - timedelta(hours=hours_ago))


def sent_texts(http: httpx.Client, user: str) -> list[str]:
    return [item["body"]["message"]["text"] for item in http.get("/sandbox/sent", params={"recipient_id": user}).json()]


def inject(http: httpx.Client, **failure: object) -> None:
    assert http.post("/sandbox/failures", json=failure).status_code in (200, 201)


async def test_transient_errors_are_retried_with_backoff_then_sent(worker, store, clock, http) -> None:
    user_wrote(store, clock, PAGE_A, "u1")
    inject(http, code=2, count=2, recipient_id="u1")
    message, _ = await worker.enqueue(NewMessage(PAGE_A, "u1", {"text": "hola"}, purpose=Purpose.REPLY))
    delays = []
    for expected_attempts in (1, 2):
        assert await worker.run_once() == 1
        current = store.get(message.id)
        assert (current.status, current.attempts) == (Status.PENDING, expected_attempts)
        delays.append(current.next_attempt_at - clock())
        assert await worker.run_once() == 0, "not due before its backoff"
        clock.advance(seconds=delays[-1].total_seconds() + 1)
    assert delays[0] > timedelta(0) and delays[1] >= delays[0]
    assert await worker.run_once() == 1
    final = store.get(message.id)
    assert (final.status, final.messaging_type, final.attempts) == (Status.SENT, "RESPONSE", 3)
    assert final.graph_message_id
    assert sent_texts(http, "u1") == ["hola"]


async def test_outside_window_error_is_blocked_and_not_retried(worker, store, clock, http) -> None:
    user_wrote(store, clock, PAGE_A, "u2")
    inject(http, code=10, error_subcode=2018278, count=1, recipient_id="u2")
    message, _ = await worker.enqueue(NewMessage(PAGE_A, "u2", {"text": "seguimiento"}))
    assert await worker.run_once() == 1
    blocked = store.get(message.id)
    assert blocked.status is Status.BLOCKED and blocked.reason_code == "outside_window"
    assert blocked.last_error_code == 10
    clock.advance(hours=1)
    assert await worker.run_once() == 0
    assert sent_texts(http, "u2") == []


async def test_invalid_token_pauses_that_page_and_other_pages_keep_sending(worker, store, clock, http) -> None:
    user_wrote(store, clock, PAGE_A, "ua")
    user_wrote(store, clock, PAGE_B, "ub")
    inject(http, code=190, count=1, page_id=PAGE_A)
    on_a, _ = await worker.enqueue(NewMessage(PAGE_A, "ua", {"text": "para A"}))
    on_b, _ = await worker.enqueue(NewMessage(PAGE_B, "ub", {"text": "para B"}))
    await worker.run_once()
    store.record_user_message(PAGE_A, "ua2", clock())
    on_a_later, _ = await worker.enqueue(NewMessage(PAGE_A, "ua2", {"text": "otro de A"}))
    assert store.page(PAGE_A).paused
    assert [alert.code for alert in store.alerts()] == ["token_invalid"]
    assert store.get(on_b.id).status is Status.SENT
    assert store.get(on_a.id).status is Status.PENDING, "the message waits for a new token, it is not lost"
    clock.advance(hours=1)
    await worker.run_once()
    assert store.get(on_a_later.id).status is Status.PENDING, "a paused page sends nothing"
    store.resume_page(PAGE_A)
    clock.advance(hours=1)
    await worker.run_once()
    assert store.get(on_a.id).status is Status.SENT and store.get(on_a_later.id).status is Status.SENT


async def test_rate_limit_honours_retry_after(worker, store, clock, http) -> None:
    user_wrote(store, clock, PAGE_A, "u3")
    inject(http, code=613, count=1, recipient_id="u3", retry_after_seconds=120)
    message, _ = await worker.enqueue(NewMessage(PAGE_A, "u3", {"text": "hola"}))
    await worker.run_once()
    waiting = store.get(message.id)
    assert waiting.status is Status.PENDING
    assert waiting.next_attempt_at >= clock() + timedelta(seconds=120)


async def test_person_unavailable_fails_without_retry(worker, store, clock, http) -> None:
    user_wrote(store, clock, PAGE_A, "u4")
    inject(http, code=551, count=1, recipient_id="u4")
    message, _ = await worker.enqueue(NewMessage(PAGE_A, "u4", {"text": "hola"}))
    await worker.run_once()
    assert store.get(message.id).status is Status.FAILED
    assert store.get(message.id).reason_code == "person_unavailable"


async def test_policy_blocks_a_late_bot_message_before_any_request(worker, store, clock, http) -> None:
    user_wrote(store, clock, PAGE_A, "u5", hours_ago=25)
    message, _ = await worker.enqueue(NewMessage(PAGE_A, "u5", {"text": "¿sigues ahí?"}))
    await worker.run_once()
    blocked = store.get(message.id)
    assert blocked.status is Status.BLOCKED and blocked.reason_code == "outside_window"
    assert http.get("/sandbox/requests", params={"recipient_id": "u5"}).json() == []


async def test_an_agent_after_24_hours_sends_with_human_agent(worker, store, clock, http) -> None:
    user_wrote(store, clock, PAGE_A, "u6", hours_ago=30)
    message, _ = await worker.enqueue(
        NewMessage(PAGE_A, "u6", {"text": "Hola, soy Ana del equipo"}, sender=SenderKind.HUMAN)
    )
    await worker.run_once()
    assert store.get(message.id).status is Status.SENT
    body = http.get("/sandbox/sent", params={"recipient_id": "u6"}).json()[0]["body"]
    assert (body["messaging_type"], body["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")


async def test_the_second_message_never_overtakes_a_first_in_retry(worker, store, clock, http) -> None:
    user_wrote(store, clock, PAGE_A, "u7")
    inject(http, code=2, count=1, recipient_id="u7")
    first, _ = await worker.enqueue(NewMessage(PAGE_A, "u7", {"text": "primero"}))
    clock.advance(seconds=1)
    second, _ = await worker.enqueue(NewMessage(PAGE_A, "u7", {"text": "segundo"}))
    await worker.run_once()
    assert store.get(first.id).status is Status.PENDING
    assert store.get(second.id).status is Status.PENDING
    assert await worker.run_once() == 0
    clock.advance(minutes=10)
    await worker.run_once()
    await worker.run_once()
    assert sent_texts(http, "u7") == ["primero", "segundo"]


async def test_scheduled_message_waits_for_its_time(worker, store, clock, http) -> None:
    user_wrote(store, clock, PAGE_A, "u8")
    later = clock() + timedelta(hours=2)
    message, _ = await worker.enqueue(NewMessage(PAGE_A, "u8", {"text": "recordatorio"}, not_before=later))
    assert await worker.run_once() == 0
    clock.advance(hours=2)
    assert await worker.run_once() == 1
    assert store.get(message.id).status is Status.SENT
    assert sent_texts(http, "u8") == ["recordatorio"]
