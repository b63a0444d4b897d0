"""The broadcast runner when things go wrong, on the real SQLite stores (the review of issue 13): a cancel cut short,
a retry cut short, a retry of a message sent in part, a pause landing between deciding and enqueuing, a backlog
after downtime and two broadcasts on one page (one send rate per page), idle rounds writing nothing, two app
processes on one broadcast, the report's retryable count in a few queries, and out-of-range dates."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from broadcasts import service as service_module
from broadcasts.model import BroadcastInvalid, BroadcastStatus, RecipientState
from broadcasts.service import Broadcasts
from handoff.model import Conversation
from meta.graph import GraphRequest, GraphResponse
from outbox.model import Status
from tests.integration.broadcasts.conftest import PAGE, T0, StoreHandoff, World, close_world, draft, open_world

VIP = {"tags_any": ["vip"]}


def audience(world: World, count: int, prefix: str = "p") -> list[str]:
    psids = [f"{prefix}{index:02d}" for index in range(count)]
    for psid in psids:
        world.wrote(psid, hours_ago=1, tags=["vip"])
    return psids


async def started(world: World, **fields: Any) -> int:
    broadcast = await world.service.create(draft(VIP, **fields), "admin")
    await world.service.send(broadcast.id, "admin")
    return broadcast.id


async def due_times(world: World, psids: Iterable[str]) -> list[datetime]:
    due = []
    for psid in psids:
        due += [message.due_at for message in await world.messages_to(psid)
                if message.idempotency_key.startswith("broadcast:")]
    return sorted(due)


async def a_round_that_dies(world: World, part: Any, method: str, why: str) -> None:
    """One runner round in which `part.method` raises (the process killed, or that part down, at that point); the
    real method is back afterwards."""
    real = getattr(part, method)

    def dies(*args: Any) -> Any:
        raise RuntimeError(why)

    setattr(part, method, dies)
    try:
        with pytest.raises(RuntimeError, match=why):
            await world.service.run_once()
    finally:
        setattr(part, method, real)


# --- cancelling ----------------------------------------------------------------------------------------------------


async def test_a_cancel_cut_short_is_finished_by_the_runner(world: World) -> None:
    audience(world, 30)
    broadcast_id = await started(world)
    await world.service.run_once()  # all 30 queued in the outbox
    real = world.outbox.cancel_pending_by_key_prefix

    async def database_restarting(prefix: str) -> int:
        raise RuntimeError("database restarting")

    world.outbox.cancel_pending_by_key_prefix = database_restarting  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        await world.service.cancel(broadcast_id, "jefa")
    world.outbox.cancel_pending_by_key_prefix = real  # type: ignore[method-assign]
    assert (await world.service.get(broadcast_id)).status is BroadcastStatus.CANCELLED

    await world.drain()
    assert world.graph.sent == []
    report = await world.service.report(broadcast_id)
    assert (report.queued, report.sent, report.skipped) == (0, 0, {"broadcast_cancelled": 30})


async def test_a_cancel_after_a_runner_died_before_saving_outbox_ids_still_stops_everyone(world: World) -> None:
    audience(world, 5)
    broadcast_id = await started(world)
    await a_round_that_dies(world, world.store, "set_outbox_ids", "killed after enqueue_many")
    assert len(await due_times(world, [f"p{index:02d}" for index in range(5)])) == 5  # in the outbox, ids unsaved

    await world.service.cancel(broadcast_id, "jefa")
    await world.drain()
    assert world.graph.sent == []


async def test_a_cancel_landing_while_the_runner_enqueues_stops_the_batch(world: World) -> None:
    audience(world, 4)
    broadcast_id = await started(world)
    real = world.outbox.enqueue_many

    async def cancelled_meanwhile(news: Any) -> Any:
        stored = await real(news)
        world.store.cancel(broadcast_id, "jefa", world.clock())
        return stored

    world.outbox.enqueue_many = cancelled_meanwhile  # type: ignore[method-assign]
    await world.service.run_once()
    world.outbox.enqueue_many = real  # type: ignore[method-assign]
    await world.drain()
    assert world.graph.sent == []


# --- retrying ------------------------------------------------------------------------------------------------------


async def test_a_retry_whose_enqueue_fails_is_enqueued_by_a_later_round(world: World) -> None:
    audience(world, 2)
    world.graph.unavailable.update({"p00", "p01"})
    broadcast_id = await started(world)
    await world.drain()
    world.graph.unavailable.clear()
    world.wrote("p00")
    world.wrote("p01")
    assert (await world.service.retry_failed(broadcast_id, "admin")).requeued == 2
    await a_round_that_dies(world, world.outbox, "enqueue_many", "outbox store unavailable")

    await world.drain()
    report = await world.service.report(broadcast_id)
    assert (report.broadcast.status, report.queued, report.sent) == (BroadcastStatus.DONE, 0, 2)


class FailsTextOnce:
    """Meta refusing (#100) the text part to one person, once; everything else goes to `inner`."""

    def __init__(self, inner: Any, psid: str) -> None:
        self.inner, self.psid, self.done = inner, psid, False

    async def send(self, request: GraphRequest) -> GraphResponse:
        body = dict(request.json_body or {})
        if body.get("recipient", {}).get("id") == self.psid and "text" in body.get("message", {}) and not self.done:
            self.done = True
            return GraphResponse(400, {"error": {"message": "(#100) Invalid parameter", "type": "OAuthException",
                                                 "code": 100}})
        return await self.inner.send(request)

    async def close(self) -> None:
        return None


async def test_a_retry_sends_only_the_parts_not_received_and_the_partial_send_is_reported(world: World) -> None:
    world.client.transport = FailsTextOnce(world.graph, "ana")
    world.wrote("ana", hours_ago=1, tags=["vip"])
    broadcast_id = await started(world, content={"text": "Promo", "image": {"url": "https://example.com/a.png"}})
    await world.drain()
    report = await world.service.report(broadcast_id)
    assert (report.sent, report.failed, report.partial) == (0, {"code 100": 1}, 1)
    [row] = await world.service.failed(broadcast_id)
    assert row.partial and "parte del mensaje" in row.reason_es
    assert "parte del mensaje" in world.service.failed_csv([row]).decode("utf-8-sig")

    assert (await world.service.retry_failed(broadcast_id, "admin")).requeued == 1
    await world.drain()
    received = world.graph.received_by("ana")
    assert [list(body["message"]) for body in received] == [["attachment"], ["text"]]  # the image once
    after = await world.service.report(broadcast_id)
    assert (after.sent, after.failed, after.partial) == (1, {}, 0)


async def test_a_retry_landing_before_a_cancel_is_not_sent(world: World) -> None:
    audience(world, 2)
    world.graph.unavailable.update({"p00", "p01"})
    broadcast_id = await started(world, promotional=False)
    await world.drain()
    world.graph.unavailable.clear()
    world.wrote("p00")
    world.wrote("p01")
    await world.service.retry_failed(broadcast_id, "admin")
    await world.service.cancel(broadcast_id, "jefa")  # before the runner enqueued the retry
    await world.drain()
    assert world.graph.sent == []
    with pytest.raises(Exception, match="transmisión"):
        await world.service.retry_failed(broadcast_id, "admin")


# --- pauses ------------------------------------------------------------------------------------------------------


async def test_a_conversation_paused_before_a_replay_after_a_crash_does_not_get_it(world: World) -> None:
    audience(world, 3)
    await started(world)
    await a_round_that_dies(world, world.outbox, "enqueue_many", "killed between writing recipients and enqueueing")
    world.pause("p01")  # an agent takes p01 over; nothing of the broadcast is in the outbox to cancel yet
    await world.outbox.cancel_stale_bot_messages(PAGE, "p01")
    await world.drain()
    assert world.graph.received_by("p01") == []
    assert {body["recipient"]["id"] for body in world.graph.sent} == {"p00", "p02"}


class PausesAfterAnswering(StoreHandoff):
    """The handoff's states, and p01 taken over right after the `nth` read (between deciding and enqueuing)."""

    def __init__(self, world: World, nth: int) -> None:
        super().__init__(world.handoff_store)
        self.world, self.nth, self.calls = world, nth, 0

    async def states_of(self, conversation_ids: Iterable[str]) -> dict[str, Conversation]:
        found = await super().states_of(conversation_ids)
        self.calls += 1
        if self.calls == self.nth:
            self.world.pause("p01")
        return found


@pytest.mark.parametrize("nth", [1, 2])  # after planning's read, after the enqueue's own check
async def test_a_pause_landing_while_a_batch_is_enqueued_cancels_that_person_s_message(world: World,
                                                                                         nth: int) -> None:
    audience(world, 3)
    world.service.handoff = PausesAfterAnswering(world, nth)
    broadcast_id = await started(world)
    await world.drain()
    assert world.graph.received_by("p01") == []
    report = await world.service.report(broadcast_id)
    assert (report.sent, report.skipped) == (2, {"conversation_paused": 1})


# --- one send rate per page --------------------------------------------------------------------------------------


async def test_a_backlog_after_downtime_is_spread_from_now(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_module, "PLAN_BATCH", 20)
    world = open_world(tmp_path)
    try:
        psids = audience(world, 60)
        await started(world)
        await world.service.run_once()  # the first 20, over 2 s
        world.clock.advance(minutes=10)  # the app was down ten minutes
        await world.service.run_once()
        await world.service.run_once()
        now = world.clock()
        due = await due_times(world, psids[20:])
        assert len(due) == 40 and due[0] == now
        assert all(b - a == timedelta(seconds=0.1) for a, b in zip(due, due[1:], strict=False))
    finally:
        await close_world(world)


async def test_two_broadcasts_and_a_retry_on_one_page_share_its_rate(world: World) -> None:
    psids = audience(world, 20)
    world.graph.unavailable.add("p00")
    first = await started(world, name="a")
    await started(world, name="b")
    await world.service.run_once()
    due = await due_times(world, psids)
    assert len(due) == 40
    assert all(b - a == timedelta(seconds=0.1) for a, b in zip(due, due[1:], strict=False))  # 10/s, not 20/s

    await world.drain(step_seconds=1)
    world.graph.unavailable.clear()
    world.wrote("p00")
    third = await started(world, name="c")
    await world.service.retry_failed(first, "admin")
    await world.service.run_once()
    later = sorted(message.due_at for message in await world.messages_to("p00")
                   if message.idempotency_key.startswith((f"broadcast:{first}:p00:1", f"broadcast:{third}:p00:")))
    assert len(later) == 2 and later[1] - later[0] >= timedelta(seconds=0.1)


# --- load --------------------------------------------------------------------------------------------------------


class Counting:
    def __init__(self, world: World) -> None:
        self.outcomes = 0
        self.touched = 0
        real_set, real_touch = world.store.set_outcomes, world.store.touch_refreshed

        def set_outcomes(broadcast_id: int, outcomes: Any, now: datetime) -> None:
            self.outcomes += len(outcomes)
            real_set(broadcast_id, outcomes, now)

        def touch_refreshed(broadcast_id: int, psids: Any, now: datetime) -> None:
            self.touched += len(psids)
            real_touch(broadcast_id, psids, now)

        world.store.set_outcomes = set_outcomes  # type: ignore[method-assign]
        world.store.touch_refreshed = touch_refreshed  # type: ignore[method-assign]


async def test_idle_rounds_of_a_done_broadcast_write_nothing(world: World) -> None:
    audience(world, 40)
    broadcast_id = await started(world)
    await world.drain()
    assert (await world.service.get(broadcast_id)).status is BroadcastStatus.DONE
    counting = Counting(world)
    for _ in range(5):
        assert await world.service.run_once() == 0
        world.clock.advance(seconds=2)
    assert (counting.outcomes, counting.touched) == (0, 0)
    world.clock.advance(seconds=service_module.FINISHED_REFRESH.total_seconds())
    await world.service.run_once()  # the slow pace: read again, nothing changed, nothing rewritten
    assert (counting.outcomes, counting.touched) == (0, 40)


async def test_a_sending_broadcast_rewrites_only_the_recipients_that_changed(world: World) -> None:
    audience(world, 30)
    await started(world)
    await world.service.run_once()
    counting = Counting(world)
    await world.service.run_once()  # nothing sent yet: nothing to write
    assert counting.outcomes == 0
    await world.outbox.run_once()
    await world.service.run_once()
    assert 0 < counting.outcomes <= 30


async def test_two_app_processes_do_not_both_run_one_broadcast(world: World,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service_module, "PLAN_BATCH", 5)
    audience(world, 12)
    other = Broadcasts(world.store, world.contacts, world.outbox, StoreHandoff(world.handoff_store), clock=world.clock)
    try:
        planned: list[str] = []
        for runner, name in ((world.service, "one"), (other, "two")):
            real = runner.contacts.audience

            def audience_read(*args: Any, _real: Any = real, _name: str = name) -> Any:
                planned.append(_name)
                return _real(*args)

            runner.contacts = _With(runner.contacts, audience=audience_read)  # type: ignore[assignment]
        broadcast_id = await started(world)
        await world.service.run_once()
        await other.run_once()
        assert planned == ["one"]
        world.clock.advance(seconds=service_module.LEASE.total_seconds() + 1)  # "one" died
        await other.run_once()
        assert planned == ["one", "two"]
        world.service = other
        await world.drain()
        assert (await world.service.report(broadcast_id)).sent == 12
    finally:
        other.close()


class _With:
    def __init__(self, inner: Any, **replaced: Any) -> None:
        self._inner, self._replaced = inner, replaced

    def __getattr__(self, name: str) -> Any:
        return self._replaced.get(name) or getattr(self._inner, name)


async def test_the_report_counts_retryable_without_a_query_per_person(world: World) -> None:
    psids = audience(world, 30)
    world.graph.unavailable.update(psids)
    broadcast_id = await started(world)
    await world.drain()
    world.graph.unavailable.clear()
    for psid in psids[:10]:
        world.wrote(psid)

    async def one_by_one(*args: Any) -> Any:
        raise AssertionError("a window read per person")

    world.outbox.conversation_window = one_by_one  # type: ignore[method-assign]
    world.clock.advance(seconds=service_module.RETRYABLE_TTL.total_seconds())
    assert (await world.service.report(broadcast_id)).retryable == 10


# --- dates and tags ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("send_at", [
    datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))),
    datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-14))),
    datetime(2150, 1, 1, tzinfo=timezone.utc),
])
async def test_an_out_of_range_send_at_is_refused_in_spanish(world: World, send_at: datetime) -> None:
    broadcast = await world.service.create(draft(VIP), "admin")
    with pytest.raises(BroadcastInvalid) as refused:
        await world.service.send(broadcast.id, "admin", send_at)
    assert refused.value.field == "send_at" and "años" in refused.value.message_es


