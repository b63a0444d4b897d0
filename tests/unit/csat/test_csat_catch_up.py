"""Closes the live listener missed are asked from the handoff's durable log: once per close, whatever how often the
catch-up sees it; an ask a crash left `asking` (recorded, the outbox not yet told) is finished, and the outbox's key
keeps it to one message. The real outbox (in memory) and the csat store on SQLite; the handoff's log on SQLite.

Would catch: a restart between an agent's close and its ask losing the survey, a catch-up asking a second time, a
survey stuck in `asking` forever, the idle auto-resume asking a rating."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from csat.model import AskStatus
from csat.service import Csat
from csat.store import open_csat_store
from handoff.model import Close, PauseReason
from handoff.service import AUTO_RESUME_BY, open_handoff_store
from meta.graph import GraphClient
from outbox.model import MessageFilter
from outbox.outbox import Outbox, open_outbox

PAGE, USER, OTHER = "100000000000001", "2000000000000001", "2000000000000002"
T0 = datetime(2026, 11, 30, 15, 0, tzinfo=timezone.utc)


@pytest.fixture
async def outbox() -> AsyncIterator[Outbox]:
    client = GraphClient({PAGE: "token"}, base_url="http://127.0.0.1:9")
    opened = open_outbox("memory://", client)
    await opened.record_user_message(PAGE, USER, T0, "necesito ayuda")
    await opened.record_user_message(PAGE, OTHER, T0, "hola")
    yield opened
    opened.close()
    await client.close()


async def sent_to(outbox: Outbox, user: str) -> int:
    return len(await outbox.find(MessageFilter(recipient_id=user, page_id=PAGE)))


async def test_a_close_missed_by_the_listener_is_asked_once(outbox: Outbox) -> None:
    csat = Csat(open_csat_store(":memory:"), outbox, mode="quick_replies")
    closes = [Close(f"{PAGE}:{USER}", PAGE, USER, "ana", T0 + timedelta(minutes=10))]
    await csat.catch_up(closes, now=T0 + timedelta(minutes=11))
    await csat.catch_up(closes, now=T0 + timedelta(minutes=12))  # the next round sees the same close
    asks = await csat.of_conversation(f"{PAGE}:{USER}")
    assert [(ask.agent, ask.status) for ask in asks] == [("ana", AskStatus.SENT)]
    assert await sent_to(outbox, USER) == 1
    csat.close()


async def test_an_ask_left_asking_by_a_crash_is_finished_without_a_second_message(outbox: Outbox) -> None:
    store = open_csat_store(":memory:")
    csat = Csat(store, outbox, mode="quick_replies")
    closed = T0 + timedelta(minutes=10)
    ask = await csat.ask_after_close(f"{PAGE}:{USER}", PAGE, USER, "ana", closed, now=closed)
    assert ask is not None and ask.status is AskStatus.SENT
    # The crash: the ask of a second close is recorded, the outbox never heard of it.
    stuck, created = store.create_ask(PAGE, OTHER, f"{PAGE}:{OTHER}", "luis", closed, closed)
    assert created and stuck.status is AskStatus.ASKING
    await csat.catch_up([Close(f"{PAGE}:{USER}", PAGE, USER, "ana", closed),
                         Close(f"{PAGE}:{OTHER}", PAGE, OTHER, "luis", closed)], now=closed + timedelta(minutes=1))
    finished = await csat.of_conversation(f"{PAGE}:{OTHER}")
    assert [(a.id, a.status) for a in finished] == [(stuck.id, AskStatus.SENT)]
    assert (await sent_to(outbox, USER), await sent_to(outbox, OTHER)) == (1, 1)
    csat.close()


def test_the_handoff_log_lists_closes_by_people_not_the_idle_auto_resume(tmp_path: Path) -> None:
    store = open_handoff_store(tmp_path / "handoff.sqlite3")
    for user in (USER, OTHER):
        store.pause(PAGE, user, PauseReason.USER_ASKED, "bot", T0)
    store.resume(f"{PAGE}:{USER}", "ana", "Consulta resuelta", T0 + timedelta(minutes=5))
    store.resume(f"{PAGE}:{OTHER}", AUTO_RESUME_BY, "sin actividad", T0 + timedelta(minutes=6))
    assert store.closes_since(T0) == [Close(f"{PAGE}:{USER}", PAGE, USER, "ana", T0 + timedelta(minutes=5))]
    assert store.closes_since(T0 + timedelta(minutes=5, seconds=1)) == []
    store.close()
