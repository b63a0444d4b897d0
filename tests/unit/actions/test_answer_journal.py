"""The knowledge answer journals every outcome (answers.service.Answers), the rasa-sdk way: a Tracker from literals,
a CollectingDispatcher, the journal in memory or a real SQLite journal in memory. A journal that fails never costs
the customer the answer."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from rasa_sdk.events import ConversationPaused, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import handoff
from actions.handoff import FAILURES_SLOT, HandoffTrigger
from actions.knowledge import ActionKnowledgeAnswer, Fallback, entry_payload
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


def action(result: Any, journal: Any, fallback: Fallback = NO_KEY, settings: Settings | None = None,
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
        assert (counts["did_you_mean"], counts["selected"], counts["no_answer"], counts["matrix"]) == (1, 1, 1, 0)
        assert answers.entry_use(None, AT - timedelta(hours=1), later) == {"envios": 1}
    finally:
        answers.close()
