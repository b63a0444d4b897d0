"""Hands the conversation to a person: the bot says so, Rasa pauses it, the app is told.

`action_handoff` runs when the user asks for a person (intent request_human, the quick reply "Hablar con un
agente", a "sí" to the bot's offer). The knowledge answer hands off too, through `no_answer()` and
`handoff_events()`: after `HANDOFF_MAX_FAILURES` answers not found in a row, or at once when the GPT fallback
declines.

The pause itself is Rasa's `ConversationPaused`, returned by the action, so it holds even when the app cannot
be reached; the app (`POST /internal/handoff/pause`) records who paused, why and when, and shows the
conversation to agents. Outside business hours the user also gets the "Fuera de Horario" message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Protocol

import httpx
from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, ConversationPaused, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from core.business_hours import BusinessHours, is_within_business_hours
from core.settings import Settings, load_settings
from handoff.model import PauseReason

logger = logging.getLogger(__name__)

ACTION_NAME = "action_handoff"
FAILURES_SLOT = "consecutive_failures"
PAUSED_BY = "bot"
NOTIFY_TIMEOUT_SECONDS = 3.0

# What the user reads, by why the bot steps back. Each one says a person will answer here, never "right now".
HANDOFF_TEXTS: dict[PauseReason, str] = {
    PauseReason.USER_ASKED: (
        "Listo 👍 Te comunico con una persona del equipo. Te va a escribir por este chat apenas pueda; "
        "mientras tanto, cuéntanos tu consulta con detalle."
    ),
    PauseReason.BOT_FAILED: (
        "Veo que no estoy logrando ayudarte, así que te comunico con una persona del equipo. "
        "Te va a escribir por este chat apenas pueda."
    ),
    PauseReason.LLM_DECLINED: (
        "Esa consulta es mejor que la vea alguien del equipo, así que te comunico con una persona del equipo. "
        "Te va a escribir por este chat apenas pueda."
    ),
}


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


# --- counting answers not found ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoAnswerDecision:
    """After an answer was not found: hand off now (with why), or count one more failure."""

    failures: int  # answers not found in a row, this one included (0 again after a handoff)
    hand_off: bool
    reason: PauseReason | None = None

    @property
    def events(self) -> list[EventType]:
        """The events to return when not handing off (the caller sends its own "no answer" text)."""
        return [SlotSet(FAILURES_SLOT, self.failures)]


def decide_after_no_answer(previous_failures: int, max_failures: int, llm_declined: bool = False) -> NoAnswerDecision:
    """Pure: the GPT fallback declining hands off at once; else the `max_failures`-th miss in a row does."""
    if llm_declined:
        return NoAnswerDecision(0, True, PauseReason.LLM_DECLINED)
    failures = previous_failures + 1
    if failures >= max_failures:
        return NoAnswerDecision(0, True, PauseReason.BOT_FAILED)
    return NoAnswerDecision(failures, False)


def failures_so_far(tracker: Tracker) -> int:
    value = tracker.get_slot(FAILURES_SLOT)
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


def answered(tracker: Tracker) -> list[EventType]:
    """Events for an answer found: the count of misses in a row starts again."""
    return [SlotSet(FAILURES_SLOT, 0)] if failures_so_far(tracker) else []


def no_answer(tracker: Tracker, *, llm_declined: bool = False, max_failures: int | None = None) -> NoAnswerDecision:
    """Whether this miss hands the conversation off (`HANDOFF_MAX_FAILURES`, default 2)."""
    limit = max_failures if max_failures is not None else default_trigger().settings.handoff_max_failures
    return decide_after_no_answer(failures_so_far(tracker), limit, llm_declined)


# --- handing off ---------------------------------------------------------------------------------------------


def away_text(template: str, hours: BusinessHours) -> str:
    """`AWAY_MESSAGE` with `{horario}` replaced by the business hours in words."""
    return template.replace("{horario}", hours.describe())


def page_of(tracker: Tracker, settings: Settings) -> str | None:
    """The page the user wrote to: the connector puts it in every user message's metadata."""
    for event in reversed(tracker.events or []):
        metadata = event.get("metadata") if event.get("event") == "user" else None
        if isinstance(metadata, dict) and metadata.get("page_id"):
            return str(metadata["page_id"])
    pages = list(settings.page_tokens)
    return pages[0] if len(pages) == 1 else None


