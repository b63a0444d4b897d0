"""The app's internal handoff API, for the other processes (service-token auth).

- `POST /internal/handoff/pause`: the action server (the user asked for a person, the bot failed, the GPT
  fallback declined) and the connector (a person wrote from the Page inbox or another app).
- `POST /internal/handoff/user-message`: the connector reports what a user wrote while the bot is paused.
- `GET /internal/handoff/state?page_id=&user_id=`: a conversation's handoff state and its live messages.
- `POST /internal/handoff/reply` and `/resume`: what the console does, for other tools (and the tests) that
  hold the service token.

- `POST /internal/csat/answer` (`csat_router`): the connector reports a rating (Meta's `messaging_feedback`, or a
  satisfaction quick reply tapped), journaled in the ingest journal until the app confirmed it; the app records it
  in the csat store (once per event key; a rating no open question matches is confirmed too, `recorded: false`).

- `POST /internal/referrals` (`referrals_router`): the connector reports a referral (an m.me link or QR code opened,
  a Get Started postback with a ref, a message from an ad); the app records it in the links store (once per event
  key) and answers the link's start (`{"intent": …}` / `{"entry_id": …}`), which the connector gives Rasa as the
  user's message.

Handoff errors are answered by the app's one error handler (bot/errors.py), as in the console's API.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, field_validator
from starlette.concurrency import run_in_threadpool

from console.links import LinksRefused, links_of
from core.postgres import DatabaseUnavailable
from csat.service import Csat
from handoff.model import PauseReason, ReplyRefused
from handoff.service import Handoff
from links.model import MAX_INCOMING_REF, Referral
from outbox.api import require_service_token

router = APIRouter(prefix="/internal/handoff", tags=["handoff"], dependencies=[Depends(require_service_token)])


def handoff_of(request: Request) -> Handoff:
    return request.app.state.handoff


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
    conversation = await handoff_of(request).pause(
        payload.page_id,
        payload.user_id,
        payload.reason,
        payload.paused_by,
        rasa_already_paused=payload.rasa_already_paused,
        text=payload.text,
    )
    return {"conversation": conversation.to_dict()}


@router.post("/user-message")
async def user_message(payload: UserMessageRequest, request: Request) -> Any:
    at = payload.at if payload.at.tzinfo is not None else payload.at.replace(tzinfo=timezone.utc)
    await handoff_of(request).record_user_message(payload.page_id, payload.user_id, payload.text, at)
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
        raise ReplyRefused(
            "human_sender_required",
            "En producción las respuestas de agentes se envían desde la consola, con sesión iniciada.",
            "in production agent replies are sent from the console by a logged-in person",
        )
    return await handoff_of(request).reply_as_agent(
        payload.conversation_id, payload.agent, payload.text, idempotency_key=payload.idempotency_key
    )


@router.post("/resume")
async def resume(payload: ResumeRequest, request: Request) -> Any:
    conversation = await handoff_of(request).resume(payload.conversation_id, payload.by, payload.closing_note)
    return {"conversation": conversation.to_dict()}


referrals_router = APIRouter(prefix="/internal", tags=["referrals"], dependencies=[Depends(require_service_token)])


NO_NUL = r"^[^\x00]*$"  # PostgreSQL refuses NUL in text (SQLite keeps it): refused alike, a 422


class ReferralRequest(BaseModel):
    event_key: str = Field(min_length=1, max_length=200, pattern=NO_NUL)  # the ingest journal's dedup key
    page_id: str = Field(pattern=r"^[0-9]{1,64}$")
    user_id: str = Field(min_length=1, max_length=128, pattern=NO_NUL)
    ref: str = Field(default="", max_length=MAX_INCOMING_REF, pattern=NO_NUL)  # an ad may have none
    source: str = Field(default="", max_length=64, pattern=NO_NUL)
    via: Literal["referral", "postback", "message"]
    ad_id: str | None = Field(default=None, max_length=64, pattern=NO_NUL)
    at: datetime

    @field_validator("at")
    @classmethod
    def _in_utc(cls, at: datetime) -> datetime:
        """The time in UTC (none given: UTC); one UTC cannot hold (year 9999 behind UTC, year 1 ahead) is a 422."""
        try:
            return (at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)
        except OverflowError as exc:
            raise ValueError("not a time in UTC") from exc


@referrals_router.post("/referrals")
async def referral(payload: ReferralRequest, request: Request) -> Any:
    """Record a referral and answer what it starts: `start` is the link's (None: a ref no link has, a link
    switched off or one without a start; the connector then keeps today's behaviour)."""
    at = payload.at
    store = links_of(request)
    try:
        recorded = await run_in_threadpool(store.record_referral, Referral(
            event_key=payload.event_key, page_id=payload.page_id, psid=payload.user_id, ref=payload.ref,
            source=payload.source, via=payload.via, ad_id=payload.ad_id, at=at))
    except DatabaseUnavailable as exc:
        raise LinksRefused("links_unavailable", "the links store did not answer") from exc
    link = recorded.link
    start = recorded.start
    return {"recorded": recorded.recorded,
            "link": {"id": link.id, "name": link.name, "enabled": link.enabled} if link is not None else None,
            "start": start.to_dict() if start is not None else None}


csat_router = APIRouter(prefix="/internal/csat", tags=["csat"], dependencies=[Depends(require_service_token)])


class FeedbackAnswerBody(BaseModel):
    question_id: str = Field(default="", max_length=200, pattern=NO_NUL)
    type: str = Field(default="", max_length=40, pattern=NO_NUL)
    payload: str = Field(default="", max_length=40, pattern=NO_NUL)
    follow_up: str | None = Field(default=None, max_length=2000, pattern=NO_NUL)


class CsatAnswerRequest(BaseModel):
    page_id: str = Field(min_length=1, max_length=64, pattern=NO_NUL)
    user_id: str = Field(min_length=1, max_length=128, pattern=NO_NUL)
    event_key: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    timestamp_ms: int = Field(default=0, ge=0, le=2**53)  # Meta's time; 0: none given (the app's own is used)
    via: Literal["template", "quick_replies"]
    answers: list[FeedbackAnswerBody] = Field(max_length=20)


@csat_router.post("/answer")
async def csat_answer(payload: CsatAnswerRequest, request: Request) -> Any:
    csat: Csat = request.app.state.csat
    now = csat.clock()
    at = now
    if 0 < payload.timestamp_ms / 1000 < now.timestamp():  # Meta's time, never in our future (nor past year 9999)
        at = datetime.fromtimestamp(payload.timestamp_ms / 1000, tz=timezone.utc)
    ask = await csat.record_answer(payload.page_id, payload.user_id, payload.via,
                                   [answer.model_dump() for answer in payload.answers], payload.event_key, at)
    return {"recorded": ask is not None, "ask": ask.to_dict() if ask is not None else None}
