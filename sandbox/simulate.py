"""Build and sign webhook deliveries exactly as Meta does: the sandbox chat, `bot chat`, tests, bench."""

from __future__ import annotations

import itertools
import json
import time
import uuid
from typing import Any

from meta.signature import SIGNATURE_HEADER, sign

_counter = itertools.count(1)


def now_ms() -> int:
    return int(time.time() * 1000)


def new_mid() -> str:
    return f"m_sandbox_{uuid.uuid4().hex}"


def messaging(page_id: str, user_id: str, **content: Any) -> dict[str, Any]:
    """One `messaging` item from the user to the page."""
    return {"sender": {"id": user_id}, "recipient": {"id": page_id}, "timestamp": now_ms(), **content}


def text_message(page_id: str, user_id: str, text: str, mid: str | None = None) -> dict[str, Any]:
    return messaging(page_id, user_id, message={"mid": mid or new_mid(), "text": text})


def quick_reply(page_id: str, user_id: str, title: str, payload: str, mid: str | None = None) -> dict[str, Any]:
    return messaging(
        page_id, user_id, message={"mid": mid or new_mid(), "text": title, "quick_reply": {"payload": payload}}
    )


def postback(page_id: str, user_id: str, title: str, payload: str, mid: str | None = None) -> dict[str, Any]:
    return messaging(page_id, user_id, postback={"mid": mid or new_mid(), "title": title, "payload": payload})


def referral_object(ref: str, source: str = "SHORTLINK", ad_id: str | None = None) -> dict[str, Any]:
    """The `referral` object Meta sends: an m.me link or QR code (SHORTLINK), or an ad (ADS, with its `ad_id`)."""
    referral: dict[str, Any] = {"ref": ref, "source": source, "type": "OPEN_THREAD"}
    if ad_id is not None:
        referral["ad_id"] = ad_id
    return referral


def referral(page_id: str, user_id: str, ref: str, source: str = "SHORTLINK", ad_id: str | None = None
             ) -> dict[str, Any]:
    """A standalone `messaging_referrals` item: someone who already has a conversation opened an m.me link (or
    scanned its QR code, or clicked an ad)."""
    return messaging(page_id, user_id, referral=referral_object(ref, source, ad_id))


def get_started(page_id: str, user_id: str, payload: str = "/greet", ref: str | None = None, title: str = "Empezar",
                mid: str | None = None) -> dict[str, Any]:
    """The Get Started button's postback; with `ref`, the referral of the m.me link that opened this first
    conversation (Meta sends it inside the postback)."""
    item = postback(page_id, user_id, title, payload, mid)
    if ref is not None:
        item["postback"]["referral"] = referral_object(ref)
    return item


def webhook_body(page_id: str, items: list[dict[str, Any]], standby: bool = False) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": page_id, "time": now_ms()}
    entry["standby" if standby else "messaging"] = items
    return {"object": "page", "entry": [entry]}


def signed_request(body: dict[str, Any], app_secret: str) -> tuple[bytes, dict[str, str]]:
    """The raw bytes and headers of a delivery; sign the bytes you send, as Meta does."""
    raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
    return raw, {"Content-Type": "application/json", SIGNATURE_HEADER: sign(raw, app_secret)}
