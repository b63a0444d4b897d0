"""The connector's side of human handoff (runs in the Rasa process).

While Rasa holds a conversation paused (`ConversationPaused`) the bot sends nothing, not even typing: the
connector still gives Rasa the user's message (`Agent.log_message`: stored, nothing predicted) and reports it
to the app for the live view. A fresh echo written by a person (the Page inbox, another app) pauses the
conversation through the app. Calls to the app use the service token (`BOT_SERVICE_TOKEN`); a failure is
logged and never stops the webhook.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from enum import Enum
from typing import Any

from core.settings import PAGE_INBOX_APP_ID
from handoff.model import PauseReason
from meta.events import EventKind, InboundEvent

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5.0

# What the app's `POST /internal/csat/answer` takes (bot/internal_api.py `CsatAnswerRequest`; a test holds them
# equal): `feedback_body` keeps to them, so a rating Meta's parser accepted is never refused for its shape.
FEEDBACK_MAX_ANSWERS = 20
FEEDBACK_ANSWER_MAX_CHARS = {"question_id": 200, "type": 40, "payload": 40, "follow_up": 2000}


class Delivery(str, Enum):
    """What became of a call to the app."""

    CONFIRMED = "confirmed"  # 200
    REFUSED = "refused"  # refused for good: a 4xx that says the body is wrong (sending it again changes nothing)
    UNREACHABLE = "unreachable"  # down, slow, overloaded, or not accepting us now (5xx, 408, 429, 401/403, 404)


# 4xx answers that are not about the body: the app busy (408, 429), the service token not (yet) the app's (401,
# 403: a configuration fixed by a restart, the notices kept meanwhile), the route missing (404: an older app during
# a deploy). Any other 4xx refuses the body itself.
NOT_FOR_GOOD = frozenset({401, 403, 404, 408, 429})


def delivery_of(status: int) -> Delivery:
    if status == 200:
        return Delivery.CONFIRMED
    if 400 <= status < 500 and status not in NOT_FOR_GOOD:
        return Delivery.REFUSED
    return Delivery.UNREACHABLE


class NoticeRefused(Exception):
    """The app refused a journaled notice for good (`Delivery.REFUSED`): the journal clears it (logged) instead of
    sending it again every round."""

    def __init__(self, path: str, status: int) -> None:
        super().__init__(f"the app refused {path} for good ({status})")
        self.path = path
        self.status = status


def outside_author(app_id: str | None) -> str:
    """Who wrote an echo that is not ours, as the console shows it."""
    return "page_inbox" if app_id in (None, "", PAGE_INBOX_APP_ID) else f"app:{app_id}"


def _kept(text: str, field: str) -> str:
    """A text as the endpoint takes it: no NUL (PostgreSQL refuses it), at most its length."""
    return text.replace("\x00", "")[:FEEDBACK_ANSWER_MAX_CHARS[field]]


def feedback_body(event: InboundEvent) -> dict[str, Any]:
    """What the app's `POST /internal/csat/answer` takes of a rating event: Meta's answers (the template; the first
    `FEEDBACK_MAX_ANSWERS`, each text without NUL and cut to the endpoint's length), or the quick reply's score;
    `timestamp_ms` is Meta's time (0: none given, as on `messaging_feedback`: the app uses its own), `event_key` the
    ingest journal's dedup key (a redelivery or a replay records nothing twice)."""
    if event.kind is EventKind.FEEDBACK:
        via = "template"
        answers = [{"question_id": _kept(answer.question_id, "question_id"), "type": _kept(answer.type, "type"),
                    "payload": _kept(answer.payload, "payload"),
                    "follow_up": _kept(answer.follow_up, "follow_up") if answer.follow_up is not None else None}
                   for answer in event.feedback[:FEEDBACK_MAX_ANSWERS]]
    else:
        via = "quick_replies"
        answers = [{"question_id": "", "type": "csat", "payload": str(event.csat_score), "follow_up": None}]
    return {"page_id": event.page_id, "user_id": event.user_id, "event_key": event.dedup_key,
            "timestamp_ms": event.timestamp_ms, "via": via, "answers": answers}


class AppHandoffClient:
    """`POST {BOT_APP_URL}/internal/handoff/…` with aiohttp (one pooled session)."""

    def __init__(self, app_url: str, service_token: str, timeout_seconds: float = TIMEOUT_SECONDS) -> None:
        self.base_url = app_url + "/internal/handoff"
        self.csat_url = app_url + "/internal/csat/answer"
        self._headers = {"Authorization": f"Bearer {service_token}"}
        self.timeout_seconds = timeout_seconds
        self._session: Any = None
        self._tasks: set[asyncio.Task[Any]] = set()

    async def _post(self, path: str, body: dict[str, Any], url: str | None = None) -> Delivery:
        """Confirmed (200), refused for good (`delivery_of`), or unreachable (no answer, or an answer for later)."""
        return (await self._send(path, body, url))[0]

    async def _send(self, path: str, body: dict[str, Any], url: str | None = None) -> tuple[Delivery, int | None]:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_seconds))
        try:
            async with self._session.post(url or self.base_url + path, json=body, headers=self._headers) as response:
                delivery = delivery_of(response.status)
                if delivery is not Delivery.CONFIRMED:
                    text = await response.text()
                    logger.error("the app refused a handoff call", extra={
                        "path": path, "status": response.status, "delivery": delivery.value, "body": text[:300]})
                return delivery, response.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            logger.error("the app did not answer a handoff call",
                         extra={"path": path, "error": type(exc).__name__, "user_id": body.get("user_id")})
        return Delivery.UNREACHABLE, None

    async def user_message(self, page_id: str, user_id: str, text: str, at: datetime) -> bool:
        delivery = await self._post("/user-message", {"page_id": page_id, "user_id": user_id, "text": text,
                                                      "at": at.isoformat()})
        return delivery is Delivery.CONFIRMED

    async def pause(self, page_id: str, user_id: str, reason: PauseReason, paused_by: str,
                    text: str | None = None) -> bool:
        delivery = await self._post("/pause", {"page_id": page_id, "user_id": user_id, "reason": reason.value,
                                               "paused_by": paused_by, "text": text})
        return delivery is Delivery.CONFIRMED

    async def feedback(self, event: InboundEvent) -> bool:
        """A rating (`InboundEvent.is_feedback`) for the app's ratings: `POST /internal/csat/answer`. True: the app
        confirmed it; False: not now (retried); `NoticeRefused`: refused for good (the journal drops it, logged)."""
        delivery, status = await self._send("/csat/answer", feedback_body(event), url=self.csat_url)
        if delivery is Delivery.REFUSED:
            raise NoticeRefused("/csat/answer", status or 0)
        return delivery is Delivery.CONFIRMED

    def in_background(self, call: Any) -> None:
        """Fire and forget (the webhook must answer at once); the task is kept until it ends."""
        task = asyncio.get_running_loop().create_task(call)
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("a handoff call to the app failed", exc_info=task.exception())

    async def close(self) -> None:
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.timeout_seconds)
        if self._session is not None:
            await self._session.close()
            self._session = None
