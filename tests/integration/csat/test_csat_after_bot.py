"""The survey after the bot resolved a conversation on its own (CSAT_AFTER_BOT_MINUTES, csat/resolved.py): N minutes
after the person's last message, when the bot answered their latest question (the answer journal, by their
pseudonym) and nobody of the team was involved since the conversation began, the person is asked once, about «bot»,
the close survey's way (outbox, policy, template). The real outbox, answer journal, handoff and csat stores on SQLite
files; Rasa's tracker API is a stand-in (nothing here reads it).

The outbox stamps a message with its own clock when it records it (on purpose), so the person writes "now" and each
round is run at a `now` minutes later: the test never waits and never asserts on the wall clock.

Would catch: a survey after a miss, a handoff, an offer nobody tapped, a conversation a person paused or closed, or
one still paused; a survey while the person may still be writing, or hours later after a restart; a second survey
when the task runs again or the person writes again within 24 hours; a survey with the setting at 0 or CSAT_MODE=off;
the ask not rated as «bot» (its own row in the per-agent table); conversations lost past the first page."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from answers.model import Handling
from answers.service import Answers
from answers.store import open_answers_store
from csat.model import BOT_AGENT, AskStatus
from csat.resolved import RESOLVED_HANDLINGS, BotSurveys
from csat.service import Csat, survey_key
from csat.store import CsatStore, open_csat_store
from handoff.model import PauseReason, conversation_id_of
from handoff.service import Handoff, open_handoff_store
from meta.graph import GraphClient
from outbox.model import MessageFilter
from outbox.outbox import Outbox, open_outbox

PAGE = "100000000000001"
USERS = [f"20000000000000{n:02d}" for n in range(1, 10)]
USER, OTHER = USERS[0], USERS[1]
AFTER = 30  # CSAT_AFTER_BOT_MINUTES in these tests
PRIVACY = "https://tienda.ec/privacidad"


class StandInRasa:
    """Rasa's tracker API: the rounds never call it (pauses go through the handoff's store here)."""

    async def append_events(self, sender_id: str, events: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        raise AssertionError("not used")

    async def tracker(self, sender_id: str) -> dict[str, Any]:
        raise AssertionError("not used")

    async def close(self) -> None:
        return None


@dataclass
class World:
    outbox: Outbox
    handoff: Handoff
    answers: Answers
    csat: Csat
    csat_store: CsatStore
    t0: datetime  # when the people of a test write (the outbox records it on its own clock, just after)

    def surveys(self, after_minutes: int = AFTER, page_size: int = 200) -> BotSurveys:
        return BotSurveys(self.csat, self.handoff, self.answers, after_minutes=after_minutes,
                          conversation_id_of=conversation_id_of, page_size=page_size)

    def at(self, minutes: float) -> datetime:
        return self.t0 + timedelta(minutes=minutes)

    async def writes(self, user: str, handling: Handling | None = Handling.MATRIX, text: str = "¿precio?") -> None:
        """The person writes at t0 and the bot journals how it handled the question (None: nothing journaled)."""
        await self.outbox.record_user_message(PAGE, user, self.t0, text)
        if handling is not None:
            self.answers.record_question(page_id=PAGE, psid=user, question=text, handling=handling,
                                         at=self.t0 + timedelta(seconds=2))

    async def sent_to(self, user: str) -> int:
        return len(await self.outbox.find(MessageFilter(recipient_id=user, page_id=PAGE)))


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    client = GraphClient({PAGE: "token"}, base_url="http://127.0.0.1:9")
    outbox = open_outbox(f"sqlite:///{tmp_path / 'outbox.sqlite3'}", client)
    handoff_store = open_handoff_store(tmp_path / "handoff.sqlite3")
    handoff = Handoff(handoff_store, StandInRasa(), outbox, page_tokens={PAGE: "token"})
    answers = Answers(open_answers_store(tmp_path / "answers.sqlite3"), secret="journal-secret")
    csat_store = open_csat_store(tmp_path / "csat.sqlite3")
    csat = Csat(csat_store, outbox, mode="template", privacy_url=PRIVACY)
    yield World(outbox, handoff, answers, csat, csat_store, datetime.now(timezone.utc))
    csat.close()
    csat_store.close()
    answers.close()
    handoff_store.close()
    outbox.close()
    await client.close()


async def test_a_conversation_the_bot_resolved_is_asked_once_about_the_bot(world: World) -> None:
    await world.writes(USER)
    surveys = world.surveys()

    [ask] = await surveys.catch_up(world.at(AFTER + 1))
    again = await surveys.catch_up(world.at(AFTER + 2))  # the next minute's round sees it again

    assert [a.id for a in again] == [ask.id]
    assert (ask.status, ask.agent, ask.closed_by, ask.tag) == (AskStatus.SENT, BOT_AGENT, BOT_AGENT, None)
    assert ask.conversation_id == conversation_id_of(PAGE, USER)
    assert ask.closed_at == world.t0, "one ask per last message of the person"
    message = await world.outbox.get(ask.outbox_id or 0)
    assert message is not None and message.idempotency_key == survey_key(ask)
    assert survey_key(ask) == f"csat:{PAGE}:{USER}:bot:{world.t0.isoformat()}"
    assert message.message["attachment"]["payload"]["template_type"] == "customer_feedback"
    assert await world.sent_to(USER) == 1
    satisfaction = world.csat_store.agent_satisfaction(None)
    assert [(row.agent, row.asked) for row in satisfaction] == [(BOT_AGENT, 1)], "the bot is its own row"


@pytest.mark.parametrize("handling", sorted(RESOLVED_HANDLINGS))
async def test_each_answer_of_the_bot_counts(world: World, handling: str) -> None:
    await world.writes(USER, Handling(handling))
    assert len(await world.surveys().catch_up(world.at(AFTER + 1))) == 1


def test_the_answers_are_the_journal_s() -> None:
    assert {Handling.MATRIX.value, Handling.SELECTED.value, Handling.GPT.value} == RESOLVED_HANDLINGS
    assert {handling.value for handling in Handling} >= RESOLVED_HANDLINGS


@pytest.mark.parametrize("handling", [Handling.NO_ANSWER, Handling.HANDOFF, Handling.DID_YOU_MEAN, None])
async def test_a_question_the_bot_did_not_answer_is_not_asked(world: World, handling: Handling | None) -> None:
    await world.writes(USER, handling)
    assert await world.surveys().catch_up(world.at(AFTER + 1)) == []
    assert await world.sent_to(USER) == 0


async def test_an_answer_after_a_miss_is_what_counts(world: World) -> None:
    await world.writes(USER, Handling.NO_ANSWER)
    world.answers.record_question(page_id=PAGE, psid=USER, question="¿y el horario?", handling=Handling.MATRIX,
                                  at=world.t0 + timedelta(seconds=5))
    await world.writes(OTHER, Handling.MATRIX)
    world.answers.record_question(page_id=PAGE, psid=OTHER, question="¿y eso?", handling=Handling.NO_ANSWER,
                                  at=world.t0 + timedelta(seconds=5))

    asks = await world.surveys().catch_up(world.at(AFTER + 1))

    assert [ask.user_id for ask in asks] == [USER], "the latest question decides"


async def test_a_conversation_a_person_was_involved_in_is_not_asked(world: World) -> None:
    store = world.handoff.store
    paused, closed, long_paused, bot_only = USERS[:4]
    for user in (paused, closed, long_paused, bot_only):
        await world.writes(user)
    # Paused by the bot when the person asked for someone, still paused.
    store.pause(PAGE, paused, PauseReason.USER_ASKED, "bot", world.at(-1))
    # Paused, an agent wrote, an agent closed: the close survey's, not the bot's.
    store.pause(PAGE, closed, PauseReason.USER_ASKED, "bot", world.at(-20))
    store.record_agent_message(conversation_id_of(PAGE, closed), "ana", "Hola, le ayudo", world.at(-15))
    store.resume(conversation_id_of(PAGE, closed), "ana", "Resuelto", world.at(-10))
    # Paused three days ago and never given back: still a person's conversation.
    store.pause(PAGE, long_paused, PauseReason.USER_ASKED, "bot", world.at(-3 * 24 * 60))
    # Paused and given back two days ago: before this conversation began, it does not count.
    store.pause(PAGE, bot_only, PauseReason.USER_ASKED, "bot", world.at(-2 * 24 * 60))
    store.resume(conversation_id_of(PAGE, bot_only), "ana", "Resuelto", world.at(-2 * 24 * 60 + 30))

    asks = await world.surveys().catch_up(world.at(AFTER + 1))

    assert [ask.user_id for ask in asks] == [bot_only]


@pytest.mark.parametrize(("minutes", "asked"), [(AFTER - 1, False), (AFTER + 1, True), (AFTER + 59, True),
                                                (AFTER + 61, False), (AFTER + 24 * 60, False)])
async def test_only_between_n_and_n_plus_an_hour_after_the_last_message(world: World, minutes: float,
                                                                        asked: bool) -> None:
    await world.writes(USER)
    assert len(await world.surveys().catch_up(world.at(minutes))) == int(asked)


async def test_a_person_asked_in_the_last_24_hours_is_not_asked_again(world: World) -> None:
    await world.writes(USER)
    await world.csat.ask_after_close(conversation_id_of(PAGE, USER), PAGE, USER, "ana", world.at(-120),
                                     world.at(-120), closed_by="ana")
    assert await world.surveys().catch_up(world.at(AFTER + 1)) == []
    assert [ask.agent for ask in await world.csat.of_conversation(conversation_id_of(PAGE, USER))] == ["ana"]


async def test_a_new_message_within_24_hours_asks_no_second_time(world: World) -> None:
    await world.writes(USER)
    surveys = world.surveys()
    [first] = await surveys.catch_up(world.at(AFTER + 1))
    world.t0 = datetime.now(timezone.utc)  # the person writes again, and the bot answers again
    await world.writes(USER, text="gracias, ¿y el envío?")

    assert await surveys.catch_up(world.at(AFTER + 1)) == []
    assert [ask.id for ask in await world.csat.of_conversation(first.conversation_id)] == [first.id]
    assert await world.sent_to(USER) == 1


async def test_off_by_default_and_with_csat_mode_off(world: World, tmp_path: Path) -> None:
    await world.writes(USER)
    assert not world.surveys(after_minutes=0).is_on
    assert await world.surveys(after_minutes=0).catch_up(world.at(AFTER + 1)) == []
    off_store = open_csat_store(tmp_path / "csat-off.sqlite3")
    off = Csat(off_store, world.outbox, mode="off")
    try:
        surveys = BotSurveys(off, world.handoff, world.answers, after_minutes=AFTER,
                             conversation_id_of=conversation_id_of)
        assert not surveys.is_on
        assert await surveys.catch_up(world.at(AFTER + 1)) == []
    finally:
        off.close()
        off_store.close()
    assert await world.sent_to(USER) == 0


async def test_every_page_of_conversations_is_read(world: World) -> None:
    for user in USERS:
        await world.writes(user, Handling.MATRIX if user != USERS[3] else Handling.NO_ANSWER)

    asks = await world.surveys(page_size=2).catch_up(world.at(AFTER + 1))

    assert sorted(ask.user_id for ask in asks) == sorted(set(USERS) - {USERS[3]})


async def test_quick_replies_without_the_privacy_link_and_the_policy_decides(world: World, tmp_path: Path) -> None:
    await world.writes(USER)
    quick_store = open_csat_store(tmp_path / "csat-quick.sqlite3")
    quick = Csat(quick_store, world.outbox, mode="template")  # no CSAT_PRIVACY_URL: quick replies
    try:
        surveys = BotSurveys(quick, world.handoff, world.answers, after_minutes=AFTER,
                             conversation_id_of=conversation_id_of)
        [ask] = await surveys.catch_up(world.at(AFTER + 1))
    finally:
        quick.close()
        quick_store.close()
    message = await world.outbox.get(ask.outbox_id or 0)
    assert message is not None and len(message.message["quick_replies"]) == 5
