"""Custom actions, tested the rasa-sdk way: a Tracker from literals, a CollectingDispatcher."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import ActionExecuted, ConversationPaused, SessionStarted, SlotSet, UserUttered
from rasa_sdk.executor import CollectingDispatcher

from actions import handoff
from actions.handoff import (
    FAILURES_SLOT,
    HANDOFF_TEXTS,
    ActionHandoff,
    HandoffTrigger,
    answered,
    decide_after_no_answer,
    no_answer,
    page_of,
)
from actions.knowledge import (
    NO_ANSWER_TEXTS,
    ActionKnowledgeAnswer,
    KnowledgeAnswer,
    count_previous_runs,
)
from actions.session import AUTOMATION_DISCLOSURE, ActionSessionStart, slots_to_carry_over
from bot.handoff_model import PauseReason
from bot.settings import Settings, load_settings

MESSENGER_QUICK_REPLY_TITLE_LIMIT = 20
MESSENGER_TEXT_LIMIT = 2000

DOMAIN: dict[str, Any] = {
    "intents": [],
    "entities": [],
    "slots": {},
    "responses": {},
    "actions": ["action_knowledge_answer", "action_session_start"],
    "forms": {},
    "session_config": {"session_expiration_time": 60, "carry_over_slots_to_new_session": True},
}


class RecordingNotifier:
    """The app's side of a handoff, recorded instead of called over HTTP."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, PauseReason, str]] = []

    async def pause(self, page_id: str, user_id: str, reason: PauseReason, paused_by: str) -> None:
        self.calls.append((page_id, user_id, reason, paused_by))


# Monday 2026-11-23 14:00 UTC is 09:00 in Guayaquil (UTC-5); Saturday 2026-11-28 20:00 UTC is 15:00 there.
MONDAY_MORNING = datetime(2026, 11, 23, 14, 0, tzinfo=timezone.utc)
SATURDAY_AFTERNOON = datetime(2026, 11, 28, 20, 0, tzinfo=timezone.utc)


def handoff_settings(**env: str) -> Settings:
    return load_settings({"BUSINESS_HOURS": "lun-vie 08:00-18:00; sáb 09:00-13:00", **env})


@pytest.fixture
def notifier(monkeypatch: pytest.MonkeyPatch) -> RecordingNotifier:
    """Every handoff in these tests (the knowledge answer's too) tells this fake, never the network."""
    recording = RecordingNotifier()
    trigger = HandoffTrigger(handoff_settings(), recording, clock=lambda: MONDAY_MORNING)
    monkeypatch.setattr(handoff, "_default", trigger)
    return recording


def user_event(text: str, page_id: str = "100000000000001") -> dict[str, Any]:
    """A user event as Rasa sends it to the action server, with the connector's metadata."""
    return {**UserUttered(text, parse_data=user_message(text)), "metadata": {"page_id": page_id, "kind": "message"}}


def user_message(text: str, intent: str = "nlu_fallback") -> dict[str, Any]:
    return {"text": text, "intent": {"name": intent, "confidence": 0.6}, "entities": []}


