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
from typing import Any

from core.settings import PAGE_INBOX_APP_ID
from handoff.model import PauseReason
from meta.events import EventKind, InboundEvent

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5.0


def outside_author(app_id: str | None) -> str:
    """Who wrote an echo that is not ours, as the console shows it."""
    return "page_inbox" if app_id in (None, "", PAGE_INBOX_APP_ID) else f"app:{app_id}"


def feedback_body(event: InboundEvent) -> dict[str, Any]:
    """What the app's `POST /internal/csat/answer` takes of a rating event: Meta's answers (the template), or the
    quick reply's score; `timestamp_ms` is Meta's time (0: none given, as on `messaging_feedback`: the app uses its
    own), `event_key` the ingest journal's dedup key (a redelivery or a replay records nothing twice)."""
    if event.kind is EventKind.FEEDBACK:
        via = "template"
        answers = [{"question_id": answer.question_id, "type": answer.type, "payload": answer.payload,
                    "follow_up": answer.follow_up} for answer in event.feedback]
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

    async def _post(self, path: str, body: dict[str, Any], url: str | None = None) -> bool:
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_seconds))
        try:
            async with self._session.post(url or self.base_url + path, json=body, headers=self._headers) as response:
                if response.status == 200:
                    return True
                text = await response.text()
                logger.error("the app refused a handoff call",
                             extra={"path": path, "status": response.status, "body": text[:300]})
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            logger.error("the app did not answer a handoff call",
                         extra={"path": path, "error": type(exc).__name__, "user_id": body.get("user_id")})
        return False

    async def user_message(self, page_id: str, user_id: str, text: str, at: datetime) -> bool:
        return await self._post("/user-message", {"page_id": page_id, "user_id": user_id, "text": text,
                                                  "at": at.isoformat()})

    async def pause(self, page_id: str, user_id: str, reason: PauseReason, paused_by: str,
                    text: str | None = None) -> bool:
        return await self._post("/pause", {"page_id": page_id, "user_id": user_id, "reason": reason.value,
                                           "paused_by": paused_by, "text": text})

    async def feedback(self, event: InboundEvent) -> bool:
        """A rating (`InboundEvent.is_feedback`) for the app's ratings: `POST /internal/csat/answer`."""
        return await self._post("/csat/answer", feedback_body(event), url=self.csat_url)

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
