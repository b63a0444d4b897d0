"""Meta's delivery and read receipts through the real ingest path mark what the outbox sent (issue 13).

Real: the webhook process's ASGI app over HTTP (`connectors.webhook_server.WebhookApp`, the signature checked with
the app secret), the ingest journal on SQLite (the webhook's side records, a Rasa instance's side reads what is
journaled, as in production: two stores on one file), the journal applier (`connectors.ingest.JournalApplier`), the
outbox on SQLite with its worker sending through a fake Graph transport (Meta's answer carries the message id).

The Rasa channel applies journaled events with `MessengerInput._record_window` (connectors/messenger.py imports
Rasa, which this environment does not have); `record_window` below makes the same two calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from connectors.ingest import ROLE_FEEDER, ROLE_WEBHOOK, IngestStore, JournalApplier
from connectors.webhook_server import WEBHOOK_PATH, WebhookApp
from core.settings import SANDBOX_PAGE_ID, Settings
from meta.events import EventKind, InboundEvent
from meta.graph import GraphClient
from outbox.model import NewMessage, OutboxMessage, Purpose, Status
from outbox.outbox import Outbox, open_outbox
from sandbox.simulate import signed_request, webhook_body
from tests.support.servers import RunningServer, serve_asgi
from tests.unit.outbox.test_worker_store_outage import RecordingTransport

PAGE = SANDBOX_PAGE_ID
USER = "psid-receipts"  # RecordingTransport answers for this recipient
SETTINGS = Settings()


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def to_ms(at: datetime) -> datetime:
    """A time as Meta's millisecond watermark carries it."""
    return datetime.fromtimestamp(ms(at) / 1000, tz=timezone.utc)


@pytest.fixture
def journal_path(tmp_path: Path) -> Path:
    return tmp_path / "ingest.sqlite3"


@pytest.fixture
def webhook(journal_path: Path) -> Iterator[RunningServer]:
    store = IngestStore(journal_path, role=ROLE_WEBHOOK)
    app = WebhookApp(store, app_secret=SETTINGS.app_secret, verify_token=SETTINGS.verify_token,
                     app_id=SETTINGS.app_id)
    try:
        with serve_asgi(app) as server:
            yield server
    finally:
        store.close()


@pytest.fixture
def feeder(journal_path: Path, webhook: RunningServer) -> Iterator[IngestStore]:
    store = IngestStore(journal_path, role=ROLE_FEEDER)
    yield store
    store.close()


@pytest.fixture
async def outbox(tmp_path: Path) -> Iterator[Outbox]:
    client = GraphClient(SETTINGS.page_tokens, transport=RecordingTransport())
    opened = open_outbox(f"sqlite:///{tmp_path / 'outbox.sqlite3'}", client, page_rate=0)
    yield opened
    opened.close()


def record_window(outbox: Outbox):  # type: ignore[no-untyped-def]
    """What `MessengerInput._record_window` does with a journaled event."""

    async def record(event: InboundEvent) -> None:
        if event.opens_window:
            text = event.shown_text() if event.kind in (EventKind.MESSAGE, EventKind.POSTBACK) else None
            await outbox.record_user_message(event.page_id, event.user_id, datetime.now(timezone.utc), text)
        elif event.is_receipt:
            await outbox.record_receipt(event.page_id, event.user_id, event.kind.value, event.watermark(),
                                        event.mids)

    return record


async def never_notified(event: InboundEvent) -> bool:
    raise AssertionError(f"no live-view notice expected for {event.kind.value}")


async def sent_reply(outbox: Outbox, text: str) -> OutboxMessage:
    await outbox.record_user_message(PAGE, USER, datetime.now(timezone.utc) - timedelta(minutes=1), "hola")
    message, _ = await outbox.enqueue(NewMessage(PAGE, USER, {"text": text}, purpose=Purpose.REPLY))
    assert await outbox.run_once() == 1
    sent = await outbox.get(message.id)
    assert sent.status is Status.SENT and sent.graph_message_id and sent.sent_at
    return sent


