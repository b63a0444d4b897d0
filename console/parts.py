"""What every console part shares: its refusal (`ConsoleError`), its clock and pages, and the app's stores opened on
first use.

The parts (console/routes.py, comments.py, links.py, page_profile.py) import this module; it imports none of them.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

from fastapi import Request

from console.auth import authenticator_of
from core.errors import DomainError
from core.settings import Settings
from handoff.model import HandoffService, PauseReason

T = TypeVar("T")
MAX_ID = 2**62  # a database integer; larger ids are refused by validation, not by the database (SQLite overflows)

_opening = threading.Lock()

# Why a conversation is paused, as the inbox and the conversation view say it.
PAUSE_REASONS_ES = {
    PauseReason.USER_ASKED: "El cliente pidió hablar con una persona",
    PauseReason.BOT_FAILED: "El bot no entendió varias veces seguidas",
    PauseReason.LLM_DECLINED: "El asistente no encontró la respuesta en la matriz",
    PauseReason.AGENT_WROTE_OUTSIDE: "Un agente escribió desde la bandeja de Facebook",
    PauseReason.AGENT_TOOK_OVER: "Un agente pausó el chatbot",
}


class ConsoleError(DomainError):
    """A refusal an agent or editor can act on: `message_es` is shown, `reason_code` is for programs (the app's
    table in bot/errors.py gives its HTTP status)."""

    reason_code = "console_error"

    def __init__(self, reason_code: str, message_es: str, **extra: Any) -> None:
        super().__init__(message_es)
        self.reason_code = reason_code
        self.message_es = message_es
        self.extra = extra

    def details(self) -> dict[str, Any]:
        return dict(self.extra)


def now_of(request: Request) -> datetime:
    """The console's clock (the authenticator's: tests move it)."""
    return authenticator_of(request).clock()


def pages_of(request: Request) -> list[str]:
    """The pages the app answers for (those with a token), in order."""
    settings: Settings = request.app.state.settings
    return sorted(settings.page_tokens)


def handoff_of(request: Request) -> HandoffService:
    """The app's handoff service (the inbox, the conversations), or 503 while it is not there."""
    service = getattr(request.app.state, "handoff", None)
    if service is None:
        raise ConsoleError("handoff_unavailable",
                           "El servicio de atención por personas no está disponible; intente en un momento.")
    return service  # type: ignore[no-any-return]


def state_store(request: Request, attr: str, opener: Callable[[Settings], T]) -> T:
    """The app's store at `app.state.<attr>`; when the app did not open it, `opener(settings)` opens it once (a
    lock keeps two first requests from opening it twice)."""
    state = request.app.state
    store: T | None = getattr(state, attr, None)
    if store is None:
        with _opening:
            store = getattr(state, attr, None)
            if store is None:
                store = opener(state.settings)
                setattr(state, attr, store)
    return store
