"""The app's internal handoff API, for the other processes (service-token auth).

- `POST /internal/handoff/pause`: the action server (the user asked for a person, the bot failed, the GPT
  fallback declined) and the connector (a person wrote from the Page inbox or another app).
- `POST /internal/handoff/user-message`: the connector reports what a user wrote while the bot is paused.
- `GET /internal/handoff/state?page_id=&user_id=`: a conversation's handoff state and its live messages.
- `POST /internal/handoff/reply` and `/resume`: what the console does, for other tools (and the tests) that
  hold the service token.

Handoff errors become HTTP statuses in one place, `handoff_error_response` (the console's API uses it too).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from handoff.model import ConversationNotFound, HandoffError, PauseReason, RasaUnavailable, ReplyRefused
from handoff.service import Handoff
from outbox.api import require_service_token

router = APIRouter(prefix="/internal/handoff", tags=["handoff"], dependencies=[Depends(require_service_token)])


def handoff_of(request: Request) -> Handoff:
    return request.app.state.handoff


def handoff_error_response(exc: HandoffError) -> JSONResponse:
    """404 unknown conversation, 422 a refused reply (with the policy's reason), 502 Rasa unreachable."""
    if isinstance(exc, ConversationNotFound):
        return JSONResponse({"error": {"reason_code": "not_found", "message": str(exc)}}, status_code=404)
    if isinstance(exc, ReplyRefused):
        return JSONResponse(
            {"error": {"reason_code": exc.reason_code, "message": exc.reason_en, "reason_es": exc.reason_es}},
            status_code=422,
        )
    if isinstance(exc, RasaUnavailable):
        return JSONResponse({"error": {"reason_code": "rasa_unavailable", "message": str(exc)}}, status_code=502)
    return JSONResponse({"error": {"reason_code": "handoff_error", "message": str(exc)}}, status_code=500)


class PauseRequest(BaseModel):
    page_id: str = Field(min_length=1, max_length=64)
    user_id: str = Field(min_length=1, max_length=128)
    reason: PauseReason
    paused_by: str = Field(min_length=1, max_length=120)
    rasa_already_paused: bool = False  # an action returning ConversationPaused itself
    text: str | None = Field(default=None, max_length=20_000)  # what a person wrote from outside


class UserMessageRequest(BaseModel):
    page_id: str = Field(min_length=1, max_length=64)
    user_id: str = Field(min_length=1, max_length=128)
    text: str = Field(max_length=20_000)
    at: datetime


class ReplyRequest(BaseModel):
    conversation_id: str = Field(min_length=3, max_length=200)
    agent: str = Field(min_length=1, max_length=120)
    text: str = Field(max_length=20_000)
    idempotency_key: str | None = Field(default=None, max_length=200)


class ResumeRequest(BaseModel):
    conversation_id: str = Field(min_length=3, max_length=200)
    by: str = Field(min_length=1, max_length=120)
    closing_note: str = Field(default="", max_length=5000)


@router.post("/pause")
async def pause(payload: PauseRequest, request: Request) -> Any:
    try:
        conversation = await handoff_of(request).pause(
            payload.page_id,
            payload.user_id,
            payload.reason,
            payload.paused_by,
            rasa_already_paused=payload.rasa_already_paused,
            text=payload.text,
        )
    except HandoffError as exc:
        return handoff_error_response(exc)
    return {"conversation": conversation.to_dict()}


@router.post("/user-message")
async def user_message(payload: UserMessageRequest, request: Request) -> Any:
    at = payload.at if payload.at.tzinfo is not None else payload.at.replace(tzinfo=timezone.utc)
    try:
        await handoff_of(request).record_user_message(payload.page_id, payload.user_id, payload.text, at)
    except HandoffError as exc:
        return handoff_error_response(exc)
    return {"recorded": True}


@router.get("/state")
async def state(page_id: str, user_id: str, request: Request) -> Any:
    handoff = handoff_of(request)
    conversation = await handoff.find(page_id, user_id)
    if conversation is None:
        return {"conversation": None, "messages": []}
    messages = await handoff.messages(conversation.id)
    return {"conversation": conversation.to_dict(), "messages": [item.to_dict() for item in messages]}


@router.post("/reply")
async def reply(payload: ReplyRequest, request: Request) -> Any:
    if request.app.state.settings.is_production:
        # A human-sender reply (it may carry HUMAN_AGENT) must come from a person logged in to the console.
        return JSONResponse(
            {
                "error": {
                    "reason_code": "human_sender_required",
                    "message": "in production agent replies are sent from the console by a logged-in person",
                }
            },
            status_code=403,
        )
    try:
        return await handoff_of(request).reply_as_agent(
            payload.conversation_id, payload.agent, payload.text, idempotency_key=payload.idempotency_key
        )
    except HandoffError as exc:
        return handoff_error_response(exc)


@router.post("/resume")
async def resume(payload: ResumeRequest, request: Request) -> Any:
    try:
        conversation = await handoff_of(request).resume(payload.conversation_id, payload.by, payload.closing_note)
    except HandoffError as exc:
        return handoff_error_response(exc)
    return {"conversation": conversation.to_dict()}
