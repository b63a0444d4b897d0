"""The outbox's HTTP API (service-token auth): enqueue, list, cancel, retry, page state, alerts.

Refusals are raised as the outbox's errors (a reason code, never a status); the app answers them (bot/errors.py).
"""

from __future__ import annotations

import hmac
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from meta.feed import is_object_id
from meta.validate import validate_send_request
from outbox.model import (
    MessageFilter,
    NewMessage,
    OutboxError,
    OutboxInputError,
    Purpose,
    SenderKind,
    Status,
)
from outbox.outbox import Outbox

router = APIRouter(prefix="/api/outbox", tags=["outbox"])

# A scheduled time this far in the past is a client clock or typing error, not "send now".
PAST_TOLERANCE = timedelta(seconds=60)


SERVICE_TOKEN_REQUIRED = "a service token is required: Authorization: Bearer <BOT_SERVICE_TOKEN>"


class ServiceTokenRequired(OutboxError):
    reason_code = "service_token_required"

    def __init__(self) -> None:
        super().__init__(SERVICE_TOKEN_REQUIRED)


def require_service_token(request: Request, authorization: str = Header(default="")) -> None:
    expected = request.app.state.settings.service_token
    scheme, _, token = authorization.partition(" ")
    if not token or scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), expected.encode()):
        raise ServiceTokenRequired()


def outbox_of(request: Request) -> Outbox:
    outbox: Outbox = request.app.state.outbox
    return outbox


class EnqueueRequest(BaseModel):
    page_id: str = Field(min_length=1, max_length=64)
    recipient_id: str = Field(min_length=1, max_length=128)
    message: dict[str, Any] | None = None
    text: str | None = None
    sender: Literal["bot", "human", "system"] = "system"
    sender_name: str | None = Field(default=None, max_length=120)
    purpose: Literal["reply", "follow_up", "private_reply", "public_reply"] = "follow_up"
    tag: str | None = None
    promotional: bool = False
    not_before: str | None = Field(default=None, description="ISO 8601 with a time zone, e.g. 2026-12-01T14:00:00Z")
    idempotency_key: str | None = Field(default=None, max_length=200)


def public_reply_message(message: dict[str, Any]) -> dict[str, Any]:
    """A public reply (purpose `public_reply`, recipient: the comment id) is a comment under the comment: its text
    only (no quick replies, buttons or attachments), not blank. The length is checked as a Messenger text's (2,000
    characters; our cap, shorter than Facebook's for comments)."""
    extra = sorted(set(message) - {"text"})
    if extra:
        raise OutboxInputError(
            "invalid_message", f"a public reply is text only; remove {', '.join(extra)}",
            reason_es=f"Una respuesta pública es solo texto; quite {', '.join(extra)}.",
        )
    text = message.get("text")
    if not isinstance(text, str) or not text.strip():
        raise OutboxInputError("invalid_message", "a public reply needs a non-empty text",
                               reason_es="Una respuesta pública necesita un texto.")
    return {"text": text}


def parse_not_before(value: str | None, now: datetime) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise OutboxInputError("invalid_date", f"not_before {value!r} is not an ISO 8601 date-time") from exc
    if parsed.tzinfo is None:
        raise OutboxInputError("invalid_date", "not_before needs a time zone (e.g. 'Z' or '-05:00')")
    parsed = parsed.astimezone(timezone.utc)
    if parsed < now - PAST_TOLERANCE:
        raise OutboxInputError("date_in_past", f"not_before {value} is in the past")
    return parsed


