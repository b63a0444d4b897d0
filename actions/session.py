"""Starts each conversation session and tells the user, once, that a bot is answering.

Rasa runs `action_session_start` on the first message of a conversation and again
after `session_expiration_time` of silence. This replaces Rasa's default: same events
(SessionStarted, the carried-over slots, action_listen) plus the disclosure message.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, ConversationPaused, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

AUTOMATION_DISCLOSURE = (
    "🤖 Hola, soy el asistente virtual automático de esta página. "
    "Si en algún momento prefieres hablar con una persona, escribe «agente»."
)


def carries_over_slots(domain: DomainDict | dict[str, Any]) -> bool:
    """Rasa's own default when the domain has no session_config: carry slots over."""
    session_config = domain.get("session_config") or {}
    return bool(session_config.get("carry_over_slots_to_new_session", True))


def slots_to_carry_over(events: list[dict[str, Any]]) -> list[EventType]:
    """The slot values set in the session that is ending, one SlotSet per slot.

    Rasa's default replays every SlotSet applied since the last session start or restart;
    keeping only the last value of each slot gives the same state with fewer events, and
    a slot reset (AllSlotsReset) is honoured. Rewinds and undos are already resolved by
    the caller (`Tracker.applied_events`).
    """
    last_values: dict[str, Any] = {}
    for event in events:
        kind = event.get("event")
        if kind in ("session_started", "restart", "reset_slots"):
            last_values = {}
        elif kind == "slot" and event.get("name"):
            last_values.pop(event["name"], None)
            last_values[event["name"]] = event.get("value")
    return [SlotSet(key=name, value=value) for name, value in last_values.items()]


class ActionSessionStart(Action):
    def name(self) -> str:
        return "action_session_start"

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[EventType]:
        events: list[EventType] = [SessionStarted()]
        if carries_over_slots(domain):
            events.extend(slots_to_carry_over(tracker.applied_events()))
        if tracker.is_paused():
            # A person holds this conversation: a new session must not unpause it (SessionStarted does) nor
            # greet the user in the middle of it.
            events.append(ConversationPaused())
        else:
            dispatcher.utter_message(text=AUTOMATION_DISCLOSURE)
        events.append(ActionExecuted("action_listen"))
        return events