def make_tracker(
    events: list[dict[str, Any]] | None = None,
    latest_message: dict[str, Any] | None = None,
    slots: dict[str, Any] | None = None,
    paused: bool = False,
) -> Tracker:
    return Tracker(
        sender_id="1234567890",
        slots=slots or {},
        latest_message=latest_message or {},
        events=events or [],
        paused=paused,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


def assert_sendable_on_messenger(message: dict[str, Any]) -> None:
    assert message["text"] and message["text"].strip()
    assert len(message["text"]) <= MESSENGER_TEXT_LIMIT
    for reply in message.get("quick_replies") or []:
        assert 0 < len(reply["title"]) <= MESSENGER_QUICK_REPLY_TITLE_LIMIT, reply
        assert reply["payload"].startswith("/"), reply


# --- action_knowledge_answer -------------------------------------------------------


async def test_knowledge_answer_without_knowledge_says_so_and_offers_a_person() -> None:
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(latest_message=user_message("cuanto cuesta el plan"))

    events = await ActionKnowledgeAnswer().run(dispatcher, tracker, DOMAIN)

    assert events == [SlotSet("consecutive_failures", 1)], "one answer not found, counted towards a handoff"
    assert len(dispatcher.messages) == 1
    message = dispatcher.messages[0]
    assert_sendable_on_messenger(message)
    assert message["text"] in NO_ANSWER_TEXTS
    assert message["quick_replies"] == [
        {"title": "Hablar con un agente", "payload": "/request_human"},
        {"title": "No, gracias", "payload": "/deny"},
    ]


def test_every_no_answer_text_is_honest_and_offers_a_person() -> None:
    for text in NO_ANSWER_TEXTS:
        assert len(text) <= MESSENGER_TEXT_LIMIT
        assert "todavía" in text.lower(), text
        assert "persona" in text.lower(), text
    assert len(set(NO_ANSWER_TEXTS)) == len(NO_ANSWER_TEXTS)


async def test_knowledge_answer_varies_when_asked_again_in_the_same_session() -> None:
    first_turn = [
        SessionStarted(),
        ActionExecuted("action_listen"),
        UserUttered("a que hora abren", parse_data=user_message("a que hora abren")),
    ]
    second_turn = [
        *first_turn,
        ActionExecuted("action_knowledge_answer"),
        ActionExecuted("action_listen"),
        UserUttered("tienen envios", parse_data=user_message("tienen envios")),
    ]
    first, second = CollectingDispatcher(), CollectingDispatcher()

    await ActionKnowledgeAnswer().run(first, make_tracker(first_turn, user_message("a que hora abren")), DOMAIN)
    await ActionKnowledgeAnswer().run(second, make_tracker(second_turn, user_message("tienen envios")), DOMAIN)

    assert first.messages[0]["text"] != second.messages[0]["text"]


def test_previous_runs_are_counted_only_in_the_current_session() -> None:
    events = [
        ActionExecuted("action_knowledge_answer"),
        ActionExecuted("action_knowledge_answer"),
        SessionStarted(),
        ActionExecuted("action_listen"),
        ActionExecuted("action_knowledge_answer"),
        ActionExecuted("utter_greet"),
    ]

    assert count_previous_runs(events) == 1
    assert count_previous_runs([]) == 0


async def test_knowledge_answer_sends_what_the_lookup_finds() -> None:
    asked: list[str] = []

    async def lookup(question: str) -> KnowledgeAnswer | None:
        asked.append(question)
        return KnowledgeAnswer(text="Atendemos de lunes a viernes de 9:00 a 18:00.")

    dispatcher = CollectingDispatcher()
    tracker = make_tracker(latest_message=user_message("a que hora abren"))

    events = await ActionKnowledgeAnswer(lookup=lookup).run(dispatcher, tracker, DOMAIN)

    assert events == []
    assert asked == ["a que hora abren"]
    assert [m["text"] for m in dispatcher.messages] == ["Atendemos de lunes a viernes de 9:00 a 18:00."]


@pytest.mark.parametrize("text", ["", "   "])
async def test_knowledge_answer_does_not_look_up_an_empty_message(text: str) -> None:
    async def lookup(question: str) -> KnowledgeAnswer | None:
        raise AssertionError("an empty message must not reach the lookup")

    dispatcher = CollectingDispatcher()

    await ActionKnowledgeAnswer(lookup=lookup).run(dispatcher, make_tracker(latest_message=user_message(text)), DOMAIN)

    assert dispatcher.messages[0]["text"] in NO_ANSWER_TEXTS


def test_knowledge_answer_is_registered_under_its_domain_name() -> None:
    assert ActionKnowledgeAnswer().name() == "action_knowledge_answer"


# --- action_session_start ----------------------------------------------------------


async def test_session_start_discloses_the_assistant_and_then_listens() -> None:
    dispatcher = CollectingDispatcher()

    events = await ActionSessionStart().run(dispatcher, make_tracker(), DOMAIN)

    assert events[0] == SessionStarted()
    assert events[-1] == ActionExecuted("action_listen")
    assert [m["text"] for m in dispatcher.messages] == [AUTOMATION_DISCLOSURE]
    assert_sendable_on_messenger(dispatcher.messages[0])
    assert "automático" in AUTOMATION_DISCLOSURE
    assert "«agente»" in AUTOMATION_DISCLOSURE


async def test_session_start_carries_over_the_last_value_of_each_slot_in_the_order_set() -> None:
    previous_session = [
        SessionStarted(),
        ActionExecuted("action_listen"),
        SlotSet("customer_name", "Ana"),
        SlotSet("city", "Quito"),
        SlotSet("customer_name", "Ana María"),
    ]
    dispatcher = CollectingDispatcher()

    events = await ActionSessionStart().run(dispatcher, make_tracker(previous_session), DOMAIN)

    assert events == [
        SessionStarted(),
        SlotSet("city", "Quito"),
        SlotSet("customer_name", "Ana María"),
        ActionExecuted("action_listen"),
    ]


async def test_session_start_carries_nothing_over_when_the_domain_says_not_to() -> None:
    domain = {**DOMAIN, "session_config": {"carry_over_slots_to_new_session": False}}
    tracker = make_tracker([SlotSet("city", "Quito")])

    events = await ActionSessionStart().run(CollectingDispatcher(), tracker, domain)

    assert events == [SessionStarted(), ActionExecuted("action_listen")]


def test_slots_from_older_sessions_restarts_and_resets_are_not_carried_over() -> None:
    assert slots_to_carry_over([SlotSet("a", 1), SessionStarted(), SlotSet("b", 2)]) == [SlotSet("b", 2)]
    assert slots_to_carry_over([SlotSet("a", 1), {"event": "restart", "timestamp": None}]) == []
    assert slots_to_carry_over([SlotSet("a", 1), {"event": "reset_slots", "timestamp": None}]) == []


async def test_session_start_ignores_slots_from_a_rewound_turn() -> None:
    events = [
        ActionExecuted("action_listen"),
        UserUttered("hola"),
        SlotSet("city", "Cuenca"),
        {"event": "rewind", "timestamp": None},
    ]

    result = await ActionSessionStart().run(CollectingDispatcher(), make_tracker(events), DOMAIN)

    assert SlotSet("city", "Cuenca") not in result


def test_session_start_overrides_rasas_default_action() -> None:
    assert ActionSessionStart().name() == "action_session_start"


# --- action_handoff ----------------------------------------------------------------


async def test_handoff_says_a_person_will_answer_pauses_and_tells_the_app(notifier: RecordingNotifier) -> None:
    dispatcher = CollectingDispatcher()
    tracker = make_tracker([user_event("quiero hablar con un agente", page_id="222")])

    events = await ActionHandoff().run(dispatcher, tracker, DOMAIN)

    assert events == [ConversationPaused(), ActionExecuted("action_listen")]
    assert [m["text"] for m in dispatcher.messages] == [HANDOFF_TEXTS[PauseReason.USER_ASKED]]
    assert notifier.calls == [("222", "1234567890", PauseReason.USER_ASKED, "bot")]


async def test_outside_business_hours_the_user_also_gets_the_hours() -> None:
    recording = RecordingNotifier()
    trigger = HandoffTrigger(handoff_settings(), recording, clock=lambda: SATURDAY_AFTERNOON)
    dispatcher = CollectingDispatcher()

    events = await ActionHandoff(trigger).run(dispatcher, make_tracker([user_event("agente")]), DOMAIN)

    assert ConversationPaused() in events
    texts = [m["text"] for m in dispatcher.messages]
    assert texts[0] == HANDOFF_TEXTS[PauseReason.USER_ASKED]
    assert texts[1].startswith("Fuera de Horario")
    assert "lunes a viernes de 08:00 a 18:00; sábado de 09:00 a 13:00" in texts[1]
    for message in dispatcher.messages:
        assert_sendable_on_messenger(message)


async def test_the_away_message_is_configurable() -> None:
    settings = handoff_settings(AWAY_MESSAGE="Fuera de Horario. Atendemos {horario}.")
    trigger = HandoffTrigger(settings, RecordingNotifier(), clock=lambda: SATURDAY_AFTERNOON)
    dispatcher = CollectingDispatcher()

    await ActionHandoff(trigger).run(dispatcher, make_tracker([user_event("agente")]), DOMAIN)

    assert dispatcher.messages[1]["text"] == (
        "Fuera de Horario. Atendemos lunes a viernes de 08:00 a 18:00; sábado de 09:00 a 13:00."
    )


async def test_without_business_hours_there_is_never_an_away_message() -> None:
    trigger = HandoffTrigger(load_settings({}), RecordingNotifier(), clock=lambda: SATURDAY_AFTERNOON)
    dispatcher = CollectingDispatcher()

    await ActionHandoff(trigger).run(dispatcher, make_tracker([user_event("agente")]), DOMAIN)

    assert len(dispatcher.messages) == 1


async def test_a_handoff_starts_the_count_of_misses_again(notifier: RecordingNotifier) -> None:
    tracker = make_tracker([user_event("agente")], slots={FAILURES_SLOT: 1})

    events = await ActionHandoff().run(CollectingDispatcher(), tracker, DOMAIN)

    assert events == [SlotSet(FAILURES_SLOT, 0), ConversationPaused(), ActionExecuted("action_listen")]


def test_every_handoff_text_fits_messenger_and_promises_a_person_not_an_instant_answer() -> None:
    for text in HANDOFF_TEXTS.values():
        assert_sendable_on_messenger({"text": text})
        assert "te comunico con una persona del equipo" in text.lower()
        assert "apenas pueda" in text
    assert set(HANDOFF_TEXTS) == {PauseReason.USER_ASKED, PauseReason.BOT_FAILED, PauseReason.LLM_DECLINED}


def test_the_page_comes_from_the_latest_user_message_or_the_only_page() -> None:
    settings = load_settings({})
    tracker = make_tracker([user_event("hola", page_id="111"), user_event("agente", page_id="222")])
    assert page_of(tracker, settings) == "222"
    assert page_of(make_tracker(), settings) == "100000000000001"
    two_pages = load_settings({"MESSENGER_PAGES": "111:tokenA,222:tokenB"})
    assert page_of(make_tracker(), two_pages) is None


def test_handoff_is_registered_under_its_domain_name() -> None:
    assert ActionHandoff().name() == "action_handoff"


# --- answers not found in a row ----------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "limit", "declined", "expected"),
    [
        (0, 2, False, (1, False, None)),
        (1, 2, False, (0, True, PauseReason.BOT_FAILED)),
        (0, 1, False, (0, True, PauseReason.BOT_FAILED)),
        (2, 3, False, (0, True, PauseReason.BOT_FAILED)),
        (5, 2, False, (0, True, PauseReason.BOT_FAILED)),
        (0, 2, True, (0, True, PauseReason.LLM_DECLINED)),
    ],
)
def test_when_misses_hand_off(
    previous: int, limit: int, declined: bool, expected: tuple[int, bool, PauseReason | None]
) -> None:
    decision = decide_after_no_answer(previous, limit, declined)
    assert (decision.failures, decision.hand_off, decision.reason) == expected


