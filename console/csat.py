"""Customer satisfaction in the console: the rating a conversation got (its view), and each agent's average in a
small «Satisfacción» block for admins on the conversations page (the full reports come with the reports pages).

Reads the app's `Csat` (app.state.csat, csat/service.py); a console without it (tests that build only the console)
shows nothing, and a csat store that does not answer leaves the page without the block, never an error."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request

from console.auth import Principal
from csat.model import Ask, AskStatus, How
from csat.service import Csat

log = logging.getLogger(__name__)

AVERAGE_DAYS = 30  # the admins' block: the asks of the last 30 days

STATUS_ES = {
    AskStatus.ASKING: "Preparando la encuesta",
    AskStatus.SENT: "Encuesta enviada, sin respuesta aún",
    AskStatus.NOT_SENT: "Encuesta no enviada",
    AskStatus.ANSWERED: "Respondida",
}
HOW_ES = {How.TEMPLATE: "plantilla de encuesta de Messenger", How.QUICK_REPLIES: "respuestas rápidas"}


def csat_of(request: Request) -> Csat | None:
    return getattr(request.app.state, "csat", None)


def ask_view(ask: Ask) -> dict[str, Any]:
    """One ask as the conversation view shows it: the stars, the comment, or why it was not sent."""
    view = ask.to_dict()
    view["status_es"] = STATUS_ES[ask.status]
    view["how_es"] = HOW_ES[ask.how] if ask.how else None
    view["stars"] = "★" * ask.rating + "☆" * (5 - ask.rating) if ask.rating else None
    return view


async def satisfaction_of(request: Request, conversation_id: str) -> list[dict[str, Any]]:
    """The conversation's asks, newest first ([] without csat or when its store does not answer)."""
    csat = csat_of(request)
    if csat is None:
        return []
    try:
        return [ask_view(ask) for ask in await csat.of_conversation(conversation_id)]
    except Exception as exc:  # the csat store is away: the conversation still shows
        log.warning("satisfaction unavailable: %s", exc, extra={"conversation_id": conversation_id})
        return []


async def agents_block(request: Request, principal: Principal | None, now: datetime) -> dict[str, Any] | None:
    """The admins' «Satisfacción» block: per agent, the conversations asked, answered and the average rating over
    the last `AVERAGE_DAYS` days (None: not an admin, no csat, or its store does not answer)."""
    csat = csat_of(request)
    if csat is None or principal is None or principal.role != "admin":
        return None
    try:
        rows = await csat.agent_satisfaction(now - timedelta(days=AVERAGE_DAYS))
    except Exception as exc:
        log.warning("satisfaction unavailable: %s", exc)
        return None
    return {"days": AVERAGE_DAYS, "agents": [row.to_dict() for row in rows]}
