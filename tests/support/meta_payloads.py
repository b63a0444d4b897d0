"""Messenger webhook bodies in Meta's documented shapes, for tests.

Shapes follow the Messenger Platform webhook reference (`messages`, `messaging_postbacks`,
`message_echoes`, `message_deliveries`, `message_reads`, `messaging_referrals`, `message_reactions`,
`messaging_handovers`, `standby`), and the Page's `feed` field (Webhooks for Pages: comments, replies, edits,
removals, visitor posts, reactions). Every builder returns a fresh dict, so a test may mutate it.
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


# --- the `feed` field (Webhooks for Pages): comments on the page's posts, visitor posts ------------------------

POST_ID = f"{PAGE_ID}_880011223344"  # `<page id>_<post number>`
COMMENT_ID = "880011223344_120000000001"  # `<post number>_<comment number>`
OTHER_COMMENT_ID = "880011223344_120000000002"
COMMENTER_ID = "6123456789012345"  # an app-scoped id: not the PSID the private reply reaches
T0_SECONDS = T0 // 1000  # feed times are epoch seconds


def _post_object(post_id: str) -> dict[str, Any]:
    return {
        "status_type": "added_photos",
        "is_published": True,
        "updated_time": "2024-06-10T06:13:20+0000",
        "permalink_url": f"https://www.facebook.com/{post_id}",
        "promotion_status": "inactive",
        "id": post_id,
    }


def comment_value(
    message: str = "¿Precio?",
    comment_id: str = COMMENT_ID,
    post_id: str = POST_ID,
    parent_id: str | None = None,
    sender: str = COMMENTER_ID,
    name: str = "María Pérez",
    verb: str = "add",
    created_time: int = T0_SECONDS,
) -> dict[str, Any]:
    """A comment on a page's post as Meta sends it (`item: comment`); a reply names another comment as parent; a
    removal has no `message`."""
    value: dict[str, Any] = {
        "from": {"id": sender, "name": name},
        "post": _post_object(post_id),
        "message": message,
        "post_id": post_id,
        "comment_id": comment_id,
        "created_time": created_time,
        "item": "comment",
        "parent_id": parent_id or post_id,
        "verb": verb,
    }
    if verb == "remove":
        del value["message"]
    return value


def reply_value(message: str = "Yo también quiero saber", comment_id: str = OTHER_COMMENT_ID,
                parent_id: str = COMMENT_ID) -> dict[str, Any]:
    return comment_value(message, comment_id=comment_id, parent_id=parent_id, sender="6123456789099999",
                         name="Luis Andrade")


def edited_value(message: str = "¿Precio del combo familiar?", created_time: int = T0_SECONDS + 60) -> dict[str, Any]:
    return comment_value(message, verb="edited", created_time=created_time)


def removed_value() -> dict[str, Any]:
    return comment_value(verb="remove", created_time=T0_SECONDS + 120)


def hidden_value(verb: str = "hide") -> dict[str, Any]:
    """The page hid (or unhid) the comment."""
    return comment_value(verb=verb, created_time=T0_SECONDS + 180)


def page_comment_value(message: str = "¡Gracias por escribirnos!") -> dict[str, Any]:
    """The page's own comment (its admins, or a public reply we sent): `from` is the page."""
    return comment_value(message, comment_id="880011223344_120000000009", sender=PAGE_ID, name="Pizzería Don Lucho")


def visitor_post_value(message: str = "¿Hacen entregas a Cumbayá?", post_id: str = f"{PAGE_ID}_990000000001",
                       sender: str = COMMENTER_ID) -> dict[str, Any]:
    """A post someone wrote on the page (`item: status`)."""
    return {
        "from": {"id": sender, "name": "María Pérez"},
        "message": message,
        "post_id": post_id,
        "created_time": T0_SECONDS,
        "item": "status",
        "published": 1,
        "verb": "add",
    }


def reaction_value(reaction_type: str = "love") -> dict[str, Any]:
    return {
        "from": {"id": COMMENTER_ID, "name": "María Pérez"},
        "post_id": POST_ID,
        "created_time": T0_SECONDS,
        "item": "reaction",
        "parent_id": POST_ID,
        "reaction_type": reaction_type,
        "verb": "add",
    }


def feed_entry(*values: dict[str, Any], page: str = PAGE_ID, time: int = T0_SECONDS) -> dict[str, Any]:
    """An entry of `feed` changes (`{"field": "feed", "value": …}` each)."""
    return {"id": page, "time": time, "changes": [{"field": "feed", "value": value} for value in values]}


def webhook(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"object": "page", "entry": list(entries)}
