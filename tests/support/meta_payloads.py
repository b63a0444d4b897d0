"""Messenger webhook bodies in Meta's documented shapes, for tests.

Shapes follow the Messenger Platform webhook reference (`messages`, `messaging_postbacks`,
`message_echoes`, `message_deliveries`, `message_reads`, `messaging_referrals`, `message_reactions`,
`messaging_handovers`, `standby`). Every builder returns a fresh dict, so a test may mutate it.
"""

from __future__ import annotations

from typing import Any

PAGE_ID = "104523456789012"
OTHER_PAGE_ID = "104523456789099"
USER_ID = "7012345678901234"  # a page-scoped id (PSID)
OTHER_USER_ID = "7012345678905678"
OUR_APP_ID = "1517776481860111"
OTHER_APP_ID = "987654321098765"
PAGE_INBOX_APP_ID_NUMBER = 263902037430900  # Meta sends app ids as JSON numbers
T0 = 1_718_000_000_000
THUMBS_UP_STICKER_ID = 369239263222822

Item = dict[str, Any]


def _user_item(timestamp: int, sender: str, page: str) -> Item:
    return {"sender": {"id": sender}, "recipient": {"id": page}, "timestamp": timestamp}


def text_message(
    mid: str = "m_AG5Hz2Uq7tuwNEhXfYYKj8mJ",
    text: str = "hola",
    sender: str = USER_ID,
    page: str = PAGE_ID,
    timestamp: int = T0,
) -> Item:
    return {**_user_item(timestamp, sender, page), "message": {"mid": mid, "text": text}}


def quick_reply(mid: str, text: str, payload: str, sender: str = USER_ID, timestamp: int = T0) -> Item:
    item = text_message(mid, text, sender=sender, timestamp=timestamp)
    item["message"]["quick_reply"] = {"payload": payload}
    return item


def postback(
    mid: str,
    title: str | None,
    payload: str | None,
    referral: dict[str, Any] | None = None,
    sender: str = USER_ID,
    timestamp: int = T0,
) -> Item:
    body: dict[str, Any] = {"mid": mid}
    if title is not None:
        body["title"] = title
    if payload is not None:
        body["payload"] = payload
    if referral is not None:
        body["referral"] = referral
    return {**_user_item(timestamp, sender, PAGE_ID), "postback": body}


def attachment_message(
    mid: str,
    attachments: list[dict[str, Any]],
    text: str | None = None,
    sender: str = USER_ID,
    timestamp: int = T0,
    **message_fields: Any,
) -> Item:
    message: dict[str, Any] = {"mid": mid, "attachments": attachments, **message_fields}
    if text is not None:
        message["text"] = text
    return {**_user_item(timestamp, sender, PAGE_ID), "message": message}


def media(kind: str, url: str = "https://scontent.xx.fbcdn.net/v/t1.15752-9/photo.jpg") -> dict[str, Any]:
    """`image`, `audio`, `video` or `file`."""
    return {"type": kind, "payload": {"url": url}}


def location(lat: float, long: float) -> dict[str, Any]:
    return {
        "type": "location",
        "title": "Ubicación",
        "url": "https://l.facebook.com/l.php?u=https%3A%2F%2Fwww.bing.com%2Fmaps",
        "payload": {"coordinates": {"lat": lat, "long": long}},
    }


def fallback(url: str = "https://www.example.com/oferta", title: str = "Oferta de la semana") -> dict[str, Any]:
    return {"type": "fallback", "payload": {"url": url, "title": title}}


def fallback_without_payload() -> dict[str, Any]:
    """'For unsupported shares ... a fallback with no payload might be sent.'"""
    return {"type": "fallback"}


def sticker_attachments(sticker_id: int, transition: bool) -> list[dict[str, Any]]:
    """A sticker as an `image` with `sticker_id`; during Meta's 2026 transition also as a `sticker`."""
    url = "https://scontent.xx.fbcdn.net/v/t39.1997-6/sticker.png"
    attachments = [{"type": "image", "payload": {"url": url, "sticker_id": sticker_id}}]
    if transition:
        attachments.append({"type": "sticker", "payload": {"url": url, "sticker_id": sticker_id}})
    return attachments


def sticker_message(mid: str, sticker_id: int = THUMBS_UP_STICKER_ID, transition: bool = False) -> Item:
    return attachment_message(mid, sticker_attachments(sticker_id, transition), sticker_id=sticker_id)


