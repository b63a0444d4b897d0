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


# --- the page's `feed` webhook (comments on its posts, visitor posts): Meta's shapes, `meta.feed` reads them ----------


def now_seconds() -> int:
    return int(time.time())


def new_post_id(page_id: str) -> str:
    """Meta's post ids: `<page id>_<post number>`."""
    return f"{page_id}_{uuid.uuid4().int % 10**15}"


def new_comment_id(post_id: str) -> str:
    """Meta's comment ids: `<post number>_<comment number>`."""
    return f"{post_id.rsplit('_', 1)[-1]}_{uuid.uuid4().int % 10**15}"


def feed_change(value: dict[str, Any]) -> dict[str, Any]:
    return {"field": "feed", "value": value}


def comment(page_id: str, from_id: str, from_name: str, post_id: str, message: str, comment_id: str | None = None,
            parent_id: str | None = None, verb: str = "add", created_time: int | None = None) -> dict[str, Any]:
    """One `changes` item: a comment on `post_id` (a reply when `parent_id` is another comment's id), added, edited
    ("edited"), removed ("remove", no message), hidden or unhidden, as Meta sends it with the `post` object."""
    value: dict[str, Any] = {
        "from": {"id": from_id, "name": from_name},
        "post": {"status_type": "added_photos", "is_published": True, "updated_time": "2024-06-10T15:09:57+0000",
                 "permalink_url": f"https://www.facebook.com/{post_id}", "promotion_status": "inactive",
                 "id": post_id},
        "post_id": post_id,
        "comment_id": comment_id or new_comment_id(post_id),
        "created_time": now_seconds() if created_time is None else created_time,
        "item": "comment",
        "parent_id": parent_id or post_id,
        "verb": verb,
    }
    if verb != "remove":
        value["message"] = message
    return feed_change(value)


def visitor_post(page_id: str, from_id: str, from_name: str, message: str, post_id: str | None = None,
                 item: str = "status", created_time: int | None = None) -> dict[str, Any]:
    """One `changes` item: a post someone wrote on the page (or the page's own post, `from_id` = the page)."""
    return feed_change({
        "from": {"id": from_id, "name": from_name},
        "message": message,
        "post_id": post_id or new_post_id(page_id),
        "created_time": now_seconds() if created_time is None else created_time,
        "item": item,
        "published": 1,
        "verb": "add",
    })


def feed_body(page_id: str, changes: list[dict[str, Any]]) -> dict[str, Any]:
    """A delivery of `feed` changes: the entry's `time` is in seconds here (messaging entries say milliseconds)."""
    return {"object": "page", "entry": [{"id": page_id, "time": now_seconds(), "changes": changes}]}


def signed_request(body: dict[str, Any], app_secret: str) -> tuple[bytes, dict[str, str]]:
    """The raw bytes and headers of a delivery; sign the bytes you send, as Meta does."""
    raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
    return raw, {"Content-Type": "application/json", SIGNATURE_HEADER: sign(raw, app_secret)}


# --- Meta's customer feedback template answered (`messaging_feedback`) ------------------------------------------------


def feedback(page_id: str, user_id: str, question_id: str, score: int | str, text: str | None = None,
             question_type: str = "csat") -> dict[str, Any]:
    """One `messaging_feedback` item as Meta documents it: the person submitted the template whose question had
    `question_id`, with `score` (sent as text) and, if they wrote one, the free-form `text`. Meta's example has no
    `timestamp` on the item (the entry's `time` says when)."""
    answer: dict[str, Any] = {"type": question_type, "payload": str(score)}
    if text is not None:
        answer["follow_up"] = {"type": "free_form", "payload": text}
    return {"sender": {"id": user_id}, "recipient": {"id": page_id},
            "messaging_feedback": {"feedback_screens": [{"screen_id": 0, "questions": {question_id: answer}}]}}
