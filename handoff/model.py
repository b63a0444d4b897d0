"""Human handoff: the value objects and the service contract shared by the console and the triggers.

A conversation is one user on one page: `conversation_id = f"{page_id}:{user_id}"`; Rasa's
sender id is the user id (PSIDs are page-scoped).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, NamedTuple, Protocol

from core.errors import DomainError


class HandoffError(DomainError):
    """Root of the handoff errors."""

    reason_code = "handoff_error"
    message_es = "El servicio de atención falló; intente de nuevo."


class ConversationNotFound(HandoffError, LookupError):
    reason_code = "conversation_not_found"
    message_es = "No existe esa conversación."


class ReplyRefused(HandoffError):
    """An agent's reply the outbox policy (or the input) refuses; the console shows `reason_es`."""

    def __init__(self, reason_code: str, reason_es: str, reason_en: str = "") -> None:
        super().__init__(reason_en or reason_es)
        self.reason_code = reason_code
        self.reason_es = reason_es
        self.reason_en = reason_en or reason_es
        self.message_es = reason_es

    def details(self) -> dict[str, Any]:
        return {"reason_es": self.reason_es}


class RasaUnavailable(HandoffError):
    """Rasa's HTTP API did not answer or refused: the pause or resume did not happen."""

    reason_code = "rasa_unavailable"
    message_es = ("El chatbot (Rasa) no respondió, así que la conversación no cambió. "
                  "Intente de nuevo en un momento.")


class PauseReason(str, Enum):
    USER_ASKED = "user_asked"  # intent request_human or the quick reply "Hablar con un agente"
    BOT_FAILED = "bot_failed"  # N fallbacks in a row (HANDOFF_MAX_FAILURES)
    LLM_DECLINED = "llm_declined"  # the GPT fallback said the matrix has no answer
    AGENT_WROTE_OUTSIDE = "agent_wrote_outside"  # an echo from the Page inbox or another app
    AGENT_TOOK_OVER = "agent_took_over"  # an agent pressed "Pausar el Chatbot" in the console


class ConversationState(str, Enum):
    BOT = "bot"  # the bot answers
    PAUSED = "paused"  # a person answers; Rasa predicts nothing (ConversationPaused)


def conversation_id_of(page_id: str, user_id: str) -> str:
    return f"{page_id}:{user_id}"


def split_conversation_id(conversation_id: str) -> tuple[str, str]:
    page_id, sep, user_id = conversation_id.partition(":")
    if not sep or not page_id or not user_id:
        raise ConversationNotFound(f"not a conversation id: {conversation_id!r}")
    return page_id, user_id


@dataclass(frozen=True)
class Conversation:
    id: str
    page_id: str
    user_id: str
    state: ConversationState
    paused_reason: PauseReason | None = None
    paused_by: str | None = None  # "bot", "connector", or an agent's username
    paused_at: datetime | None = None
    assigned_to: str | None = None
    last_user_message_at: datetime | None = None
    last_message_text: str | None = None
    last_activity_at: datetime | None = None
    contact_name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "page_id": self.page_id,
            "user_id": self.user_id,
            "state": self.state.value,
            "paused_reason": self.paused_reason.value if self.paused_reason else None,
            "paused_by": self.paused_by,
            "paused_at": _iso(self.paused_at),
            "assigned_to": self.assigned_to,
            "last_user_message_at": _iso(self.last_user_message_at),
            "last_message_text": self.last_message_text,
            "last_activity_at": _iso(self.last_activity_at),
            "contact_name": self.contact_name,
        }


@dataclass(frozen=True)
class TranscriptItem:
    at: datetime
    author: str  # "user", "bot", or "agent:<username>"
    text: str
    data: dict[str, Any] | None = None  # quick replies, attachments…

    def to_dict(self) -> dict[str, Any]:
        return {"at": _iso(self.at), "author": self.author, "text": self.text, "data": self.data}