def shortlink_referral(ref: str = "promo_enero") -> dict[str, Any]:
    return {"ref": ref, "source": "SHORTLINK", "type": "OPEN_THREAD"}


def ad_referral(ad_id: str = "23851234567890123", ref: str = "anuncio_fb") -> dict[str, Any]:
    return {
        "ref": ref,
        "ad_id": ad_id,
        "source": "ADS",
        "type": "OPEN_THREAD",
        "ads_context_data": {
            "ad_title": "Entradas al 2x1",
            "photo_url": "https://scontent.xx.fbcdn.net/v/ad.jpg",
            "post_id": "104523456789012_987654321",
        },
    }


def referral(ref: dict[str, Any], sender: str = USER_ID, timestamp: int = T0) -> Item:
    return {**_user_item(timestamp, sender, PAGE_ID), "referral": ref}


def echo(
    mid: str,
    text: str,
    app_id: int | str | None,
    recipient: str = USER_ID,
    page: str = PAGE_ID,
    timestamp: int = T0,
) -> Item:
    message: dict[str, Any] = {"is_echo": True, "mid": mid, "text": text}
    if app_id is not None:
        message["app_id"] = app_id
    return {"sender": {"id": page}, "recipient": {"id": recipient}, "timestamp": timestamp, "message": message}


def delivery(mids: list[str], watermark: int, sender: str = USER_ID, page: str = PAGE_ID) -> Item:
    """Meta's documented delivery has no `timestamp`."""
    return {"sender": {"id": sender}, "recipient": {"id": page}, "delivery": {"mids": mids, "watermark": watermark}}


def read(watermark: int, sender: str = USER_ID, page: str = PAGE_ID, timestamp: int = T0) -> Item:
    return {**_user_item(timestamp, sender, page), "read": {"watermark": watermark}}


def reaction(mid: str, action: str = "react", emoji: str = "\u2764\ufe0f", name: str = "love") -> Item:
    return {
        **_user_item(T0, USER_ID, PAGE_ID),
        "reaction": {"reaction": name, "emoji": emoji, "action": action, "mid": mid},
    }


def pass_thread_control(new_owner_app_id: str = OUR_APP_ID, previous: str | None = OTHER_APP_ID) -> Item:
    control = {"previous_owner_app_id": previous, "new_owner_app_id": new_owner_app_id, "metadata": "bot de vuelta"}
    return {**_user_item(T0, USER_ID, PAGE_ID), "pass_thread_control": control}


def take_thread_control(previous_owner_app_id: str = OUR_APP_ID) -> Item:
    control = {"previous_owner_app_id": previous_owner_app_id, "new_owner_app_id": OTHER_APP_ID, "metadata": "agente"}
    return {**_user_item(T0, USER_ID, PAGE_ID), "take_thread_control": control}


def request_thread_control(requested_owner_app_id: str = OTHER_APP_ID) -> Item:
    control = {"requested_owner_app_id": requested_owner_app_id, "metadata": "pide el hilo"}
    return {**_user_item(T0, USER_ID, PAGE_ID), "request_thread_control": control}


def app_roles() -> Item:
    """Sent to the page when an admin changes roles: no sender."""
    return {"recipient": {"id": PAGE_ID}, "timestamp": T0, "app_roles": {OUR_APP_ID: ["primary_receiver"]}}


def message_edit(mid: str, text: str) -> Item:
    """A webhook field (`message_edits`) the parser does not model: it must come out UNKNOWN."""
    return {**_user_item(T0, USER_ID, PAGE_ID), "message_edit": {"mid": mid, "text": text, "num_edit": 1}}


def entry(items: list[Item], page: str = PAGE_ID, time: int = T0, standby: bool = False) -> dict[str, Any]:
    return {"id": page, "time": time, ("standby" if standby else "messaging"): items}


def changes_entry(page: str = PAGE_ID, time: int = T0) -> dict[str, Any]:
    """A change of a Page field the parser does not model (a rating): an entry with `changes` and no messaging
    items, kept as one UNKNOWN event. (`feed` changes are parsed: see `feed_entry`.)"""
    value = {"item": "rating", "verb": "add", "rating": 5, "review_text": "Muy buena atención", "reviewer_id": "55"}
    return {"id": page, "time": time, "changes": [{"field": "ratings", "value": value}]}


def webhook(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"object": "page", "entry": list(entries)}
