"""Referrals in the Rasa channel (runs in the Rasa process, Python 3.10): an m.me link or QR code opened, a Get
Started postback carrying a ref, a message from an ad.

The channel reports each to the app (`POST {BOT_APP_URL}/internal/referrals`, service token), which records it in
the links store (once per event: the ingest journal's dedup key) and answers the link's start. A start becomes the
user's message to Rasa (`links.model.Start.message_text`: `/greet`, `/ask_knowledge{"entry_id":"menu"}`), so "scan
to see the menu" answers with the menu at once:

- a standalone `referral` (the person already had a conversation): with a start, a turn with it; without one (an
  unknown ref, a link switched off or without a start, the app down): recorded only, no turn, as before;
- a Get Started `postback` with a `referral` (a first conversation): the start replaces the button's payload;
  without one the payload stays;
- a `message` with a `referral` (from an ad): recorded; the person's own words stay the message.

The app being down never loses the user's message: the event is processed as it would have been without links
(logged).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from links.model import MAX_INCOMING_REF, Start, parse_start
from meta.events import EventKind, InboundEvent

logger = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5.0
VIA_BY_KIND = {EventKind.REFERRAL: "referral", EventKind.POSTBACK: "postback", EventKind.MESSAGE: "message"}


def _short(value: Any, limit: int) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text[:limit]


def referral_report(event: InboundEvent, at: datetime) -> dict[str, Any] | None:
    """Pure: the body of `POST /internal/referrals` for an event that carries a referral while we hold the thread
    (None for any other)."""
    via = VIA_BY_KIND.get(event.kind)
    if event.referral is None or event.standby or via is None or not event.user_id:
        return None
    referral = event.referral
    ad_id = _short(referral.get("ad_id"), 64) or None
    return {"event_key": event.dedup_key[:200], "page_id": event.page_id, "user_id": event.user_id,
            "ref": _short(referral.get("ref"), MAX_INCOMING_REF), "source": _short(referral.get("source"), 64),
            "via": via, "ad_id": ad_id, "at": at.isoformat()}


@dataclass(frozen=True)
class ReferralAnswer:
    """What the app said: the link's name (None: no link has the ref) and its start (None: nothing to start)."""

    link_name: str | None
    start: Start | None


def answer_of(body: Any) -> ReferralAnswer:
    """Pure: the app's JSON answer, checked (a start the links model refuses starts nothing)."""
    link = body.get("link") if isinstance(body, dict) else None
    name = link.get("name") if isinstance(link, dict) and isinstance(link.get("name"), str) else None
    try:
        start = parse_start(body.get("start")) if isinstance(body, dict) else None
    except ValueError:
        logger.error("the app answered a referral with a start the channel cannot use",
                     extra={"start": str(body.get("start"))[:200]})
        start = None
    return ReferralAnswer(name, start)


def turn_event(event: InboundEvent, answer: ReferralAnswer | None) -> InboundEvent | None:
    """Pure: the event Rasa gets for a referral (None: no turn). `answer` None: the app did not answer."""
    start = answer.start if answer is not None else None
    if event.kind is EventKind.REFERRAL:
        if start is None:
            return None
        name = answer.link_name if answer is not None else None
        shown = f"Llegó por el enlace «{name}»" if name else "Llegó por un enlace"
        return replace(event, payload=start.message_text(), title=shown)
    if event.kind is EventKind.POSTBACK and start is not None:
        return replace(event, payload=start.message_text())
    return event


class AppReferralClient:
    """`POST {BOT_APP_URL}/internal/referrals` with aiohttp (one pooled session)."""

    def __init__(self, app_url: str, service_token: str, timeout_seconds: float = TIMEOUT_SECONDS) -> None:
        self.url = app_url + "/internal/referrals"
        self._headers = {"Authorization": f"Bearer {service_token}"}
        self.timeout_seconds = timeout_seconds
        self._session: Any = None

    async def report(self, body: dict[str, Any]) -> ReferralAnswer | None:
        """The app's answer, or None when it is down or refused (logged: the caller keeps today's behaviour)."""
        import aiohttp

        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_seconds))
        try:
            async with self._session.post(self.url, json=body, headers=self._headers) as response:
                if response.status == 200:
                    return answer_of(await response.json())
                text = await response.text()
                logger.error("the app refused a referral; processed without its link",
                             extra={"status": response.status, "body": text[:300], "user_id": body.get("user_id")})
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            logger.error("the app did not answer a referral; processed without its link",
                         extra={"error": type(exc).__name__, "user_id": body.get("user_id")})
        return None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