def test_no_answer_reads_the_count_from_the_slot() -> None:
    assert no_answer(make_tracker(slots={FAILURES_SLOT: None}), max_failures=2).events == [SlotSet(FAILURES_SLOT, 1)]
    assert no_answer(make_tracker(slots={FAILURES_SLOT: 1.0}), max_failures=2).hand_off
    assert no_answer(make_tracker(), llm_declined=True, max_failures=5).reason is PauseReason.LLM_DECLINED
    assert answered(make_tracker(slots={FAILURES_SLOT: 1})) == [SlotSet(FAILURES_SLOT, 0)]
    assert answered(make_tracker(slots={FAILURES_SLOT: 0})) == []


async def test_the_second_miss_in_a_row_hands_off(notifier: RecordingNotifier) -> None:
    dispatcher = CollectingDispatcher()
    tracker = make_tracker(
        [user_event("tienen envios")], latest_message=user_message("tienen envios"), slots={FAILURES_SLOT: 1}
    )

    events = await ActionKnowledgeAnswer().run(dispatcher, tracker, DOMAIN)

    assert events == [SlotSet(FAILURES_SLOT, 0), ConversationPaused(), ActionExecuted("action_listen")]
    assert [m["text"] for m in dispatcher.messages] == [HANDOFF_TEXTS[PauseReason.BOT_FAILED]]
    assert notifier.calls == [("100000000000001", "1234567890", PauseReason.BOT_FAILED, "bot")]


async def test_an_answer_after_a_miss_starts_the_count_again(notifier: RecordingNotifier) -> None:
    async def lookup(question: str) -> KnowledgeAnswer | None:
        return KnowledgeAnswer(text="Sí, hacemos envíos a todo el país.")

    tracker = make_tracker(latest_message=user_message("tienen envios"), slots={FAILURES_SLOT: 1})

    events = await ActionKnowledgeAnswer(lookup=lookup).run(CollectingDispatcher(), tracker, DOMAIN)

    assert events == [SlotSet(FAILURES_SLOT, 0)]
    assert notifier.calls == []


# --- a new session while a person holds the conversation ---------------------------


async def test_a_session_started_while_paused_stays_paused_and_says_nothing() -> None:
    dispatcher = CollectingDispatcher()
    previous = [SessionStarted(), ActionExecuted("action_listen"), SlotSet("city", "Quito"), ConversationPaused()]

    events = await ActionSessionStart().run(dispatcher, make_tracker(previous, paused=True), DOMAIN)

    assert dispatcher.messages == [], "no disclosure in the middle of a person's conversation"
    assert events == [SessionStarted(), SlotSet("city", "Quito"), ConversationPaused(), ActionExecuted("action_listen")]