async def test_only_the_tags_the_policy_takes_now_are_offered(tmp_path: Any) -> None:
    world = open_world(tmp_path)  # the shipped dates: the three update tags retired by T0
    try:
        assert world.service.usable_tags() == []
    finally:
        await close_world(world)
    (tmp_path / "again").mkdir()
    world = open_world(tmp_path / "again", tags_until=T0 + timedelta(days=30))
    try:
        assert world.service.usable_tags() == ["ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "POST_PURCHASE_UPDATE"]
    finally:
        await close_world(world)


def test_failed_csv_marks_a_partial_send(tmp_path: Any) -> None:
    from broadcasts import report
    from broadcasts.model import Recipient

    row = Recipient(broadcast_id=1, page_id=PAGE, psid="ana", name="Ana", state=RecipientState.FAILED,
                    reason_code="graph_100", error_code=100, sent_parts={0: 5})
    failed = report.failed_recipient(row, timedelta(hours=24))
    [_, line] = list(csv.reader(io.StringIO(report.failed_csv([failed]).decode("utf-8-sig")), delimiter=";"))
    assert failed.partial and "parte del mensaje" in line[4]
    whole = report.failed_recipient(Recipient(broadcast_id=1, page_id=PAGE, psid="bo", name="Bo",
                                              state=RecipientState.FAILED, error_code=551), timedelta(hours=24))
    assert not whole.partial and "parte" not in whole.reason_es
    assert Status.SENT.value == "sent"
