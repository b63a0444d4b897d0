"""Meta's delivery and read receipts through the real ingest path mark what the outbox sent (issue 13).

Real: the webhook process's ASGI app over HTTP (`connectors.webhook_server.WebhookApp`, the signature checked with
the app secret), the ingest journal on SQLite (the webhook's side records, a Rasa instance's side reads what is
journaled, as in production: two stores on one file), the journal applier (`connectors.ingest.JournalApplier`), the
outbox on SQLite with its worker sending through a fake Graph transport (Meta's answer carries the message id).

The Rasa channel applies journaled events with `MessengerInput._record_window` (connectors/messenger.py imports
Rasa, which this environment does not have); `record_window` below makes the same two calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from connectors.ingest import (
    EARLY_RECEIPT,
    JOURNAL_BATCH,
    ROLE_FEEDER,
    ROLE_WEBHOOK,
    IngestJournal,
    IngestStore,
    JournalApplier,
    open_ingest_store,
    tell_outbox,
)
from connectors.webhook_server import WEBHOOK_PATH, WebhookApp
from core.settings import SANDBOX_PAGE_ID, Settings
from meta.events import EventKind, InboundEvent, parse_webhook
from meta.graph import GraphClient, GraphRequest, GraphResponse
from outbox.model import NewMessage, OutboxMessage, Purpose, Status
from outbox.outbox import Outbox, open_outbox
from sandbox.simulate import signed_request, webhook_body
from tests.support import meta_payloads as meta
from tests.support.postgres import STORE_BACKENDS, store_url
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


def record_window(outbox: Outbox) -> Callable[[InboundEvent], Awaitable[bool]]:
    """What `MessengerInput._record_window` does with a journaled event (`connectors.ingest.tell_outbox`)."""

    async def record(event: InboundEvent) -> bool:
        now = datetime.now(timezone.utc)
        return await tell_outbox(outbox, event, now, now, timedelta(seconds=SETTINGS.outbox_lease_seconds))

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


# --- a receipt that beats the outbox's commit of the send (review 13, finding 10) -------------------------------


class GatedTransport:
    """Meta accepting the send, but the worker's answer held at `gate`: the message stays SENDING meanwhile."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.sending = asyncio.Event()
        self.sent = 0

    async def send(self, request: GraphRequest) -> GraphResponse:
        self.sent += 1
        self.sending.set()
        await self.gate.wait()
        return GraphResponse(200, {"recipient_id": USER, "message_id": f"m_gated_{self.sent}"})

    async def close(self) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_a_delivery_before_the_send_is_recorded_is_applied_at_a_later_round(
    webhook: RunningServer, feeder: IngestStore, tmp_path: Path
) -> None:
    """Fails on the old code: the delivery marked 0 rows (the message was still SENDING), its flag was cleared, and
    the last message's "delivered" was lost unless a read followed."""
    transport = GatedTransport()
    outbox = open_outbox(f"sqlite:///{tmp_path / 'gated.sqlite3'}", GraphClient(SETTINGS.page_tokens,
                                                                                 transport=transport), page_rate=0)
    try:
        await outbox.record_user_message(PAGE, USER, datetime.now(timezone.utc) - timedelta(minutes=1), "hola")
        message, _ = await outbox.enqueue(NewMessage(PAGE, USER, {"text": "Ya va"}, purpose=Purpose.REPLY))
        sending = asyncio.create_task(outbox.run_once())
        await asyncio.wait_for(transport.sending.wait(), 5)
        assert (await outbox.get(message.id)).status is Status.SENDING

        now = datetime.now(timezone.utc)
        assert deliver(webhook, [receipt("delivery", to_ms(now), ["m_gated_1"])]) == 200
        clock = Clock()
        journal = JournalApplier(feeder, record_window(outbox), never_notified, retry_after_seconds=5.0, clock=clock)
        batch = await journal.apply(await feeder.run(feeder.journaled))
        assert (batch.deferred, batch.applied) == (1, 0), "deferred, not dropped"
        [deferred] = await feeder.run(feeder.journaled)
        assert deferred.attempts == 1

        transport.gate.set()  # the worker's complete(SENT) commits
        assert await asyncio.wait_for(sending, 5) == 1
        await journal.apply_backlog()  # too soon after the deferral: left for later
        assert (await outbox.get(message.id)).delivered_at is None
        clock.now += 5.0
        await journal.apply_backlog()  # the upkeep's next round

        found = await outbox.get(message.id)
        assert found.status is Status.SENT and found.delivered_at == to_ms(now)
        assert await feeder.run(feeder.journaled) == []
    finally:
        outbox.close()


async def test_a_receipt_that_marks_nothing_and_is_old_is_not_retried(
    webhook: RunningServer, feeder: IngestStore, outbox: Outbox
) -> None:
    sent = await sent_reply(outbox, "Hola")
    assert sent.sent_at is not None
    old_mark = to_ms(sent.sent_at - timedelta(minutes=10))  # before the send, and long ago: marks nothing for good
    assert deliver(webhook, [receipt("read", old_mark)]) == 200

    batch = await JournalApplier(feeder, record_window(outbox), never_notified).apply(
        await feeder.run(feeder.journaled))

    assert (batch.applied, batch.deferred) == (1, 0) and await feeder.run(feeder.journaled) == []
    assert (await outbox.get(sent.id)).read_at is None


# --- the journal's batches on every backend ----------------------------------------------------------------------


@pytest.fixture(params=STORE_BACKENDS)
def journal(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[IngestJournal]:
    with store_url(request.param, tmp_path, "ingest") as url:
        store = open_ingest_store(url)
        try:
            yield store
        finally:
            store.close()


def test_journaled_reads_a_bounded_page_above_a_cursor(journal: IngestJournal) -> None:
    items = [meta.read(meta.T0 + n, sender=f"r{n}") for n in range(4)]
    items.insert(2, meta.text_message(mid="m_rasa", text="hola", sender="rasa"))  # for Rasa: not journaled
    standby = [meta.text_message(mid=f"m_s{n}", text="hola", sender=f"s{n}") for n in range(2)]
    recorded = journal.record(parse_webhook(meta.webhook(meta.entry(items))))
    recorded += journal.record(parse_webhook(meta.webhook(meta.entry(standby, standby=True))))
    ids = [row.id for row in recorded if row.window_pending or row.notice_pending]
    assert len(ids) == 6
    journal.take_journaled(ids[4])
    journal.restore_journaled(ids[4], window=False, notice=True)  # a notice only: still journaled

    assert [row.id for row in journal.journaled(0, 3)] == ids[:3]
    assert [row.id for row in journal.journaled(ids[2], 2)] == ids[3:5]
    assert [row.id for row in journal.journaled(ids[4], JOURNAL_BATCH)] == ids[5:]
    assert [row.id for row in journal.journaled()] == ids
    assert journal.journaled(ids[-1]) == [] and journal.journaled(0, 0) == []


def test_defer_window_sets_the_flag_again_once(journal: IngestJournal) -> None:
    [row] = journal.record(parse_webhook(meta.webhook(meta.entry([meta.read(meta.T0)]))))
    assert journal.take_journaled(row.id) == (True, False) and journal.journaled() == []

    assert journal.defer_window(row.id, EARLY_RECEIPT) is True
    [again] = journal.journaled()
    assert (again.id, again.window_pending, again.notice_pending, again.attempts) == (row.id, True, False, 1)
    assert journal.take_journaled(row.id) == (True, False)
    assert journal.defer_window(row.id, EARLY_RECEIPT) is False, "once"
    assert journal.journaled() == [] and journal.defer_window(999_999, EARLY_RECEIPT) is False
