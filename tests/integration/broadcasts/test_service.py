"""`Broadcasts` on the real stores (outbox, contacts, handoff, broadcasts: SQLite) with the outbox's own worker sending
to a scripted Send API: drafts, the dry run and its reasons, sending now or later, the page's rate, the report
(sent, delivered, read from receipts, skipped, failed by code), the failed list as CSV, retrying, cancelling, a
person taking a conversation over mid-broadcast, and the runner's loop."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from datetime import timedelta

import pytest

from broadcasts import service as service_module
from broadcasts.model import (
    BroadcastInvalid,
    BroadcastNotFound,
    BroadcastStateError,
    BroadcastStatus,
    RecipientState,
)
from broadcasts.planner import idempotency_key
from outbox.model import NewMessage, Purpose, SenderKind, Status
from tests.integration.broadcasts.conftest import PAGE, World, draft

VIP = {"tags_any": ["vip"]}


async def test_a_draft_is_created_listed_edited_and_deleted_and_only_a_draft(world: World) -> None:
    service = world.service
    first = await service.create(draft(VIP), "admin")
    second = await service.create(draft(name="Segunda"), "admin")
    assert first.status is BroadcastStatus.DRAFT and first.created_by == "admin"
    page, cursor = await service.list(limit=1)
    assert [b.id for b in page] == [second.id] and cursor is not None
    rest, end = await service.list(limit=1, after=cursor)
    assert [b.id for b in rest] == [first.id] and end is None
    assert (await service.list(page_id="999"))[0] == []

    edited = await service.update(first.id, draft(VIP, name="Nombre nuevo"), "admin")
    assert edited.name == "Nombre nuevo" and edited.audience.tags_any == ("vip",)
    await service.delete(second.id)
    with pytest.raises(BroadcastNotFound):
        await service.get(second.id)

    await service.send(first.id, "admin", world.clock() + timedelta(hours=1))
    with pytest.raises(BroadcastStateError) as refused:
        await service.update(first.id, draft(VIP), "admin")
    assert refused.value.reason_code == "broadcast_not_editable" and "Programada" in refused.value.message_es
    with pytest.raises(BroadcastStateError):
        await service.delete(first.id)
    with pytest.raises(BroadcastInvalid) as bad_cursor:
        await service.list(after="nope")
    assert bad_cursor.value.field == "cursor"


async def test_the_dry_run_counts_who_would_receive_it_and_why_the_others_not_and_writes_nothing(
        world: World) -> None:
    world.wrote("ana", hours_ago=1, tags=["VIP"])
    world.wrote("beto", hours_ago=30, tags=["vip"])  # promotional: only within 24 h
    world.imported("carla", tags=["vip"])  # from a CSV file: never wrote
    world.wrote("dora", hours_ago=2, tags=["vip"])
    world.pause("dora")  # a person is talking to her
    world.wrote("eloy", hours_ago=3, tags=["vip"])
    world.wrote("fer", hours_ago=1)  # not in the audience
    await _make_unreachable(world, "eloy")
    before = await world.outbox.counts()

    dry = await world.service.dry_run(draft(VIP))

    assert (dry.audience, dry.will_send, dry.outside_window) == (5, 1, 2)  # beto and carla are outside the window
    assert dry.skipped == {"promotional_outside_window": 1, "never_wrote": 1, "conversation_paused": 1,
                           "blocked": 1}
    assert dry.examples["never_wrote"] == ["Ana Import"]
    assert dry.examples["promotional_outside_window"] == ["Sin nombre (PSID …beto)"]
    assert set(dry.reasons_es) == set(dry.skipped)
    assert "24 horas" in dry.reasons_es["promotional_outside_window"]
    assert "pausada" in dry.reasons_es["conversation_paused"]
    assert dry.estimated_seconds == pytest.approx(0.1)
    assert await world.outbox.counts() == before
    assert await world.service.list() == ([], None)

    not_promotional = await world.service.dry_run(draft(VIP, promotional=False))
    assert not_promotional.skipped.get("outside_window") == 1  # no tag: nothing reaches beto after 24 h


async def _make_unreachable(world: World, psid: str) -> None:
    """Meta answered 551 to the last message the page sent them, and they have not written since."""
    world.graph.unavailable.add(psid)
    await world.outbox.enqueue(NewMessage(page_id=PAGE, recipient_id=psid, message={"text": "¿Sigue ahí?"},
                                          sender=SenderKind.BOT, purpose=Purpose.FOLLOW_UP))
    await world.outbox.run_once()
    world.graph.unavailable.discard(psid)
    world.clock.advance(seconds=1)


async def test_sent_now_it_reaches_the_audience_through_the_outbox_and_the_report_follows_receipts(
        world: World) -> None:
    for psid in ("ana", "beto", "carla"):
        world.wrote(psid, hours_ago=1, tags=["vip"])
    world.wrote("dora", hours_ago=40, tags=["vip"])
    world.graph.unavailable.add("carla")  # Meta refuses her at send time
    content = {"text": "Elija su sabor", "image": {"url": "https://example.com/helado.png"},
               "quick_replies": [{"title": "Chocolate", "start": {"intent": "pedir_helado"}}, {"title": "Otro"}]}
    broadcast = await world.service.create(draft(VIP, content=content), "admin")
    sending = await world.service.send(broadcast.id, "admin")
    assert sending.status is BroadcastStatus.SCHEDULED and sending.send_at == world.clock()

    await world.drain()

    for psid in ("ana", "beto"):
        image, text = world.graph.received_by(psid)
        assert image["message"]["attachment"]["payload"]["url"] == "https://example.com/helado.png"
        assert text["message"]["text"] == "Elija su sabor"
        assert [qr["payload"] for qr in text["message"]["quick_replies"]] == ["/pedir_helado", "Otro"]
        assert "tag" not in text and text["messaging_type"] == "UPDATE"
    assert world.graph.received_by("dora") == []
    done = await world.service.report(broadcast.id)
    assert done.broadcast.status is BroadcastStatus.DONE
    assert (done.total, done.queued, done.sent, done.delivered, done.read) == (4, 0, 2, 0, 0)
    assert done.skipped == {"promotional_outside_window": 1}
    assert done.failed == {"code 551": 1}
    assert "no está disponible" in done.reasons_es["code 551"]
    assert done.retryable == 0  # Meta said she cannot be reached, and she has not written since

    ana = await world.messages_to("ana")
    last_part = max(ana, key=lambda message: message.id)
    await world.outbox.record_receipt(PAGE, "ana", "delivery", None, [last_part.graph_message_id or ""])
    await world.outbox.record_receipt(PAGE, "beto", "read", world.clock(), [])
    await world.service.run_once()
    assert (await world.service.report(broadcast.id)).delivered == 0  # a done broadcast is read at a slower pace
    world.clock.advance(seconds=service_module.FINISHED_REFRESH.total_seconds())
    await world.service.run_once()
    receipts = await world.service.report(broadcast.id)
    assert (receipts.sent, receipts.delivered, receipts.read) == (2, 2, 1)

    failed = await world.service.failed(broadcast.id)
    assert [(row.psid, row.state, row.reason_code, row.error_code) for row in failed] == [
        ("carla", RecipientState.FAILED, "person_unavailable", 551),
        ("dora", RecipientState.SKIPPED, "promotional_outside_window", None)]
    assert "no está disponible" in failed[0].reason_es and "24 horas" in failed[1].reason_es
    data = world.service.failed_csv(failed)
    assert data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))
    assert rows[0] == ["psid", "nombre", "estado", "motivo", "explicacion", "codigo_error"]
    assert [row[0] for row in rows[1:]] == ["carla", "dora"] and rows[1][5] == "551"

    # The reports read the period's broadcasts by start time, each with the figures of its own report.
    started = receipts.broadcast.started_at
    assert started is not None
    (period,), more = await world.service.started_in(None, started, started + timedelta(seconds=1), 10)
    assert not more and period.broadcast.id == broadcast.id
    assert (period.total, period.sent, period.delivered, period.read, period.skipped, period.failed) == (
        receipts.total, receipts.sent, receipts.delivered, receipts.read, receipts.skipped, receipts.failed)
    assert await world.service.started_in(None, started + timedelta(seconds=1), started + timedelta(days=1),
                                          10) == ([], False)
    assert await world.service.started_in("999", started, started + timedelta(seconds=1), 10) == ([], False)


async def test_the_failed_list_escapes_names_a_spreadsheet_would_run(world: World) -> None:
    world.contacts.import_contact(PAGE, "evil", "=HYPERLINK(\"x\")", None, ["vip"], {}, world.clock())
    broadcast = await world.service.create(draft(VIP), "admin")
    await world.service.send(broadcast.id, "admin")
    await world.drain()
    rows = await world.service.failed(broadcast.id)
    text = world.service.failed_csv(rows).decode("utf-8-sig")
    assert "'=HYPERLINK" in text and "\n=" not in text and ";=" not in text


async def test_retrying_the_failed_sends_again_only_to_those_the_policy_allows_now(world: World) -> None:
    for psid in ("ana", "beto"):
        world.wrote(psid, hours_ago=1, tags=["vip"])
    world.graph.unavailable.update({"ana", "beto"})
    broadcast = await world.service.create(draft(VIP), "admin")
    await world.service.send(broadcast.id, "admin")
    await world.drain()
    assert (await world.service.report(broadcast.id)).failed == {"code 551": 2}

    world.graph.unavailable.clear()
    world.wrote("ana")  # she wrote again: reachable, and her window is open
    assert (await world.service.report(broadcast.id)).retryable == 0  # the report's count is read every 30 s
    world.clock.advance(seconds=service_module.RETRYABLE_TTL.total_seconds())
    report = await world.service.report(broadcast.id)
    assert report.retryable == 1
    result = await world.service.retry_failed(broadcast.id, "admin")
    assert (result.requeued, result.still_refused) == (1, {"blocked": 1})
    assert (await world.service.get(broadcast.id)).status is BroadcastStatus.SENDING
    await world.drain()

    assert len(world.graph.received_by("ana")) == 1 and world.graph.received_by("beto") == []
    keys = sorted(message.idempotency_key for message in await world.messages_to("ana")
                  if message.idempotency_key.startswith("broadcast:"))
    assert keys == [idempotency_key(broadcast.id, "ana", 0, 0), idempotency_key(broadcast.id, "ana", 1, 0)]
    after = await world.service.report(broadcast.id)
    assert (after.broadcast.status, after.sent, after.failed) == (BroadcastStatus.DONE, 1, {"code 551": 1})
    again = await world.service.retry_failed(broadcast.id, "admin")
    assert again.requeued == 0


async def test_recipients_are_spread_at_the_page_s_broadcast_rate(world: World) -> None:
    for index in range(25):
        world.wrote(f"p{index:02d}", hours_ago=1, tags=["vip"])
    broadcast = await world.service.create(draft(VIP), "admin")
    await world.service.send(broadcast.id, "admin")
    start = world.clock()
    await world.service.run_once()
    messages = [message for index in range(25) for message in await world.messages_to(f"p{index:02d}")]
    due = sorted(message.due_at for message in messages)
    assert due[0] == start and due[-1] == start + timedelta(seconds=24 / 10)
    assert all(b - a == timedelta(seconds=0.1) for a, b in zip(due, due[1:], strict=False))


async def test_a_scheduled_broadcast_starts_when_due_and_a_past_or_naive_time_is_refused(world: World) -> None:
    world.wrote("ana", hours_ago=1, tags=["vip"])
    broadcast = await world.service.create(draft(VIP), "admin")
    with pytest.raises(BroadcastInvalid) as past:
        await world.service.send(broadcast.id, "admin", world.clock() - timedelta(hours=1))
    assert past.value.field == "send_at" and "ya pasó" in past.value.message_es
    with pytest.raises(BroadcastInvalid):
        await world.service.send(broadcast.id, "admin", world.clock().replace(tzinfo=None))
    await world.service.send(broadcast.id, "admin", world.clock() + timedelta(minutes=30))
    await world.service.run_once()
    assert (await world.service.get(broadcast.id)).status is BroadcastStatus.SCHEDULED
    assert await world.messages_to("ana") == []
    world.clock.advance(minutes=30)
    await world.drain()
    assert len(world.graph.received_by("ana")) == 1
    with pytest.raises(BroadcastStateError):
        await world.service.send(broadcast.id, "admin")


async def test_cancelling_mid_broadcast_stops_what_is_still_queued(world: World) -> None:
    for index in range(30):
        world.wrote(f"p{index:02d}", hours_ago=1, tags=["vip"])
    broadcast = await world.service.create(draft(VIP), "admin")
    await world.service.send(broadcast.id, "admin")
    await world.service.run_once()  # all 30 queued over 3 s
    await world.outbox.run_once()  # the first one is due now
    cancelled = await world.service.cancel(broadcast.id, "jefa")
    assert (cancelled.status, cancelled.cancelled_by) == (BroadcastStatus.CANCELLED, "jefa")
    world.clock.advance(minutes=5)
    await world.outbox.run_once()
    await world.service.run_once()
    report = await world.service.report(broadcast.id)
    assert report.sent == len(world.graph.sent) == 1
    assert report.skipped == {"broadcast_cancelled": 29} and report.queued == 0
    with pytest.raises(BroadcastStateError) as again:
        await world.service.cancel(broadcast.id, "jefa")
    assert again.value.reason_code == "broadcast_not_cancellable"


async def test_a_person_taking_a_conversation_over_mid_broadcast_keeps_the_broadcast_away(world: World) -> None:
    for index in range(10):
        world.wrote(f"p{index}", hours_ago=1, tags=["vip"])
    broadcast = await world.service.create(draft(VIP), "admin")
    await world.service.send(broadcast.id, "admin")
    await world.service.run_once()
    cancelled = await world.outbox.cancel_stale_bot_messages(PAGE, "p9")  # what the handoff does on a pause
    assert len(cancelled) == 1
    await world.drain()
    report = await world.service.report(broadcast.id)
    assert (report.sent, report.skipped) == (9, {"conversation_paused": 1})
    assert world.graph.received_by("p9") == []


async def test_the_policy_refusing_at_send_time_is_reported_as_blocked(world: World) -> None:
    world.wrote("ana", hours_ago=23.99, tags=["vip"])  # her window closes before her slot
    for index in range(20):
        world.wrote(f"p{index:02d}", hours_ago=1, tags=["vip"])
    broadcast = await world.service.create(draft(VIP), "admin")
    await world.service.send(broadcast.id, "admin")
    await world.service.run_once()
    world.clock.advance(minutes=2)
    await world.drain()
    report = await world.service.report(broadcast.id)
    assert report.blocked == {"promotional_outside_window": 1} and report.sent == 20
    assert world.graph.received_by("ana") == []


async def test_the_runner_loop_starts_a_broadcast_sent_now_and_survives_a_failing_round(
        world: World, caplog: pytest.LogCaptureFixture) -> None:
    world.wrote("ana", hours_ago=1, tags=["vip"])
    calls = {"n": 0}
    real = world.store.start_due

    def flaky(now):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database is locked")
        return real(now)

    world.store.start_due = flaky  # type: ignore[method-assign]
    task = asyncio.create_task(world.service.run(poll_seconds=0.02))
    try:
        broadcast = await world.service.create(draft(VIP), "admin")
        await world.service.send(broadcast.id, "admin")
        for _ in range(200):
            if (await world.messages_to("ana")):
                break
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [m.status for m in await world.messages_to("ana")] == [Status.PENDING]
    assert calls["n"] >= 2
    assert any(record.levelno == logging.ERROR and "round failed" in record.getMessage()
               for record in caplog.records)


async def test_the_report_catches_up_with_every_recipient_however_many_are_still_waiting(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    from broadcasts import service as service_module

    monkeypatch.setattr(service_module, "REFRESH_ROWS", 2)  # a round reads two recipients
    for psid in ("z5", "z4", "z3", "z2", "z1", "z0"):  # planned (and sent) in this order; read by PSID
        world.wrote(psid, hours_ago=1, tags=["vip"])
    world.service.page_rate = 1.0
    broadcast = await world.service.create(draft(VIP), "admin")
    await world.service.send(broadcast.id, "admin")
    await world.service.run_once()
    world.clock.advance(seconds=2.5)
    await world.outbox.run_once()  # z5, z4 and z3 are due: sent; the others wait
    for _ in range(3):
        await world.service.run_once()
    report = await world.service.report(broadcast.id)
    assert (report.sent, report.queued) == (3, 3)


async def test_a_cancel_landing_while_a_batch_is_enqueued_still_stops_that_batch(world: World) -> None:
    for index in range(5):
        world.wrote(f"p{index}", hours_ago=1, tags=["vip"])
    broadcast = await world.service.create(draft(VIP), "admin")
    await world.service.send(broadcast.id, "admin")
    real = world.outbox.enqueue_many

    async def enqueue_then_cancel(news):  # type: ignore[no-untyped-def]
        stored = await real(news)
        await world.service.cancel(broadcast.id, "jefa")  # the console, between the enqueue and the ids saved
        return stored

    world.outbox.enqueue_many = enqueue_then_cancel  # type: ignore[method-assign]
    await world.service.run_once()
    world.clock.advance(minutes=1)
    await world.outbox.run_once()
    await world.service.run_once()
    assert world.graph.sent == []
    assert (await world.service.report(broadcast.id)).skipped == {"broadcast_cancelled": 5}
