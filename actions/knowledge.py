"""Answers what small talk does not cover: the questions meant for the knowledge matrix.

The retrieval itself arrives later. It plugs in as a `KnowledgeLookup`: given the
user's message, return a `KnowledgeAnswer` or `None`. Until then the lookup finds
nothing and the action says so honestly, without inventing facts, and offers a person.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions.handoff import answered, handoff_events, no_answer

ACTION_NAME = "action_knowledge_answer"

OFFER_PERSON_QUICK_REPLIES: tuple[dict[str, str], ...] = (
    {"title": "Hablar con un agente", "payload": "/request_human"},
    {"title": "No, gracias", "payload": "/deny"},
)

# Varied by how many times the action already answered in this session, so a user who
# asks two things in a row does not read the same sentence twice.
NO_ANSWER_TEXTS: tuple[str, ...] = (
    "Ese tema todavía no está en mi información, así que prefiero no inventarte una respuesta. "
    "¿Quieres que te comunique con una persona del equipo?",
    "Sobre eso todavía no tengo información confiable. Una persona del equipo sí te puede ayudar, ¿te comunico?",
    "Todavía no sé responder eso y no quiero darte un dato equivocado. ¿Prefieres que te atienda una persona?",
)


@dataclass(frozen=True)
class KnowledgeAnswer:
    """An answer found for the user's message, ready to send."""

    text: str


KnowledgeLookup = Callable[[str], Awaitable[KnowledgeAnswer | None]]


async def lookup_nothing_yet(question: str) -> KnowledgeAnswer | None:
    """The knowledge matrix is not connected yet, so there is never an answer."""
    return None


def no_answer_text(previous_runs: int) -> str:
    """The honest reply when nothing was found, varied by `previous_runs` in this session."""
    return NO_ANSWER_TEXTS[previous_runs % len(NO_ANSWER_TEXTS)]


def count_previous_runs(events: list[dict[str, Any]]) -> int:
    """How many times this action already ran in the current session."""
    runs = 0
    for event in events:
        if event.get("event") in ("session_started", "restart"):
            runs = 0
        elif event.get("event") == "action" and event.get("name") == ACTION_NAME:
            runs += 1
    return runs


class ActionKnowledgeAnswer(Action):
    def __init__(self, lookup: KnowledgeLookup = lookup_nothing_yet) -> None:
        self._lookup = lookup

    def name(self) -> str:
        return ACTION_NAME

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[dict[str, Any]]:
        question = tracker.latest_message.get("text") or ""
        answer = await self._lookup(question) if question.strip() else None
        if answer is not None:
            dispatcher.utter_message(text=answer.text)
            return answered(tracker)
        # HANDOFF_MAX_FAILURES misses in a row hand off (the GPT fallback declining: llm_declined=True).
        decision = no_answer(tracker)
        if decision.hand_off:
            assert decision.reason is not None
            return await handoff_events(dispatcher, tracker, decision.reason)
        dispatcher.utter_message(
            text=no_answer_text(count_previous_runs(tracker.events)),
            quick_replies=[dict(reply) for reply in OFFER_PERSON_QUICK_REPLIES],
        )
        return decision.events