class PauseNotifier(Protocol):
    async def pause(self, page_id: str, user_id: str, reason: PauseReason, paused_by: str) -> None: ...


class AppPauseNotifier:
    """`POST {BOT_APP_URL}/internal/handoff/pause`; a failure is logged, the pause in Rasa happens anyway."""

    def __init__(self, app_url: str, service_token: str, timeout_seconds: float = NOTIFY_TIMEOUT_SECONDS) -> None:
        self.url = app_url + "/internal/handoff/pause"
        self._token = service_token
        self.timeout_seconds = timeout_seconds

    async def pause(self, page_id: str, user_id: str, reason: PauseReason, paused_by: str) -> None:
        body = {"page_id": page_id, "user_id": user_id, "reason": reason.value, "paused_by": paused_by,
                "rasa_already_paused": True}
        try:
            async with httpx.AsyncClient(timeout=self.timeout_seconds) as client:
                response = await client.post(self.url, json=body, headers={"Authorization": f"Bearer {self._token}"})
            if response.status_code != 200:
                logger.error("the app refused a handoff notice",
                             extra={"status": response.status_code, "user_id": user_id, "body": response.text[:300]})
        except httpx.HTTPError as exc:
            logger.error("the app did not receive a handoff notice; Rasa is paused anyway",
                         extra={"error": type(exc).__name__, "user_id": user_id, "url": self.url})


class HandoffTrigger:
    """Settings, the app notifier and the clock, made once per action server process."""

    def __init__(
        self,
        settings: Settings | None = None,
        notifier: PauseNotifier | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.settings = settings or load_settings()
        self.notifier = notifier or AppPauseNotifier(self.settings.app_url, self.settings.service_token)
        self.clock = clock

    async def events(self, dispatcher: CollectingDispatcher, tracker: Tracker, reason: PauseReason) -> list[EventType]:
        dispatcher.utter_message(text=HANDOFF_TEXTS.get(reason, HANDOFF_TEXTS[PauseReason.USER_ASKED]))
        hours = self.settings.business_schedule()
        if not is_within_business_hours(self.clock(), hours):
            dispatcher.utter_message(text=away_text(self.settings.away_message, hours))
        page_id = page_of(tracker, self.settings)
        if page_id is None:
            logger.error("handoff without a known page: the app was not told", extra={"user_id": tracker.sender_id})
        else:
            await self.notifier.pause(page_id, tracker.sender_id, reason, PAUSED_BY)
        events: list[EventType] = [SlotSet(FAILURES_SLOT, 0)] if failures_so_far(tracker) else []
        # Paused, then listening: after the resume the next message starts a normal turn.
        return [*events, ConversationPaused(), ActionExecuted("action_listen")]


_default: HandoffTrigger | None = None


def default_trigger() -> HandoffTrigger:
    global _default
    if _default is None:
        _default = HandoffTrigger()
    return _default


async def handoff_events(
    dispatcher: CollectingDispatcher, tracker: Tracker, reason: PauseReason, trigger: HandoffTrigger | None = None
) -> list[EventType]:
    """Tell the user a person will answer (and the business hours when outside them), tell the app, and return
    the events that pause the conversation in Rasa. Return them from the action's `run`."""
    return await (trigger or default_trigger()).events(dispatcher, tracker, reason)


class ActionHandoff(Action):
    def __init__(self, trigger: HandoffTrigger | None = None) -> None:
        self._trigger = trigger

    def name(self) -> str:
        return ACTION_NAME

    async def run(
        self,
        dispatcher: CollectingDispatcher,
        tracker: Tracker,
        domain: DomainDict,
    ) -> list[dict[str, Any]]:
        return await handoff_events(dispatcher, tracker, PauseReason.USER_ASKED, self._trigger)