@dataclass(frozen=True)
class ConsoleEvent:
    """Pushed to open console pages (server-sent events)."""

    kind: str  # "paused", "resumed", "user_message", "agent_message", "assigned"; "resync": events were lost
    conversation_id: str
    at: datetime
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "conversation_id": self.conversation_id, "at": _iso(self.at), "data": self.data}


class Close(NamedTuple):
    """A person gave a conversation back to the bot (a resume by an agent, not the idle auto-resume)."""

    conversation_id: str
    page_id: str
    user_id: str
    by: str
    at: datetime


@dataclass(frozen=True)
class HandoffLogEntry:
    """Who paused or resumed a conversation, why and when; a resume carries the closing note."""

    conversation_id: str
    action: str  # "paused", "resumed", "assigned"
    by: str
    at: datetime
    reason: str | None = None
    closing_note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"conversation_id": self.conversation_id, "action": self.action, "by": self.by, "at": _iso(self.at),
                "reason": self.reason, "closing_note": self.closing_note}


@dataclass(frozen=True)
class Episode:
    """One handoff episode, from a pause to its resume (the reports' waiting times): why and by whom it was paused,
    the first reply of a person of the team (the console or the Page inbox), who closed it and to whom it was
    assigned. `reason` None: Rasa paused and the app learnt of it from the connector; `resumed_at` None: still
    open; `closed_by` "system": the idle auto-resume."""

    conversation_id: str
    page_id: str
    user_id: str
    paused_at: datetime
    reason: str | None
    paused_by: str
    first_reply_at: datetime | None = None
    first_reply_by: str | None = None
    resumed_at: datetime | None = None
    closed_by: str | None = None
    assigned_to: str | None = None

    @property
    def wait_for_reply(self) -> timedelta | None:
        """From the pause to the first reply of a person (None: nobody replied)."""
        return self.first_reply_at - self.paused_at if self.first_reply_at is not None else None

    @property
    def wait_for_close(self) -> timedelta | None:
        """From the pause to the resume (None: still open)."""
        return self.resumed_at - self.paused_at if self.resumed_at is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {"conversation_id": self.conversation_id, "page_id": self.page_id, "user_id": self.user_id,
                "paused_at": _iso(self.paused_at), "reason": self.reason, "paused_by": self.paused_by,
                "first_reply_at": _iso(self.first_reply_at), "first_reply_by": self.first_reply_by,
                "resumed_at": _iso(self.resumed_at), "closed_by": self.closed_by, "assigned_to": self.assigned_to}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


class HandoffService(Protocol):
    async def pause(self, page_id: str, user_id: str, reason: PauseReason, paused_by: str) -> Conversation: ...

    async def resume(self, conversation_id: str, by: str, closing_note: str) -> Conversation: ...

    async def record_user_message(self, page_id: str, user_id: str, text: str, at: datetime) -> None: ...

    async def reply_as_agent(
        self,
        conversation_id: str,
        agent: str,
        text: str,
        *,
        idempotency_key: str | None = None,
        quick_replies: Sequence[Mapping[str, Any]] = (),
        attachment: Mapping[str, Any] | None = None,
        shown: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Through the outbox as a HUMAN sender; returns the outbox message or raises with the policy reason.
        The same `idempotency_key` again returns the first message with `"repeated": True` and sends nothing.
        `quick_replies` go on the last message, `attachment` (Messenger's `{"type", "payload"}`) after the text;
        `shown` is what the transcript keeps of them."""
        ...

    async def assign(self, conversation_id: str, agent: str | None) -> Conversation: ...

    async def paused_conversations(self) -> list[Conversation]: ...

    async def get(self, conversation_id: str) -> Conversation: ...

    async def transcript(self, conversation_id: str) -> list[TranscriptItem]:
        """From Rasa's tracker store (Rasa's HTTP API), agent messages included."""
        ...

    def subscribe(self) -> AsyncIterator[ConsoleEvent]: ...
