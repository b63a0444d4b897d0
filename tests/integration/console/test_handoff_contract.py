"""One contract suite for the handoff service the console calls (`HandoffService` and `window_status`): the same
tests against the console's fake (`tests/support/console_fakes.py`, what the console's unit tests run on) and the
real `handoff.service.Handoff` with its handoff store and outbox both on SQLite, and both on PostgreSQL. The fake
passing here is what lets the console's unit tests stand for the real service.

Every method the console calls is covered (grep `service.` in console/routes.py): pause, assign, resume,
reply_as_agent, paused_conversations, get, transcript, window_status and subscribe, with their refusals.
Rasa's HTTP API is the in-memory `InMemoryRasaTrackers` (Rasa's own contract is tested against a real Rasa in
tests/integration/test_handoff_flow.py). Time is a clock the tests move; nothing sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import pytest

from core.settings import SANDBOX_PAGE_ID, Settings
from handoff.model import (
    ConsoleEvent,
    ConversationNotFound,
    ConversationState,
    PauseReason,
    ReplyRefused,
    conversation_id_of,
)
from handoff.rasa_api import InMemoryRasaTrackers
from handoff.reply_window import ReplyWindow, reply_window
from handoff.service import Handoff, HandoffStore, open_handoff_store
from meta.graph import GraphClient
from outbox.model import MessageFilter, SenderKind
from outbox.outbox import Outbox
from outbox.policy import decide
from outbox.policy_file import load_policy
from outbox.store import open_store
from tests.integration.outbox.test_store_contract import postgres_schema
from tests.support.console_fakes import FakeHandoff
from tests.support.postgres import store_url
from tests.unit.console.conftest import Clock

PAGE = SANDBOX_PAGE_ID
OTHER_PAGE = "100000000000999"  # not configured
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
BACKENDS = ("fake", "real-sqlite", "real-postgres")


class Service(Protocol):
    """What the console calls (console/routes.py), `window_status` included."""

    async def pause(self, page_id: str, user_id: str, reason: PauseReason, paused_by: str) -> Any: ...
    async def resume(self, conversation_id: str, by: str, closing_note: str) -> Any: ...
    async def record_user_message(self, page_id: str, user_id: str, text: str, at: datetime) -> None: ...
    async def reply_as_agent(self, conversation_id: str, agent: str, text: str, *,
                             idempotency_key: str | None = None) -> dict[str, Any]: ...
    async def assign(self, conversation_id: str, agent: str | None) -> Any: ...
    async def paused_conversations(self) -> list[Any]: ...
    async def get(self, conversation_id: str) -> Any: ...
    async def transcript(self, conversation_id: str) -> list[Any]: ...
    async def window_status(self, conversation_id: str, now: datetime | None = None) -> ReplyWindow: ...
    def subscribe(self) -> AsyncIterator[ConsoleEvent]: ...


@dataclass
class Subject:
    """A handoff service under test, with what the tests need around it."""

    service: Service
    clock: Clock
    customer_wrote: Any  # (page_id, user_id, text, at) -> None: a message the bot saw (Rasa and the outbox know it)
    queued: Any  # (user_id) -> [(text, sender_name)]: the agents' replies handed to the outbox, oldest first
    events: list[ConsoleEvent] = field(default_factory=list)

    def kinds(self, conversation_id: str) -> list[str]:
        return [event.kind for event in self.events if event.conversation_id == conversation_id]


def fake_subject() -> Subject:
    clock = Clock(T0)
    fake = FakeHandoff(clock)
    return Subject(fake, clock, fake.add_user_message,
                   lambda user: [(m["text"], m["sender_name"]) for m in fake.sent if m["recipient_id"] == user])


@dataclass
class RealParts:
    handoff: Handoff
    store: HandoffStore
    outbox: Any
    rasa: InMemoryRasaTrackers
    graph: GraphClient


def real_parts(tmp_path: Path, handoff_url: str, outbox_url: str, clock: Clock) -> RealParts:
    settings = Settings(data_dir=tmp_path)
    store = open_handoff_store(handoff_url)
    outbox = open_store(outbox_url)
    rasa = InMemoryRasaTrackers()
    # Never called: the worker's loop does not run here.
    graph = GraphClient(settings.page_tokens, base_url=settings.graph_api_base)
    facade = Outbox(outbox, graph, load_policy(), clock=clock)
    handoff = Handoff(store, rasa, facade, page_tokens=settings.page_tokens, graph=graph, clock=clock)
    return RealParts(handoff, store, outbox, rasa, graph)


def real_subject(parts: RealParts, clock: Clock) -> Subject:
    def customer_wrote(page_id: str, user_id: str, text: str, at: datetime | None = None) -> None:
        at = at or clock()
        parts.outbox.record_user_message(page_id, user_id, at)  # what the connector records for every message
        parts.rasa.trackers.setdefault(user_id, []).append(
            {"event": "user", "text": text, "timestamp": at.timestamp(), "metadata": {"page_id": page_id}})

    def queued(user_id: str) -> list[tuple[str, str | None]]:
        found = parts.outbox.find(MessageFilter(recipient_id=user_id, limit=1000))
        return [(m.message.get("text"), m.sender_name) for m in sorted(found, key=lambda m: m.id)
                if m.sender is SenderKind.HUMAN]

    return Subject(parts.handoff, clock, customer_wrote, queued)


@contextmanager
def store_urls_for(backend: str, tmp_path: Path) -> Iterator[tuple[str, str] | None]:
    """None for the fake; the handoff store's and the outbox store's URLs for the real service."""
    if backend == "fake":
        yield None
    elif backend == "real-sqlite":
        yield Settings(data_dir=tmp_path).handoff_store_url, f"sqlite:///{tmp_path / 'outbox.sqlite3'}"
    else:
        with store_url("postgres", tmp_path, "handoff") as handoff_url, postgres_schema() as outbox_url:
            yield handoff_url, outbox_url


@pytest.fixture(params=BACKENDS)
async def subject(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Subject]:
    clock = Clock(T0)
    parts: RealParts | None = None
    with store_urls_for(request.param, tmp_path) as urls:
        if urls is None:
            made = fake_subject()
        else:
            parts = real_parts(tmp_path, *urls, clock)
            made = real_subject(parts, clock)
        listener = asyncio.ensure_future(_collect(made))
        await asyncio.sleep(0)  # the listener is subscribed from here on
        try:
            yield made
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
            if parts is not None:
                parts.store.close()
                parts.outbox.close()
                await parts.graph.close()


async def _collect(made: Subject) -> None:
    async for event in made.service.subscribe():
        made.events.append(event)


async def settle() -> None:
    """Let the event listener catch up (events are delivered on the loop, in order)."""
    for _ in range(5):
        await asyncio.sleep(0)


def cid(user: str, page: str = PAGE) -> str:
    return conversation_id_of(page, user)


# --- pausing ---------------------------------------------------------------------------------------------


async def test_a_pause_records_who_why_when_lists_it_and_tells_consoles_once(subject: Subject) -> None:
    service = subject.service
    subject.customer_wrote(PAGE, "u1", "quiero un agente", T0 - timedelta(minutes=3))

    paused = await service.pause(PAGE, "u1", PauseReason.USER_ASKED, "bot")

    assert (paused.id, paused.page_id, paused.user_id) == (cid("u1"), PAGE, "u1")
    assert paused.state is ConversationState.PAUSED
    assert (paused.paused_reason, paused.paused_by, paused.paused_at) == (PauseReason.USER_ASKED, "bot", T0)
    assert (paused.assigned_to, paused.last_activity_at) == (None, T0)
    # The handoff record knows only what was written while paused; the reply window comes from the outbox.
    assert paused.last_user_message_at is None and paused.last_message_text is None
    subject.clock.advance(minutes=1)
    again = await service.pause(PAGE, "u1", PauseReason.BOT_FAILED, "someone")
    assert again == paused, "a second pause changes nothing: the first reason and author stay"
    assert await service.get(cid("u1")) == paused
    assert [c.id for c in await service.paused_conversations()] == [cid("u1")]
    await settle()
    assert subject.kinds(cid("u1")) == ["paused"]
    [event] = subject.events
    assert event.data["conversation"] == paused.to_dict()
    assert (event.data["reason"], event.data["by"]) == ("user_asked", "bot")


async def test_pausing_again_after_a_resume_takes_the_new_reason(subject: Subject) -> None:
    service = subject.service
    await service.pause(PAGE, "u1", PauseReason.USER_ASKED, "bot")
    await service.resume(cid("u1"), "ana", "listo")
    subject.clock.advance(minutes=5)
    paused = await service.pause(PAGE, "u1", PauseReason.AGENT_TOOK_OVER, "ana")
    assert (paused.state, paused.paused_reason, paused.paused_by, paused.paused_at) == (
        ConversationState.PAUSED, PauseReason.AGENT_TOOK_OVER, "ana", T0 + timedelta(minutes=5))
    assert paused.assigned_to is None
    await settle()
    assert subject.kinds(cid("u1")) == ["paused", "resumed", "paused"]


async def test_paused_conversations_lists_paused_ones_only(subject: Subject) -> None:
    service = subject.service
    for user in ("u1", "u2", "u3"):
        await service.pause(PAGE, user, PauseReason.USER_ASKED, "bot")
        subject.clock.advance(minutes=1)
    await service.resume(cid("u2"), "ana", "resuelto")
    assert sorted(c.id for c in await service.paused_conversations()) == [cid("u1"), cid("u3")]
    assert all(c.state is ConversationState.PAUSED for c in await service.paused_conversations())


# --- unknown and malformed conversations ---------------------------------------------------------------------


@pytest.mark.parametrize("conversation_id", [f"{PAGE}:nadie", "sin-dos-puntos", f"{PAGE}:", f":{'u1'}"])
async def test_unknown_or_malformed_conversations_are_not_found(subject: Subject, conversation_id: str) -> None:
    service = subject.service
    with pytest.raises(ConversationNotFound):
        await service.get(conversation_id)
    with pytest.raises(ConversationNotFound):
        await service.assign(conversation_id, "ana")
    with pytest.raises(ConversationNotFound):
        await service.resume(conversation_id, "ana", "nota")
    assert await service.paused_conversations() == []
    await settle()
    assert subject.events == []


async def test_a_malformed_id_has_no_transcript_and_an_unknown_customer_an_empty_one(subject: Subject) -> None:
    with pytest.raises(ConversationNotFound):
        await subject.service.transcript("sin-dos-puntos")
    assert await subject.service.transcript(cid("nadie")) == []


# --- transcript ----------------------------------------------------------------------------------------------


async def test_the_transcript_shows_the_customer_and_the_agents_in_order(subject: Subject) -> None:
    service = subject.service
    subject.customer_wrote(PAGE, "u1", "hola", T0 - timedelta(minutes=2))
    subject.customer_wrote(PAGE, "u1", "¿hay alguien?", T0 - timedelta(minutes=1))
    await service.pause(PAGE, "u1", PauseReason.USER_ASKED, "bot")
    await service.reply_as_agent(cid("u1"), "ana", "Hola, soy Ana.")
    transcript = await service.transcript(cid("u1"))
    assert [(item.author, item.text) for item in transcript] == [
        ("user", "hola"), ("user", "¿hay alguien?"), ("agent:ana", "Hola, soy Ana.")]
    assert [item.at for item in transcript] == [T0 - timedelta(minutes=2), T0 - timedelta(minutes=1), T0]
    assert await service.transcript(cid("otro")) == []


# --- replies -------------------------------------------------------------------------------------------------


async def test_replies_follow_the_window_response_then_human_agent_then_refused(subject: Subject) -> None:
    service = subject.service
    subject.customer_wrote(PAGE, "u1", "hola", T0 - timedelta(hours=1))
    await service.pause(PAGE, "u1", PauseReason.USER_ASKED, "bot")

    first = await service.reply_as_agent(cid("u1"), "ana", "Hola, soy Ana.")
    assert first["text"] == "Hola, soy Ana." and "repeated" not in first
    assert (first["decision"]["messaging_type"], first["decision"]["tag"]) == ("RESPONSE", None)
    assert [m["text"] for m in (item["message"] for item in first["messages"])] == ["Hola, soy Ana."]
    assert first["message"] == first["messages"][0]

    subject.clock.advance(days=2)
    second = await service.reply_as_agent(cid("u1"), "ana", "¿Sigue ahí?")
    assert (second["decision"]["messaging_type"], second["decision"]["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")

    subject.clock.advance(days=6)
    with pytest.raises(ReplyRefused) as refused:
        await service.reply_as_agent(cid("u1"), "ana", "¿Hola?")
    assert refused.value.reason_code == "human_agent_window_expired"
    assert refused.value.reason_es
    assert subject.queued("u1") == [("Hola, soy Ana.", "ana"), ("¿Sigue ahí?", "ana")]
    await settle()
    assert subject.kinds(cid("u1")) == ["paused", "agent_message", "agent_message"]
    assert [e.data["text"] for e in subject.events if e.kind == "agent_message"] == ["Hola, soy Ana.", "¿Sigue ahí?"]
    assert {e.data["author"] for e in subject.events if e.kind == "agent_message"} == {"agent:ana"}


async def test_a_reply_to_a_customer_who_never_wrote_is_refused(subject: Subject) -> None:
    await subject.service.pause(PAGE, "u1", PauseReason.AGENT_TOOK_OVER, "ana")
    with pytest.raises(ReplyRefused) as refused:
        await subject.service.reply_as_agent(cid("u1"), "ana", "Hola")
    assert refused.value.reason_code == "never_wrote"
    assert subject.queued("u1") == []


async def test_a_reply_in_a_conversation_the_bot_holds_pauses_the_bot_first(subject: Subject) -> None:
    service = subject.service
    subject.customer_wrote(PAGE, "u1", "hola", T0 - timedelta(minutes=5))
    answer = await service.reply_as_agent(cid("u1"), "ana", "Le atiendo yo.")
    assert answer["text"] == "Le atiendo yo."
    conversation = await service.get(cid("u1"))
    assert (conversation.state, conversation.paused_reason, conversation.paused_by) == (
        ConversationState.PAUSED, PauseReason.AGENT_TOOK_OVER, "ana")
    await settle()
    assert subject.kinds(cid("u1")) == ["paused", "agent_message"]
    assert subject.queued("u1") == [("Le atiendo yo.", "ana")]


@pytest.mark.parametrize(("page", "text", "reason_code"), [
    (PAGE, "   ", "empty_text"),
    (OTHER_PAGE, "Hola", "unknown_page"),
])
async def test_refused_replies_send_nothing_and_pause_nothing(
    subject: Subject, page: str, text: str, reason_code: str
) -> None:
    subject.customer_wrote(page, "u1", "hola", T0 - timedelta(minutes=5))
    with pytest.raises(ReplyRefused) as refused:
        await subject.service.reply_as_agent(cid("u1", page), "ana", text)
    assert refused.value.reason_code == reason_code and refused.value.reason_es
    assert subject.queued("u1") == []
    assert await subject.service.paused_conversations() == []


async def test_the_text_is_sent_trimmed(subject: Subject) -> None:
    subject.customer_wrote(PAGE, "u1", "hola", T0 - timedelta(minutes=5))
    answer = await subject.service.reply_as_agent(cid("u1"), "ana", "  Hola, soy Ana.\n")
    assert answer["text"] == "Hola, soy Ana."
    assert subject.queued("u1") == [("Hola, soy Ana.", "ana")]


async def test_an_idempotency_key_again_is_the_first_reply_and_other_words_under_it_are_refused(
    subject: Subject,
) -> None:
    service = subject.service
    subject.customer_wrote(PAGE, "u1", "hola", T0 - timedelta(minutes=5))
    first = await service.reply_as_agent(cid("u1"), "ana", "El pedido sale hoy.", idempotency_key="k-1")
    again = await service.reply_as_agent(cid("u1"), "ana", "El pedido sale hoy.", idempotency_key="k-1")
    assert again == {**first, "repeated": True}
    with pytest.raises(ReplyRefused) as refused:
        await service.reply_as_agent(cid("u1"), "ana", "Otro texto", idempotency_key="k-1")
    assert refused.value.reason_code == "idempotency_key_reused"
    other = await service.reply_as_agent(cid("u1"), "ana", "El pedido sale hoy.", idempotency_key="k-2")
    assert "repeated" not in other
    assert subject.queued("u1") == [("El pedido sale hoy.", "ana")] * 2
    await settle()
    assert subject.kinds(cid("u1")).count("agent_message") == 2, "a repeat tells consoles nothing new"
    texts = [(item.author, item.text) for item in await service.transcript(cid("u1"))]
    assert texts.count(("agent:ana", "El pedido sale hoy.")) == 2


# --- the reply window the console shows ----------------------------------------------------------------------


@pytest.mark.parametrize("ago", [None, timedelta(hours=1), timedelta(days=3), timedelta(days=8)])
async def test_the_window_comes_from_the_customer_s_last_own_message(subject: Subject, ago: timedelta | None) -> None:
    if ago is not None:
        subject.customer_wrote(PAGE, "u1", "hola", T0 - ago)
    await subject.service.pause(PAGE, "u1", PauseReason.USER_ASKED, "bot")
    window = await subject.service.window_status(cid("u1"), T0)
    assert window == reply_window(T0 - ago if ago is not None else None, T0, partial(decide, policy=load_policy()))
    later = await subject.service.window_status(cid("u1"))  # now: the service's clock
    assert later == window


async def test_a_message_written_while_paused_opens_the_window_and_is_kept(subject: Subject) -> None:
    service = subject.service
    await service.pause(PAGE, "u1", PauseReason.USER_ASKED, "bot")
    subject.clock.advance(minutes=1)
    at = subject.clock()
    subject.customer_wrote(PAGE, "u1", "¿hay alguien?", at)  # the connector: Rasa and the outbox know it
    await service.record_user_message(PAGE, "u1", "¿hay alguien?", at)  # and tells the app
    conversation = await service.get(cid("u1"))
    assert (conversation.last_user_message_at, conversation.last_message_text, conversation.last_activity_at) == (
        at, "¿hay alguien?", at)
    assert (await service.window_status(cid("u1"))).can_reply
    await settle()
    assert subject.kinds(cid("u1")) == ["paused", "user_message"]
    assert subject.events[-1].data["text"] == "¿hay alguien?"


async def test_a_message_from_a_customer_the_app_never_saw_paused_is_recorded_as_paused_by_rasa(
    subject: Subject,
) -> None:
    at = subject.clock()
    await subject.service.record_user_message(PAGE, "u9", "hola?", at)
    conversation = await subject.service.get(cid("u9"))
    assert (conversation.state, conversation.paused_by, conversation.paused_reason, conversation.paused_at) == (
        ConversationState.PAUSED, "rasa", None, at)
    await settle()
    assert subject.kinds(cid("u9")) == ["paused", "user_message"]


# --- assigning and resuming ----------------------------------------------------------------------------------


async def test_assigning_and_unassigning_touch_the_conversation_and_tell_consoles(subject: Subject) -> None:
    service = subject.service
    await service.pause(PAGE, "u1", PauseReason.USER_ASKED, "bot")
    subject.clock.advance(minutes=2)
    assigned = await service.assign(cid("u1"), "ana")
    assert (assigned.assigned_to, assigned.last_activity_at, assigned.state) == (
        "ana", T0 + timedelta(minutes=2), ConversationState.PAUSED)
    unassigned = await service.assign(cid("u1"), None)
    assert unassigned.assigned_to is None
    await settle()
    assert subject.kinds(cid("u1")) == ["paused", "assigned", "assigned"]
    assert [e.data["agent"] for e in subject.events if e.kind == "assigned"] == ["ana", None]


async def test_a_resume_gives_the_conversation_back_once_with_the_closing_note(subject: Subject) -> None:
    service = subject.service
    await service.pause(PAGE, "u1", PauseReason.USER_ASKED, "bot")
    await service.assign(cid("u1"), "ana")
    subject.clock.advance(minutes=3)
    resumed = await service.resume(cid("u1"), "ana", "  Consulta resuelta  ")
    assert (resumed.state, resumed.paused_reason, resumed.paused_by, resumed.paused_at, resumed.assigned_to) == (
        ConversationState.BOT, None, None, None, None)
    assert resumed.last_activity_at == T0 + timedelta(minutes=3)
    assert await service.get(cid("u1")) == resumed
    assert await service.paused_conversations() == []

    subject.clock.advance(minutes=1)
    twice = await service.resume(cid("u1"), "maria", "otra nota")
    assert twice == resumed, "resuming a conversation the bot has changes nothing"
    await settle()
    assert subject.kinds(cid("u1")) == ["paused", "assigned", "resumed"]
    [event] = [e for e in subject.events if e.kind == "resumed"]
    assert (event.data["by"], event.data["closing_note"]) == ("ana", "Consulta resuelta")


async def test_a_resume_with_a_blank_note_keeps_no_note(subject: Subject) -> None:
    await subject.service.pause(PAGE, "u1", PauseReason.USER_ASKED, "bot")
    await subject.service.resume(cid("u1"), "ana", "   ")
    await settle()
    [event] = [e for e in subject.events if e.kind == "resumed"]
    assert event.data["closing_note"] is None


async def test_a_conversation_never_paused_cannot_be_resumed_or_assigned(subject: Subject) -> None:
    subject.customer_wrote(PAGE, "u1", "hola", T0)
    with pytest.raises(ConversationNotFound):
        await subject.service.resume(cid("u1"), "ana", "nota")
    with pytest.raises(ConversationNotFound):
        await subject.service.assign(cid("u1"), "ana")
    with pytest.raises(ConversationNotFound):
        await subject.service.get(cid("u1"))
    assert [(i.author, i.text) for i in await subject.service.transcript(cid("u1"))] == [("user", "hola")]