def deliver(server: RunningServer, items: list[dict], standby: bool = False, secret: str = SETTINGS.app_secret
            ) -> int:
    raw, headers = signed_request(webhook_body(PAGE, items, standby=standby), secret)
    return httpx.post(server.url(WEBHOOK_PATH), content=raw, headers=headers, timeout=10).status_code


async def apply_journaled(feeder: IngestStore, outbox: Outbox) -> list[str]:
    journaled = await feeder.run(feeder.journaled)
    await JournalApplier(feeder, record_window(outbox), never_notified).apply(journaled)
    assert await feeder.run(feeder.journaled) == [], "applied once, the flags are cleared"
    return [stored.event.kind.value for stored in journaled]


def receipt(kind: str, watermark: datetime, mids: list[str] | None = None) -> dict:
    body: dict = {"watermark": ms(watermark)}
    if mids is not None:
        body["mids"] = mids
    return {"sender": {"id": USER}, "recipient": {"id": PAGE}, "timestamp": ms(watermark), kind: body}


async def test_a_signed_delivery_then_a_read_mark_the_sent_message(
    webhook: RunningServer, feeder: IngestStore, outbox: Outbox
) -> None:
    first = await sent_reply(outbox, "Su pedido va en camino")
    assert first.sent_at is not None and first.graph_message_id is not None
    later = await sent_reply(outbox, "¿Algo más?")
    delivered_mark = to_ms(first.sent_at - timedelta(seconds=30))  # older than both sends: only the mid names one

    assert deliver(webhook, [receipt("delivery", delivered_mark, [first.graph_message_id])]) == 200
    assert await apply_journaled(feeder, outbox) == ["delivery"]

    found = await outbox.get(first.id)
    assert (found.delivered_at, found.read_at) == (delivered_mark, None)
    assert (await outbox.get(later.id)).delivered_at is None

    read_mark = to_ms(first.sent_at + timedelta(milliseconds=1))
    assert deliver(webhook, [receipt("read", read_mark)]) == 200
    assert await apply_journaled(feeder, outbox) == ["read"]

    found = await outbox.get(first.id)
    assert (found.delivered_at, found.read_at) == (delivered_mark, read_mark)
    assert found.to_dict()["read_at"] == read_mark.isoformat()


async def test_unsigned_and_standby_receipts_mark_nothing(
    webhook: RunningServer, feeder: IngestStore, outbox: Outbox
) -> None:
    sent = await sent_reply(outbox, "Hola")
    assert sent.sent_at is not None
    mark = sent.sent_at + timedelta(seconds=1)

    assert deliver(webhook, [receipt("read", mark)], secret="not-the-app-secret") == 403
    assert deliver(webhook, [receipt("read", mark)], standby=True) == 200  # another app's thread: kept, not applied
    assert await apply_journaled(feeder, outbox) == []

    found = await outbox.get(sent.id)
    assert (found.delivered_at, found.read_at) == (None, None)


async def test_a_receipt_journaled_while_the_outbox_is_down_is_applied_later(
    webhook: RunningServer, feeder: IngestStore, outbox: Outbox
) -> None:
    """The journal keeps the receipt until the outbox has it: a failure leaves it for the upkeep loop."""
    sent = await sent_reply(outbox, "Hola")
    assert sent.sent_at is not None
    assert deliver(webhook, [receipt("delivery", sent.sent_at + timedelta(seconds=1), [])]) == 200

    async def outbox_down(event: InboundEvent) -> None:
        raise ConnectionError("the outbox's database is restarting")

    journaled = await feeder.run(feeder.journaled)
    await JournalApplier(feeder, outbox_down, never_notified).apply(journaled)
    assert [stored.event.kind for stored in await feeder.run(feeder.journaled)] == [EventKind.DELIVERY]

    assert await apply_journaled(feeder, outbox) == ["delivery"]
    assert (await outbox.get(sent.id)).delivered_at is not None
