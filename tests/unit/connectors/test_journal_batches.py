"""Journaled windows, receipts and notices are read and applied in bounded batches (review 13, finding 10).

- `journaled(after, limit)`: the first `limit` journaled rows above `after`, never the whole backlog.
- `JournalApplier.apply`: the first failure that means the outbox (or the app) is unreachable ends the batch for
  the rows that need it (left journaled, untouched: no take and restore per row); a row's own problem does not.
- `apply_backlog` (the upkeep's round) walks the journal a page at a time from where it stopped.
- A receipt that came before the outbox recorded its message as sent is deferred once (`defer_window`), then
  dropped.
- The feeder reads only journaled rows new to it, and hands over none a round already tried.

Real SQLite journal; the outbox and the app are fakes that count their calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from connectors.dispatch import JournalFeeder
from connectors.handoff import NoticeRefused
from connectors.ingest import EARLY_RECEIPT, IngestStore, JournalApplier, StoredEvent
from connectors.ingest_journal import JOURNAL_BATCH, new_row, receipt_may_precede_its_send
from meta.events import InboundEvent, parse_webhook
from tests.support import meta_payloads as meta

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=timezone.utc)
LEASE = timedelta(seconds=30)


def events_of(*items: dict[str, Any], standby: bool = False) -> list[InboundEvent]:
    return parse_webhook(meta.webhook(meta.entry(list(items), standby=standby)))


def reads(count: int, start: int = 0) -> list[InboundEvent]:
    return events_of(*(meta.read(meta.T0 + start + n, sender=f"u{start + n}") for n in range(count)))


def standby_texts(count: int, start: int = 0) -> list[InboundEvent]:
    return events_of(*(meta.text_message(mid=f"m_s{start + n}", text=f"t{start + n}", sender=f"s{start + n}")
                       for n in range(count)), standby=True)


class CountingStore(IngestStore):
    """The real journal, counting its writes per kind and the `journaled` reads (after, limit)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.takes = self.restores = self.defers = 0
        self.reads: list[tuple[int, int]] = []

    def take_journaled(self, event_id: int) -> tuple[bool, bool]:
        self.takes += 1
        return super().take_journaled(event_id)

    def restore_journaled(self, event_id: int, window: bool, notice: bool) -> None:
        self.restores += 1
        super().restore_journaled(event_id, window, notice)

    def defer_window(self, event_id: int, error: str, max_deferrals: int = 1) -> bool:
        self.defers += 1
        return super().defer_window(event_id, error, max_deferrals)

    def journaled(self, after: int = 0, limit: int = JOURNAL_BATCH) -> list[StoredEvent]:
        self.reads.append((after, limit))
        return super().journaled(after, limit)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CountingStore]:
    opened = CountingStore(tmp_path / "messenger.sqlite3")
    yield opened
    opened.close()


