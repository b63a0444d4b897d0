"""The knowledge answer journals every outcome (answers.service.Answers), the rasa-sdk way: a Tracker from literals,
a CollectingDispatcher, the journal in memory or a real SQLite journal in memory. A journal that fails never costs
the customer the answer."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from rasa_sdk.events import ConversationPaused, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import handoff, knowledge
from actions.handoff import FAILURES_SLOT, HandoffTrigger
from actions.knowledge import ActionKnowledgeAnswer, Fallback, JournalWrites, entry_payload
from answers.model import Handling, person_key
from answers.service import Answers
from answers.store import AnswersStore
from core.settings import Settings
from knowledge_matrix.llm.fake import FakeLLMClient
from knowledge_matrix.llm.prompt import NO_ANSWER
from tests.unit.actions.conftest import MemoryJournal
from tests.unit.actions.test_actions import (
    DOMAIN,
    HOURS,
    MONDAY_MORNING,
    NO_KEY,
    PAYMENTS,
    SHIPPING,
    FakeKnowledge,
    RecordingNotifier,
    found,
    handoff_settings,
    hit,
    make_tracker,
    user_event,
    user_message,
    with_key,
)

PAGE = "100000000000001"
AT = datetime(2026, 11, 23, 14, 0, tzinfo=timezone.utc)


@pytest.fixture
def notifier(monkeypatch: pytest.MonkeyPatch) -> RecordingNotifier:
    recording = RecordingNotifier()
    monkeypatch.setattr(handoff, "_default", HandoffTrigger(handoff_settings(), recording,
                                                             clock=lambda: MONDAY_MORNING))
    return recording


class Drained:
    """The action, run and then its background journal writes waited for (the customer's answer never waits)."""

    def __init__(self, action: ActionKnowledgeAnswer) -> None:
        self.action = action

    async def run(self, dispatcher: CollectingDispatcher, tracker: Any, domain: Any) -> list[dict[str, Any]]:
        events = await self.action.run(dispatcher, tracker, domain)
        await self.action.journal_writes.drain()
        return events


def action(result: Any, journal: Any, fallback: Fallback = NO_KEY, settings: Settings | None = None,
           at: datetime = AT) -> Drained:
    return Drained(undrained(result, journal, fallback, settings, at))


def undrained(result: Any, journal: Any, fallback: Fallback = NO_KEY, settings: Settings | None = None,
              at: datetime = AT) -> ActionKnowledgeAnswer:
    return ActionKnowledgeAnswer(knowledge=FakeKnowledge(result), fallback=fallback, journal=journal,
                                 settings=settings or handoff_settings(), clock=lambda: at)


def asked(text: str, page_id: str = PAGE) -> Any:
    return make_tracker([user_event(text, page_id)], latest_message=user_message(text))


def tapped(entry_id: str) -> Any:
    payload = entry_payload(entry_id)
    latest = {**user_message(payload, intent="ask_knowledge"),
              "entities": [{"entity": "entry_id", "value": entry_id}]}
    return make_tracker([user_event(payload)], latest_message=latest)


async def test_an_answer_from_the_matrix_is_journaled_with_its_entry_score_and_version() -> None:
    journal = MemoryJournal()
    await action(found("answer", hit(HOURS, 0.93)), journal).run(CollectingDispatcher(), asked("a q hora abren?"),
                                                                 DOMAIN)
    assert journal.records == [{
        "page_id": PAGE, "psid": "1234567890", "question": "a q hora abren?", "handling": Handling.MATRIX,
        "at": AT, "entry_id": "horario", "score": 0.93, "candidates": (), "reason": None, "matrix_version": "0007"}]


async def test_did_you_mean_journals_the_candidates_and_a_tap_journals_the_selection() -> None:
    journal = MemoryJournal()
    await action(found("ambiguous", hit(SHIPPING, 0.4), hit(PAYMENTS, 0.3)), journal).run(
        CollectingDispatcher(), asked("y el pago del envio?"), DOMAIN)
    await action(found("no_match"), journal).run(CollectingDispatcher(), tapped("pagos"), DOMAIN)

    [offer, selection] = journal.records
    assert (offer["handling"], offer["candidates"], offer["question"]) == (
        Handling.DID_YOU_MEAN, ("envios", "pagos"), "y el pago del envio?")
    assert (selection["handling"], selection["entry_id"], selection["question"]) == (Handling.SELECTED, "pagos", ""), \
        "the payload is not what the person wrote"


async def test_a_gpt_answer_is_journaled_as_gpt() -> None:
    journal = MemoryJournal()
    client = FakeLLMClient(["Sí, enviamos a todo Ecuador por Servientrega y llega en 2 a 3 días hábiles."])
    await action(found("no_match", hit(SHIPPING, 0.1)), journal, with_key(client)).run(
        CollectingDispatcher(), asked("envian a guayaquil?"), DOMAIN)
    assert [(r["handling"], r["question"]) for r in journal.records] == [(Handling.GPT, "envian a guayaquil?")]


async def test_no_match_without_a_key_is_a_miss_with_its_reason() -> None:
    journal = MemoryJournal()
    events = await action(found("no_match", hit(SHIPPING, 0.1)), journal).run(
        CollectingDispatcher(), asked("tienen parqueadero?"), DOMAIN)
    assert events == [SlotSet(FAILURES_SLOT, 1)]
    assert [(r["handling"], r["reason"]) for r in journal.records] == [(Handling.NO_ANSWER, "no_match")]


async def test_a_declined_fallback_hands_off_and_is_journaled_as_handoff(notifier: RecordingNotifier) -> None:
    journal = MemoryJournal()
    events = await action(found("no_match", hit(SHIPPING, 0.1)), journal, with_key(FakeLLMClient([NO_ANSWER]))).run(
        CollectingDispatcher(), asked("tienen sucursal en Loja?"), DOMAIN)
    assert ConversationPaused() in events
    assert [(r["handling"], r["reason"], r["question"]) for r in journal.records] == [
        (Handling.HANDOFF, "llm_declined", "tienen sucursal en Loja?")]


async def test_the_page_comes_from_the_message_metadata() -> None:
    journal = MemoryJournal()
    await action(found("no_match"), journal).run(CollectingDispatcher(), asked("hola?", page_id="200000000000002"),
                                                 DOMAIN)
    assert journal.records[0]["page_id"] == "200000000000002"


class BrokenJournal:
    def record_question(self, **_: Any) -> int:
        raise RuntimeError("disk full")


async def test_a_journal_that_fails_never_costs_the_answer(caplog: pytest.LogCaptureFixture) -> None:
    dispatcher = CollectingDispatcher()
    tracker = make_tracker([user_event("horario?")], latest_message=user_message("horario?"),
                           slots={FAILURES_SLOT: 1})
    events = await action(found("answer", hit(HOURS, 0.93)), BrokenJournal()).run(dispatcher, tracker, DOMAIN)
    assert [m["text"] for m in dispatcher.messages] == [f"{HOURS.answer}\n\n{HOURS.link}"]
    assert events == [SlotSet(FAILURES_SLOT, 0)]
    assert "could not be journaled" in caplog.text


async def test_the_real_journal_keeps_a_hash_not_the_psid_and_pairs_the_tap_with_the_offer() -> None:
    answers = Answers(AnswersStore(":memory:"), secret="s3cret")
    try:
        await action(found("ambiguous", hit(SHIPPING, 0.4), hit(PAYMENTS, 0.3)), answers).run(
            CollectingDispatcher(), asked("el envio se paga aparte?"), DOMAIN)
        await action(found("no_match"), answers, at=AT + timedelta(minutes=2)).run(
            CollectingDispatcher(), tapped("envios"), DOMAIN)
        await action(found("no_match"), answers, at=AT + timedelta(minutes=3)).run(
            CollectingDispatcher(), asked("tienen parqueadero?"), DOMAIN)
        later = AT + timedelta(hours=1)
        misses = answers.unanswered(None, AT - timedelta(hours=1), later)
        assert [(q.question, q.handling) for q in misses] == [("tienen parqueadero?", Handling.NO_ANSWER)]
        assert misses[0].person_key == person_key("s3cret", PAGE, "1234567890") != "1234567890"
        counts = answers.counts_by_handling(PAGE, AT - timedelta(hours=1), later)
        # The tapped offer counts once, as the tap (a followed «¿Quisiste decir…?» is taken back from its hour).
        assert (counts["did_you_mean"], counts["selected"], counts["no_answer"], counts["matrix"]) == (0, 1, 1, 0)
        assert answers.entry_use(None, AT - timedelta(hours=1), later) == {"envios": 1}
    finally:
        answers.close()


# --- the journal never holds the answer up (review 14, finding 3) ----------------------------------------------


class BlockedJournal(MemoryJournal):
    """A journal stuck (a locked SQLite file, a PostgreSQL that does not answer) until `release`."""

    def __init__(self) -> None:
        super().__init__()
        self.released = threading.Event()

    def record_question(self, **kwargs: Any) -> int:
        assert self.released.wait(10), "the test never released the journal"
        return super().record_question(**kwargs)


async def test_the_answer_is_sent_while_the_journal_is_still_writing() -> None:
    journal = BlockedJournal()
    act = undrained(found("answer", hit(HOURS, 0.93)), journal)
    dispatcher = CollectingDispatcher()
    try:
        events = await asyncio.wait_for(act.run(dispatcher, asked("a q hora abren?"), DOMAIN), 5)
        assert [m["text"] for m in dispatcher.messages] == [f"{HOURS.answer}\n\n{HOURS.link}"]
        assert events == [], "nothing to reset: the answer is complete without the journal"
        assert journal.records == [] and act.journal_writes.pending == 1, "the write goes on in the background"
    finally:
        journal.released.set()
    await act.journal_writes.drain()
    assert [(r["handling"], r["question"]) for r in journal.records] == [(Handling.MATRIX, "a q hora abren?")]
    assert act.journal_writes.pending == 0


async def test_opening_the_journal_happens_in_the_background(monkeypatch: pytest.MonkeyPatch) -> None:
    """The default journal connects (PostgreSQL: up to its connect timeout) in the journal's thread."""
    opened = threading.Event()
    memory = MemoryJournal()

    def slow_open() -> MemoryJournal:
        assert opened.wait(10)
        return memory

    monkeypatch.setattr(knowledge, "default_journal", slow_open)
    act = undrained(found("no_match"), None)
    dispatcher = CollectingDispatcher()
    try:
        await asyncio.wait_for(act.run(dispatcher, asked("tienen parqueadero?"), DOMAIN), 5)
        assert dispatcher.messages and memory.records == []
    finally:
        opened.set()
    await act.journal_writes.drain()
    assert [r["handling"] for r in memory.records] == [Handling.NO_ANSWER]


async def test_opening_the_journal_does_not_hold_the_lock_every_answer_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(knowledge, "_default_fallback", NO_KEY)
    with knowledge._journal_lock:  # as while default_journal() waits for PostgreSQL
        assert await asyncio.wait_for(asyncio.to_thread(knowledge.default_fallback), 5) is NO_KEY


async def test_writes_beyond_the_bound_are_dropped_counted_and_warned(caplog: pytest.LogCaptureFixture) -> None:
    journal = BlockedJournal()
    act = undrained(found("answer", hit(HOURS, 0.93)), journal)
    act.journal_writes = JournalWrites(max_pending=2)
    sent = []
    try:
        for question in ("horario?", "a q hora abren?", "abren hoy?"):
            dispatcher = CollectingDispatcher()
            await asyncio.wait_for(act.run(dispatcher, asked(question), DOMAIN), 5)
            sent.append(len(dispatcher.messages))
        assert sent == [1, 1, 1], "every customer got the answer"
        assert (act.journal_writes.pending, act.journal_writes.dropped) == (2, 1)
        assert "the answer journal is behind" in caplog.text
    finally:
        journal.released.set()
    await act.journal_writes.drain()
    assert [r["question"] for r in journal.records] == ["horario?", "a q hora abren?"]