@router.post("", dependencies=[Depends(require_service_token)])
async def enqueue(payload: EnqueueRequest, request: Request) -> JSONResponse:
    outbox = outbox_of(request)
    now = outbox.clock()
    if (payload.message is None) == (payload.text is None):
        raise OutboxInputError("invalid_message", "give exactly one of 'message' (a Send API message object) or 'text'")
    message = payload.message if payload.message is not None else {"text": payload.text}
    if payload.purpose == "public_reply":
        message = public_reply_message(message)
    recipient_key = "comment_id" if payload.purpose in ("private_reply", "public_reply") else "id"
    if recipient_key == "comment_id" and not is_object_id(payload.recipient_id):
        # The comment id goes into a Graph API path (`/{comment_id}/comments`): Meta's shape only.
        raise OutboxInputError("invalid_recipient", "a comment id is digits joined by '_' (Meta's ids)",
                               reason_es="El id del comentario tiene solo números unidos por «_», como los de Meta.")
    problem = validate_send_request(
        {"recipient": {recipient_key: payload.recipient_id}, "messaging_type": "UPDATE", "message": message}
    )
    if problem is not None:
        raise OutboxInputError("invalid_message", problem.message, graph_code=problem.code,
                               graph_subcode=problem.error_subcode)
    if payload.sender == "human" and request.app.state.settings.is_production:
        # A human sender may use HUMAN_AGENT: in production only the console (a logged-in person) sends as one.
        raise OutboxInputError("human_sender_required",
                               "sender 'human' is only accepted from the console in production")
    if payload.page_id not in request.app.state.settings.page_tokens:
        raise OutboxInputError("unknown_page", f"page {payload.page_id} is not configured")
    not_before = parse_not_before(payload.not_before, now)
    new = NewMessage(
        page_id=payload.page_id,
        recipient_id=payload.recipient_id,
        message=message,
        sender=SenderKind(payload.sender),
        purpose=Purpose(payload.purpose),
        tag=payload.tag,
        promotional=payload.promotional,
        not_before=not_before,
        idempotency_key=payload.idempotency_key,
        sender_name=payload.sender_name,
    )
    # Decide now for an immediate send; a scheduled one is decided again when it is due.
    decision = await outbox.preview(new, not_before or now)
    if not decision.allowed:
        raise OutboxInputError(decision.reason_code or "not_allowed", decision.reason_en, reason_es=decision.reason_es)
    stored, created = await outbox.enqueue(new)
    return JSONResponse(
        {
            "message": stored.to_dict(),
            "created": created,
            "decision": {
                "messaging_type": decision.messaging_type,
                "tag": decision.tag,
            },
        },
        status_code=201 if created else 200,
    )


@router.get("", dependencies=[Depends(require_service_token)])
async def list_messages(
    request: Request,
    recipient_id: str | None = None,
    page_id: str | None = None,
    status: list[str] = Query(default=[]),
    limit: int = Query(default=100, ge=1, le=1000),
    before_id: int | None = None,
) -> dict[str, Any]:
    try:
        statuses = tuple(Status(value) for value in status)
    except ValueError as exc:
        raise OutboxInputError("invalid_status", f"unknown status; use one of {[s.value for s in Status]}") from exc
    query = MessageFilter(
        recipient_id=recipient_id, page_id=page_id, statuses=statuses, limit=limit, before_id=before_id
    )
    messages = await outbox_of(request).find(query)
    return {"messages": [message.to_dict() for message in messages]}


@router.get("/alerts", dependencies=[Depends(require_service_token)])
async def alerts(request: Request) -> dict[str, Any]:
    found = await outbox_of(request).alerts(100)
    return {
        "alerts": [
            {
                "id": a.id,
                "page_id": a.page_id,
                "code": a.code,
                "message": a.message,
                "created_at": a.created_at.isoformat(),
            }
            for a in found
        ]
    }


@router.get("/pages/{page_id}", dependencies=[Depends(require_service_token)])
async def page_state(page_id: str, request: Request) -> dict[str, Any]:
    page = await outbox_of(request).page(page_id)
    return {
        "page_id": page.page_id,
        "paused": page.paused,
        "paused_reason": page.paused_reason,
        "utility_templates": page.utility_templates,
    }


@router.post("/pages/{page_id}/resume", dependencies=[Depends(require_service_token)])
async def resume_page(page_id: str, request: Request) -> dict[str, Any]:
    await outbox_of(request).resume_page(page_id)
    return {"page_id": page_id, "paused": False}


async def _transition(request: Request, message_id: int, action: str) -> dict[str, Any]:
    outbox = outbox_of(request)
    operation = outbox.cancel if action == "cancel" else outbox.retry
    message = await operation(message_id)  # NotFound, InvalidTransition: the app's error table answers them
    return {"message": message.to_dict()}


@router.get("/{message_id}", dependencies=[Depends(require_service_token)])
async def get_message(message_id: int, request: Request) -> dict[str, Any]:
    message = await outbox_of(request).get(message_id)
    return {"message": message.to_dict()}


@router.post("/{message_id}/cancel", dependencies=[Depends(require_service_token)])
async def cancel(message_id: int, request: Request) -> dict[str, Any]:
    return await _transition(request, message_id, "cancel")


@router.post("/{message_id}/retry", dependencies=[Depends(require_service_token)])
async def retry(message_id: int, request: Request) -> dict[str, Any]:
    return await _transition(request, message_id, "retry")