class FakeOutbox:
    """`record_window`: down (raises as a lost database does), refusing one row's data, or too early."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.down = False
        self.bad_users: set[str] = set()
        self.too_early: set[str] = set()

    async def record_window(self, event: InboundEvent) -> bool:
        self.calls.append(event.user_id)
        if self.down:
            raise ConnectionError("the outbox's database is restarting")
        if event.user_id in self.bad_users:
            raise ValueError("this row's data is refused")
        return event.user_id not in self.too_early


class FakeApp:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.refusing: set[str] = set()
        self.refusing_for_good: set[str] = set()  # a 4xx about the body (connectors.handoff.NoticeRefused)
        self.down = False

    async def notify(self, event: InboundEvent) -> bool:
        self.calls.append(event.user_id)
        if event.user_id in self.refusing_for_good:
            raise NoticeRefused("/csat/answer", 422)
        return not self.down and event.user_id not in self.refusing


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def applier(store: IngestStore, outbox: FakeOutbox, app: FakeApp, clock: Clock | None = None) -> JournalApplier:
    return JournalApplier(store, outbox.record_window, app.notify, retry_after_seconds=5.0,
                          clock=clock or Clock())


def journaled_users(store: IngestStore) -> list[str]:
    return [stored.event.user_id for stored in store.journaled(0, 10_000)]


# --- journaled(after, limit) ----------------------------------------------------------------------------------


def test_journaled_reads_the_first_rows_above_after_in_id_order(store: CountingStore) -> None:
    mixed = events_of(meta.read(meta.T0, sender="r0"), meta.text_message(mid="m_x", text="hola", sender="rasa"))
    recorded = store.record(mixed + standby_texts(2) + reads(3, start=10))
    journal_ids = [row.id for row in recorded if row.window_pending or row.notice_pending]
    assert len(journal_ids) == 6, "the message for Rasa is not journaled"

    assert [row.id for row in store.journaled(0, 4)] == journal_ids[:4]
    assert [row.id for row in store.journaled(journal_ids[1], 3)] == journal_ids[2:5]
    assert [row.id for row in store.journaled(journal_ids[-1], 10)] == []
    assert [row.id for row in store.journaled()] == journal_ids
    assert store.journaled(0, 0) == []


def test_a_receipt_that_can_mark_nothing_is_not_journaled_for_the_outbox() -> None:
    no_watermark = events_of({"sender": {"id": "u"}, "recipient": {"id": meta.PAGE_ID}, "read": {"watermark": "x"}})
    by_mids = events_of({"sender": {"id": "u"}, "recipient": {"id": meta.PAGE_ID}, "delivery": {"mids": ["m_1"]}})
    nothing = events_of({"sender": {"id": "u"}, "recipient": {"id": meta.PAGE_ID}, "delivery": {}})

    assert [new_row(event, "").window_pending for event in no_watermark + by_mids + nothing] == [False, True, False]


@pytest.mark.parametrize(
    ("watermark_ms", "timestamp_ms", "may"),
    [
        (int((NOW - timedelta(seconds=5)).timestamp() * 1000), 0, True),
        (int((NOW - timedelta(seconds=31)).timestamp() * 1000), 0, False),
        (int((NOW + timedelta(hours=1)).timestamp() * 1000), 0, True),  # Meta's clock ahead: bounded by the counter
        (None, int((NOW - timedelta(seconds=2)).timestamp() * 1000), True),
        (None, int((NOW - timedelta(minutes=5)).timestamp() * 1000), False),
        (None, 0, True),
    ],
)
def test_only_a_recent_receipt_may_precede_its_send(watermark_ms: int | None, timestamp_ms: int, may: bool) -> None:
    event = replace(events_of(meta.read(meta.T0))[0], timestamp_ms=timestamp_ms, watermark_ms=watermark_ms)

    assert receipt_may_precede_its_send(event, NOW, LEASE) is may


# --- stopping at the first unreachable failure -----------------------------------------------------------------


async def test_an_unreachable_outbox_ends_the_batch_for_windows_without_a_write_per_row(store: CountingStore) -> None:
    """Fails on the old code: every row of the backlog was taken, tried and restored (2 writes per receipt)."""
    store.record(reads(50))
    outbox, app = FakeOutbox(), FakeApp()
    outbox.down = True

    batch = await applier(store, outbox, app).apply(store.journaled())

    assert batch.outbox_unreachable and batch.stopped and batch.applied == 0
    assert len(outbox.calls) == 1 and (store.takes, store.restores) == (1, 1)
    assert len(journaled_users(store)) == 50, "every receipt stays journaled for a later round"


async def test_notices_go_on_while_the_outbox_is_down(store: CountingStore) -> None:
    store.record(reads(3) + standby_texts(2, start=10) + reads(3, start=20))
    outbox, app = FakeOutbox(), FakeApp()
    outbox.down = True

    batch = await applier(store, outbox, app).apply(store.journaled())

    assert outbox.calls == ["u0"], "the outbox is tried once"
    assert app.calls == ["s10", "s11"] and batch.applied == 2, "a standby message's notice still goes"
    assert journaled_users(store) == ["u0", "u1", "u2", "s10", "s11", "u20", "u21", "u22"], "their windows wait"
    assert [(s.window_pending, s.notice_pending) for s in store.journaled() if s.event.user_id[0] == "s"] == [
        (True, False), (True, False)]


async def test_an_unconfirmed_notice_ends_the_notices_but_not_the_windows(store: CountingStore) -> None:
    store.record(standby_texts(3) + reads(3, start=10))
    outbox, app = FakeOutbox(), FakeApp()
    app.down = True

    batch = await applier(store, outbox, app).apply(store.journaled())

    assert batch.app_unreachable and not batch.outbox_unreachable
    assert app.calls == ["s0"], "the app is asked once, not once per row"
    assert outbox.calls == ["s0", "s1", "s2", "u10", "u11", "u12"], "every window still goes"
    assert journaled_users(store) == ["s0", "s1", "s2"]
    assert all(stored.notice_pending and not stored.window_pending for stored in store.journaled())


async def test_rows_that_only_need_an_unreachable_app_are_not_touched(store: CountingStore) -> None:
    rows = store.record(standby_texts(5))
    for row in rows:  # their windows were applied: only the notices are left
        store.take_journaled(row.id)
        store.restore_journaled(row.id, False, True)
    store.takes = store.restores = 0
    outbox, app = FakeOutbox(), FakeApp()
    app.down = True

    await applier(store, outbox, app).apply(store.journaled())

    assert app.calls == ["s0"] and (store.takes, store.restores) == (1, 1)
    assert len(journaled_users(store)) == 5


async def test_a_row_s_own_problem_does_not_end_the_batch(store: CountingStore) -> None:
    store.record(reads(4))
    outbox, app = FakeOutbox(), FakeApp()
    outbox.bad_users = {"u1"}

    batch = await applier(store, outbox, app).apply(store.journaled())

    assert not batch.stopped and batch.applied == 3
    assert outbox.calls == ["u0", "u1", "u2", "u3"]
    assert journaled_users(store) == ["u1"], "kept for a later round"


# --- the upkeep's walk --------------------------------------------------------------------------------------


async def test_the_upkeep_walks_the_backlog_a_page_at_a_time(store: CountingStore) -> None:
    store.record(reads(10))
    outbox, app = FakeOutbox(), FakeApp()
    journal = applier(store, outbox, app)

    await journal.apply_backlog(pages=20, limit=4)

    assert [limit for _after, limit in store.reads] == [4, 4, 4], "three pages of at most 4 rows"
    assert journaled_users(store) == []
    assert outbox.calls == [f"u{n}" for n in range(10)]


async def test_an_outage_costs_one_try_and_one_page_per_round_and_the_walk_moves_on(store: CountingStore) -> None:
    rows = store.record(reads(9))
    outbox, app = FakeOutbox(), FakeApp()
    outbox.down = True
    journal = applier(store, outbox, app)

    await journal.apply_backlog(pages=20, limit=3)
    await journal.apply_backlog(pages=20, limit=3)

    assert store.reads == [(0, 3), (rows[0].id, 3)], "one page per round; the next starts after the row that failed"
    assert outbox.calls == ["u0", "u1"] and (store.takes, store.restores) == (2, 2)

    outbox.down = False
    await journal.apply_backlog(pages=20, limit=3)  # from u2 to the end of the journal
    assert journaled_users(store) == ["u0", "u1"]
    await journal.apply_backlog(pages=20, limit=3)  # then from the beginning: what the outage left behind
    assert journaled_users(store) == []


@pytest.mark.parametrize("refused", [["s0"], ["s0", "s1"], ["s0", "s2", "s3"]])
async def test_notices_the_app_always_refuses_never_hold_back_the_rest(store: CountingStore, refused: list[str]
                                                                        ) -> None:
    """The handoff client cannot tell a refusal from an outage: each round's walk starts after the row that
    stopped the last one, so the rows behind a refused one are reached."""
    store.record(standby_texts(6))
    outbox, app = FakeOutbox(), FakeApp()
    app.refusing = set(refused)
    journal = applier(store, outbox, app)

    for _ in range(2 * len(refused) + 2):
        await journal.apply_backlog(pages=20, limit=2)

    assert journaled_users(store) == refused
    assert sorted(set(app.calls)) == [f"s{n}" for n in range(6)]


async def test_a_notice_the_app_refuses_for_good_is_cleared_once_and_logged(
        store: CountingStore, caplog: pytest.LogCaptureFixture) -> None:
    """A 4xx about the body (NUL, too many answers) is not an outage: the notice is dropped at its first refusal,
    logged once, and the rows after it are applied in the same batch."""
    store.record(standby_texts(4))
    outbox, app = FakeOutbox(), FakeApp()
    app.refusing_for_good = {"s1"}
    journal = applier(store, outbox, app)

    batch = await journal.apply(store.journaled(0, 100))
    assert (batch.refused, batch.app_unreachable, batch.applied) == (1, False, 3 + 4)  # 3 notices, 4 windows
    assert journaled_users(store) == []
    await journal.apply_backlog(pages=5, limit=2)
    assert app.calls == ["s0", "s1", "s2", "s3"], "the refused notice is never sent again"
    dropped = [record for record in caplog.records if "refused a journaled notice for good" in record.getMessage()]
    assert len(dropped) == 1 and getattr(dropped[0], "event_id", None) is not None


# --- a receipt before the outbox recorded the send ---------------------------------------------------------------


async def test_a_receipt_too_early_is_deferred_once_then_dropped(store: CountingStore) -> None:
    [early] = store.record(reads(1))
    outbox, app, clock = FakeOutbox(), FakeApp(), Clock()
    outbox.too_early = {"u0"}
    journal = applier(store, outbox, app, clock)

    batch = await journal.apply(store.journaled())
    assert (batch.deferred, batch.applied) == (1, 0)
    [again] = store.journaled()
    assert (again.id, again.window_pending, again.attempts) == (early.id, True, 1)

    await journal.apply(store.journaled())  # at once: not taken again so soon (the send is still being recorded)
    assert outbox.calls == ["u0"] and store.takes == 1

    clock.now += 5.0
    batch = await journal.apply(store.journaled())
    assert (batch.dropped, batch.deferred) == (1, 0)
    assert outbox.calls == ["u0", "u0"] and store.journaled() == [], "dropped after its one retry: no endless retries"


async def test_a_deferred_receipt_is_applied_when_the_send_was_recorded_meanwhile(store: CountingStore) -> None:
    store.record(reads(1))
    outbox, app, clock = FakeOutbox(), FakeApp(), Clock()
    outbox.too_early = {"u0"}
    journal = applier(store, outbox, app, clock)
    await journal.apply(store.journaled())

    outbox.too_early = set()  # the worker's complete(SENT) committed
    clock.now += 5.0
    batch = await journal.apply(store.journaled())

    assert batch.applied == 1 and store.journaled() == []


def test_defer_window_is_bounded_by_the_row_s_attempts(store: CountingStore) -> None:
    [row] = store.record(reads(1))
    assert store.take_journaled(row.id) == (True, False)

    assert store.defer_window(row.id, EARLY_RECEIPT) is True
    assert store.take_journaled(row.id) == (True, False)
    assert store.defer_window(row.id, EARLY_RECEIPT) is False, "deferred once already"
    assert store.journaled() == []
    assert store.defer_window(row.id, EARLY_RECEIPT, max_deferrals=2) is True
    assert store.defer_window(999_999, EARLY_RECEIPT) is False


# --- the feeder -------------------------------------------------------------------------------------------------


async def _no_handler(stored: Any) -> None:
    raise AssertionError("nothing for Rasa here")


async def test_the_feeder_reads_only_rows_new_to_it_a_batch_at_a_time(store: CountingStore) -> None:
    handed: list[list[int]] = []
    gate = asyncio.Event()

    async def apply(rows: list[StoredEvent]) -> None:
        handed.append([row.id for row in rows])
        await gate.wait()

    feeder = JournalFeeder(store, "rasa", _no_handler, lambda stored: stored.event.conversation_key,
                           apply_journaled=apply)
    first = store.record(reads(3))
    await feeder.round()
    await asyncio.sleep(0)
    assert handed == [[row.id for row in first]]
    assert store.reads == [(0, JOURNAL_BATCH)]

    store.record(reads(2, start=10))
    await feeder.round()  # the last hand-over is still being applied: no read
    assert store.reads == [(0, JOURNAL_BATCH)]

    gate.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    await feeder.round()
    await asyncio.sleep(0)
    assert store.reads[-1] == (first[-1].id, JOURNAL_BATCH), "only the rows above the last one read"
    assert [len(ids) for ids in handed] == [3, 2]
    await feeder.stop()


async def test_the_feeder_leaves_a_deferred_receipt_to_the_upkeep(store: CountingStore) -> None:
    handed: list[int] = []

    async def apply(rows: list[StoredEvent]) -> None:
        handed.extend(row.id for row in rows)

    [deferred, fresh] = store.record(reads(2))
    store.take_journaled(deferred.id)
    store.defer_window(deferred.id, EARLY_RECEIPT)  # another instance deferred it before this feeder read it
    feeder = JournalFeeder(store, "rasa", _no_handler, lambda stored: stored.event.conversation_key,
                           apply_journaled=apply)

    await feeder.round()
    await asyncio.sleep(0)

    assert handed == [fresh.id]
    await feeder.stop()
