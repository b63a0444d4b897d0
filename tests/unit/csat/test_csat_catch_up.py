"""Which closes ask for a rating, and about whom: the live listener and the catch-up go through one rule
(`Csat.ask_for_close`). Someone of the team must have written to the person since the conversation was paused (the
handoff's copy of the messages, `agent:<username>`), the agent rated is the last one who wrote (the closer is kept
beside), a person asked in the 24 hours before a close is not asked again, and the idle auto-resume is known by its
reason, not by the actor's name. Each close is asked once, and its outbox key names the close, so a recreated csat
store never finds another person's old survey. The real outbox (in memory), the csat store and the handoff's log on
SQLite.

Would catch: surveys after closes where nobody talked to the person, the closer rated instead of the agent who
wrote, two surveys in one afternoon, a console user named «system» never surveyed, `csat:<id>` keys swallowing new
surveys after the csat store is recreated, a message for someone else recorded as «enviada»."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from csat.model import AskStatus
from csat.service import KEY_TAKEN, Csat, survey_key
from csat.store import open_csat_store
from handoff.model import Close, PauseReason
from handoff.service import AUTO_RESUME_BY, AUTO_RESUME_REASON, HandoffStore, open_handoff_store
from meta.graph import GraphClient
from outbox.model import MessageFilter, NewMessage, Purpose, SenderKind
from outbox.outbox import Outbox, open_outbox

PAGE, USER, OTHER = "100000000000001", "2000000000000001", "2000000000000002"
CONVERSATION = f"{PAGE}:{USER}"
T0 = datetime(2026, 11, 30, 15, 0, tzinfo=timezone.utc)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
async def outbox() -> AsyncIterator[Outbox]:
    client = GraphClient({PAGE: "token"}, base_url="http://127.0.0.1:9")
    opened = open_outbox("memory://", client)
    await opened.record_user_message(PAGE, USER, T0, "necesito ayuda")
    await opened.record_user_message(PAGE, OTHER, T0, "hola")
    yield opened
    opened.close()
    await client.close()


@pytest.fixture
def handoff(tmp_path: Path) -> Iterator[HandoffStore]:
    store = open_handoff_store(tmp_path / "handoff.sqlite3")
    yield store
    store.close()


def agent_of(handoff: HandoffStore):  # type: ignore[no-untyped-def]
    async def find(conversation_id: str, closed_at: datetime) -> str | None:
        return handoff.agent_of_close(conversation_id, closed_at)

    return find


def episode(handoff: HandoffStore, user: str, start: float, writers: list[tuple[str, float]], closer: str,
            end: float) -> Close:
    """Paused by the bot at `start`, the team writes (who, when), `closer` closes at `end`."""
    handoff.pause(PAGE, user, PauseReason.USER_ASKED, "bot", at(start))
    handoff.record_user_message(PAGE, user, "quiero hablar con alguien", at(start), at(start))
    for writer, minute in writers:
        handoff.record_agent_message(f"{PAGE}:{user}", writer, "Hola, le ayudo", at(minute))
    handoff.resume(f"{PAGE}:{user}", closer, "Resuelto", at(end))
    return Close(f"{PAGE}:{user}", PAGE, user, closer, at(end))


async def sent_to(outbox: Outbox, user: str) -> int:
    return len(await outbox.find(MessageFilter(recipient_id=user, page_id=PAGE)))


async def test_a_close_missed_by_the_listener_is_asked_once_about_the_agent_who_wrote(
        outbox: Outbox, handoff: HandoffStore) -> None:
    csat = Csat(open_csat_store(":memory:"), outbox, mode="quick_replies")
    episode(handoff, USER, 0, [("ana", 2), ("luis", 5)], "admin", 10)
    closes = handoff.closes_since(T0)
    await csat.catch_up(closes, agent_of(handoff), now=at(11))
    await csat.catch_up(closes, agent_of(handoff), now=at(12))  # the next round sees the same close
    asks = await csat.of_conversation(CONVERSATION)
    assert [(ask.agent, ask.closed_by, ask.status) for ask in asks] == [("luis", "admin", AskStatus.SENT)]
    assert await sent_to(outbox, USER) == 1
    csat.close()


async def test_no_survey_when_nobody_of_the_team_wrote_since_the_pause(outbox: Outbox,
                                                                      handoff: HandoffStore) -> None:
    csat = Csat(open_csat_store(":memory:"), outbox, mode="quick_replies")
    # An earlier episode where ana wrote does not count for a later pause nobody answered.
    episode(handoff, USER, 0, [("ana", 1)], "ana", 2)
    silent = episode(handoff, USER, 30, [], "admin", 40)
    assert handoff.agent_of_close(CONVERSATION, at(40)) is None
    assert handoff.agent_of_close(CONVERSATION, at(2)) == "ana"
    assert await csat.ask_for_close(silent, agent_of(handoff), now=at(41)) is None
    # A message written after the close is not about this close either.
    handoff.record_agent_message(CONVERSATION, "luis", "¿Sigue ahí?", at(50))
    assert await csat.ask_for_close(silent, agent_of(handoff), now=at(51)) is None
    assert await csat.of_conversation(CONVERSATION) == [] and await sent_to(outbox, USER) == 0
    csat.close()


async def test_a_person_asked_in_the_last_24_hours_is_not_asked_again(outbox: Outbox,
                                                                      handoff: HandoffStore) -> None:
    csat = Csat(open_csat_store(":memory:"), outbox, mode="template", privacy_url="https://tienda.ec/privacidad")
    first = episode(handoff, USER, 0, [("ana", 1)], "ana", 5)
    second = episode(handoff, USER, 60, [("luis", 61)], "luis", 70)
    asked = await csat.ask_for_close(first, agent_of(handoff), now=at(5))
    assert asked is not None and asked.status is AskStatus.SENT
    assert await csat.ask_for_close(second, agent_of(handoff), now=at(70)) is None
    assert await csat.ask_for_close(second, agent_of(handoff), now=at(71)) is None  # the catch-up's next round
    # A day later the person may be asked again.
    third = episode(handoff, USER, 60 * 25, [("luis", 60 * 25 + 1)], "luis", 60 * 25 + 5)
    await outbox.record_user_message(PAGE, USER, third.at, "otra consulta")
    later = await csat.ask_for_close(third, agent_of(handoff), now=third.at)
    assert later is not None and later.status is AskStatus.SENT and later.agent == "luis"
    assert [ask.closed_at for ask in await csat.of_conversation(CONVERSATION)] == [third.at, first.at]
    assert await sent_to(outbox, USER) == 2
    csat.close()


async def test_a_survey_the_policy_refused_does_not_count_as_asked(outbox: Outbox, handoff: HandoffStore) -> None:
    csat = Csat(open_csat_store(":memory:"), outbox, mode="quick_replies")
    refused = episode(handoff, OTHER, 60 * 30, [("ana", 60 * 30 + 1)], "ana", 60 * 30 + 2)  # 30 h: no window
    ask = await csat.ask_for_close(refused, agent_of(handoff), now=refused.at)
    assert ask is not None and ask.status is AskStatus.NOT_SENT
    await outbox.record_user_message(PAGE, OTHER, at(60 * 31), "hola de nuevo")
    again = episode(handoff, OTHER, 60 * 31, [("ana", 60 * 31 + 1)], "ana", 60 * 31 + 2)
    asked = await csat.ask_for_close(again, agent_of(handoff), now=again.at)
    assert asked is not None and asked.status is AskStatus.SENT
    csat.close()


async def test_an_ask_left_asking_by_a_crash_is_finished_without_a_second_message(
        outbox: Outbox, handoff: HandoffStore) -> None:
    store = open_csat_store(":memory:")
    csat = Csat(store, outbox, mode="quick_replies")
    mine = episode(handoff, USER, 0, [("ana", 1)], "ana", 10)
    theirs = episode(handoff, OTHER, 0, [("luis", 1)], "luis", 10)
    ask = await csat.ask_for_close(mine, agent_of(handoff), now=at(10))
    assert ask is not None and ask.status is AskStatus.SENT
    # The crash: the ask of a second close is recorded, the outbox never heard of it.
    stuck, created = store.create_ask(PAGE, OTHER, theirs.conversation_id, "luis", theirs.at, at(10))
    assert created and stuck is not None and stuck.status is AskStatus.ASKING
    await csat.catch_up(handoff.closes_since(T0), agent_of(handoff), now=at(11))
    finished = await csat.of_conversation(theirs.conversation_id)
    assert [(a.id, a.status) for a in finished] == [(stuck.id, AskStatus.SENT)]
    assert (await sent_to(outbox, USER), await sent_to(outbox, OTHER)) == (1, 1)
    csat.close()


async def test_a_recreated_csat_store_never_takes_another_persons_old_survey(outbox: Outbox,
                                                                            handoff: HandoffStore) -> None:
    before = Csat(open_csat_store(":memory:"), outbox, mode="quick_replies")
    old = await before.ask_for_close(episode(handoff, USER, 0, [("ana", 1)], "ana", 5), agent_of(handoff), at(5))
    before.close()
    # csat.sqlite3 deleted (or CSAT_DB_URL moved): ids start at 1 again, the outbox keeps its rows.
    after = Csat(open_csat_store(":memory:"), outbox, mode="quick_replies")
    new = await after.ask_for_close(episode(handoff, OTHER, 0, [("luis", 1)], "luis", 6), agent_of(handoff), at(6))
    assert old is not None and new is not None and new.id == old.id == 1
    assert new.status is AskStatus.SENT and new.outbox_id != old.outbox_id
    message = await outbox.get(new.outbox_id or 0)
    assert message is not None and message.recipient_id == OTHER
    assert message.idempotency_key == survey_key(new) == f"csat:{PAGE}:{OTHER}:{at(6).isoformat()}"
    assert (await sent_to(outbox, USER), await sent_to(outbox, OTHER)) == (1, 1)
    after.close()


async def test_a_key_holding_another_persons_message_is_not_sent(outbox: Outbox, handoff: HandoffStore) -> None:
    csat = Csat(open_csat_store(":memory:"), outbox, mode="quick_replies")
    close = episode(handoff, USER, 0, [("ana", 1)], "ana", 5)
    key = f"csat:{CONVERSATION}:{close.at.isoformat()}"
    await outbox.enqueue(NewMessage(page_id=PAGE, recipient_id=OTHER, message={"text": "otro"},
                                    sender=SenderKind.SYSTEM, purpose=Purpose.FOLLOW_UP, idempotency_key=key))
    ask = await csat.ask_for_close(close, agent_of(handoff), now=at(5))
    assert ask is not None and (ask.status, ask.reason_code, ask.outbox_id) == (AskStatus.NOT_SENT, KEY_TAKEN, None)
    assert ask.reason_es and await sent_to(outbox, USER) == 0
    csat.close()


async def test_the_thanks_key_names_the_close_and_another_persons_message_is_not_taken_for_it(
        outbox: Outbox, handoff: HandoffStore) -> None:
    csat = Csat(open_csat_store(":memory:"), outbox, mode="quick_replies")
    ask = await csat.ask_for_close(episode(handoff, USER, 0, [("ana", 1)], "ana", 5), agent_of(handoff), at(5))
    assert ask is not None
    await outbox.enqueue(NewMessage(page_id=PAGE, recipient_id=OTHER, message={"text": "otro"},
                                    sender=SenderKind.BOT, purpose=Purpose.REPLY,
                                    idempotency_key=f"{survey_key(ask)}:thanks"))
    answered = await csat.record_answer(PAGE, USER, "quick_replies", [{"type": "csat", "payload": "5"}], "e1", at(6))
    assert answered is not None and answered.rating == 5  # the rating stays; only the thanks is missing
    assert await sent_to(outbox, USER) == 1  # the survey, no thanks
    csat.close()


def test_the_handoff_log_lists_closes_by_people_not_the_idle_auto_resume(handoff: HandoffStore) -> None:
    third = "2000000000000003"
    for user in (USER, OTHER, third):
        handoff.pause(PAGE, user, PauseReason.USER_ASKED, "bot", T0)
    handoff.resume(CONVERSATION, "ana", "Consulta resuelta", at(5))
    handoff.resume(f"{PAGE}:{OTHER}", AUTO_RESUME_BY, "sin actividad", at(6), AUTO_RESUME_REASON)
    # A console user named like the system (created before the name was reserved) is still a person.
    handoff.resume(f"{PAGE}:{third}", "system", "Atendido", at(7))
    assert handoff.closes_since(T0) == [Close(CONVERSATION, PAGE, USER, "ana", at(5)),
                                        Close(f"{PAGE}:{third}", PAGE, third, "system", at(7))]
    assert handoff.closes_since(at(7)) == [Close(f"{PAGE}:{third}", PAGE, third, "system", at(7))]
    assert handoff.closes_since(at(7.01)) == []
