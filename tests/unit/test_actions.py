"""Custom actions, tested the rasa-sdk way: a Tracker from literals, a CollectingDispatcher."""

from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk import Tracker
from rasa_sdk.events import ActionExecuted, SessionStarted, SlotSet, UserUttered
from rasa_sdk.executor import CollectingDispatcher

from actions.knowledge import (
    NO_ANSWER_TEXTS,
    ActionKnowledgeAnswer,
    KnowledgeAnswer,
    count_previous_runs,
)
from actions.session import AUTOMATION_DISCLOSURE, ActionSessionStart, slots_to_carry_over

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


def user_message(text: str, intent: str = "nlu_fallback") -> dict[str, Any]:
    return {"text": text, "intent": {"name": intent, "confidence": 0.6}, "entities": []}


def make_tracker(
    events: list[dict[str, Any]] | None = None,
    latest_message: dict[str, Any] | None = None,
    slots: dict[str, Any] | None = None,
) -> Tracker:
    return Tracker(
        sender_id="1234567890",
        slots=slots or {},
        latest_message=latest_message or {},
        events=events or [],
        paused=False,
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

    assert events == []
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
