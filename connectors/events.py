"""Parsing of Messenger webhook deliveries into typed events.

Pure functions over Meta's documented shapes. Unknown fields and unknown event kinds are
kept (`raw`), never fatal: a new webhook field must not break the bot.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from bot.settings import PAGE_INBOX_APP_ID


class WebhookPayloadError(ValueError):
    """The body is not a Messenger page webhook; answered with 400."""


class EventKind(str, Enum):
    MESSAGE = "message"
    POSTBACK = "postback"
    REFERRAL = "referral"
    ECHO = "echo"
    DELIVERY = "delivery"
    READ = "read"
    REACTION = "reaction"
    HANDOVER = "handover"
    UNKNOWN = "unknown"


_HANDOVER_KEYS = ("pass_thread_control", "take_thread_control", "request_thread_control", "app_roles")
THUMBS_UP_STICKER_IDS = {369239263222822, 369239343222814, 369239383222810}

_ATTACHMENT_LABELS = {
    "image": "imagen",
    "audio": "audio",
    "video": "video",
    "file": "archivo",
    "location": "ubicación",
    "fallback": "enlace",
    "template": "plantilla",
    "sticker": "sticker",
}


@dataclass(frozen=True)
class InboundEvent:
    """One item of an entry's `messaging` (or `standby`) list, with the page it belongs to."""

    kind: EventKind
    page_id: str
    user_id: str
    timestamp_ms: int
    raw: Mapping[str, Any] = field(repr=False)
    mid: str | None = None
    text: str | None = None
    payload: str | None = None
    title: str | None = None
    attachments: tuple[Mapping[str, Any], ...] = ()
    referral: Mapping[str, Any] | None = None
    app_id: str | None = None
    standby: bool = False

    @property
    def conversation_key(self) -> str:
        """Events of one user on one page are processed in order, others concurrently."""
        return f"{self.page_id}:{self.user_id}"

    @property
    def dedup_key(self) -> str:
        """Meta redelivers; the message id identifies a delivery, else the item's own content."""
        if self.mid and self.kind in (EventKind.MESSAGE, EventKind.ECHO, EventKind.POSTBACK):
            return f"{self.kind.value}:{self.mid}"
        canonical = json.dumps({"page": self.page_id, "standby": self.standby, "item": self.raw}, sort_keys=True)
        return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def is_user_input(self) -> bool:
        """Whether Rasa should see it: what the user said or clicked, while we own the thread."""
        return not self.standby and self.kind in (EventKind.MESSAGE, EventKind.POSTBACK)

    def is_own_echo(self, own_app_id: str) -> bool:
        return self.kind is EventKind.ECHO and bool(own_app_id) and self.app_id == own_app_id

    @property
    def is_page_inbox_echo(self) -> bool:
        return self.kind is EventKind.ECHO and self.app_id in (None, "", PAGE_INBOX_APP_ID)

    def is_person_echo(self, own_app_id: str) -> bool:
        """A message the page sent that is not ours: a person in the Page inbox or another app (the bot steps back).
        Without our own app id only the Page inbox is certain: our own echoes look like another app's."""
        if self.kind is not EventKind.ECHO or self.is_own_echo(own_app_id):
            return False
        return bool(own_app_id) or self.is_page_inbox_echo

    def shown_text(self) -> str:
        """What the user saw themselves send: a quick reply's title rather than its payload."""
        return self.text or self.title or self.payload or attachments_surrogate(self.attachments)

    def user_text(self) -> str:
        """The text Rasa parses: a quick reply or postback payload wins over the shown text."""
        if self.payload:
            return self.payload
        if self.text:
            return self.text
        if self.kind is EventKind.POSTBACK and self.title:
            return self.title
        return attachments_surrogate(self.attachments)

    def metadata(self) -> dict[str, Any]:
        """What travels with the message into Rasa's tracker (`UserUttered.metadata`)."""
        data: dict[str, Any] = {"page_id": self.page_id, "kind": self.kind.value, "timestamp_ms": self.timestamp_ms}
        if self.mid:
            data["mid"] = self.mid
        if self.payload:
            data["payload"] = self.payload
        if self.title:
            data["title"] = self.title
        if self.text and self.payload:
            data["shown_text"] = self.text
        if self.attachments:
            data["attachments"] = [dict(a) for a in self.attachments]
        if self.referral:
            data["referral"] = dict(self.referral)
        return data

    def to_dict(self) -> dict[str, Any]:
        return {"page_id": self.page_id, "standby": self.standby, "item": dict(self.raw)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InboundEvent:
        return parse_messaging_item(data["item"], str(data["page_id"]), standby=bool(data.get("standby")))


def attachments_surrogate(attachments: tuple[Mapping[str, Any], ...]) -> str:
    """A short text standing for attachments, so a photo or a location never crashes the bot."""
    parts = []
    seen_sticker_ids: set[int | str] = set()
    for attachment in attachments:
        kind = str(attachment.get("type") or "archivo")
        payload = attachment.get("payload") or {}
        sticker_id = payload.get("sticker_id") if isinstance(payload, Mapping) else None
        if isinstance(sticker_id, (int, str)):
            # Until Meta's sticker transition ends, one sticker arrives as an `image` and a `sticker`.
            if sticker_id in seen_sticker_ids:
                continue
            seen_sticker_ids.add(sticker_id)
            if sticker_id in THUMBS_UP_STICKER_IDS:
                parts.append("👍")
                continue
        label = _ATTACHMENT_LABELS.get(kind, kind)
        if kind == "location" and isinstance(payload, Mapping):
            coordinates = payload.get("coordinates") or {}
            if "lat" in coordinates and "long" in coordinates:
                label = f"{label} {coordinates['lat']},{coordinates['long']}"
        parts.append(f"[{label}]")
    return " ".join(parts) if parts else "[mensaje vacío]"


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _party_id(party: Any) -> str:
    """`sender`/`recipient`: a PSID, or a `user_ref` (chat plugin); anything malformed gives ''."""
    if not isinstance(party, Mapping):
        return ""
    return _str_or_none(party.get("id") or party.get("user_ref")) or ""


def parse_messaging_item(item: Mapping[str, Any], page_id: str, standby: bool = False) -> InboundEvent:
    """One `messaging` item → an event. Anything unrecognised becomes UNKNOWN, keeping `raw`."""
    if not isinstance(item, Mapping):
        return InboundEvent(EventKind.UNKNOWN, page_id, "", 0, raw={"value": item}, standby=standby)
    sender = _party_id(item.get("sender"))
    recipient = _party_id(item.get("recipient"))
    # `time` is an entry's own timestamp: an entry without items is kept as one UNKNOWN event.
    try:
        timestamp = int(item.get("timestamp") or item.get("time") or 0)
    except (TypeError, ValueError):
        timestamp = 0
    base: dict[str, Any] = {"page_id": page_id, "timestamp_ms": timestamp, "raw": item, "standby": standby}
    message = item.get("message")
    if isinstance(message, Mapping):
        attachments = tuple(a for a in (message.get("attachments") or ()) if isinstance(a, Mapping))
        if message.get("is_echo"):
            # The page sent it: the user is the recipient.
            return InboundEvent(
                EventKind.ECHO,
                user_id=recipient,
                mid=_str_or_none(message.get("mid")),
                text=message.get("text"),
                attachments=attachments,
                app_id=_str_or_none(message.get("app_id")),
                **base,
            )
        quick_reply = message.get("quick_reply") or {}
        return InboundEvent(
            EventKind.MESSAGE,
            user_id=sender,
            mid=_str_or_none(message.get("mid")),
            text=message.get("text"),
            payload=_str_or_none(quick_reply.get("payload")) if isinstance(quick_reply, Mapping) else None,
            attachments=attachments,
            referral=message.get("referral") if isinstance(message.get("referral"), Mapping) else None,
            **base,
        )
    postback = item.get("postback")
    if isinstance(postback, Mapping):
        return InboundEvent(
            EventKind.POSTBACK,
            user_id=sender,
            mid=_str_or_none(postback.get("mid")),
            payload=_str_or_none(postback.get("payload")),
            title=_str_or_none(postback.get("title")),
            referral=postback.get("referral") if isinstance(postback.get("referral"), Mapping) else None,
            **base,
        )
    if isinstance(item.get("referral"), Mapping):
        return InboundEvent(EventKind.REFERRAL, user_id=sender, referral=item["referral"], **base)
    if isinstance(item.get("delivery"), Mapping):
        return InboundEvent(EventKind.DELIVERY, user_id=sender, **base)
    if isinstance(item.get("read"), Mapping):
        return InboundEvent(EventKind.READ, user_id=sender, **base)
    if isinstance(item.get("reaction"), Mapping):
        return InboundEvent(EventKind.REACTION, user_id=sender, mid=_str_or_none(item["reaction"].get("mid")), **base)
    if any(key in item for key in _HANDOVER_KEYS):
        return InboundEvent(EventKind.HANDOVER, user_id=sender, **base)
    return InboundEvent(EventKind.UNKNOWN, user_id=sender, **base)


def parse_webhook(body: Any) -> list[InboundEvent]:
    """Every entry and every item, in delivery order; `standby` items are marked as such."""
    if not isinstance(body, Mapping):
        raise WebhookPayloadError("the body is not a JSON object")
    if body.get("object") != "page":
        raise WebhookPayloadError(f"object is {body.get('object')!r}, expected 'page'")
    entries = body.get("entry")
    if not isinstance(entries, list):
        raise WebhookPayloadError("entry is missing or not a list")
    events: list[InboundEvent] = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise WebhookPayloadError("an entry is not an object")
        page_id = str(entry.get("id") or "")
        for item in entry.get("messaging") or ():
            events.append(parse_messaging_item(item, page_id))
        for item in entry.get("standby") or ():
            events.append(parse_messaging_item(item, page_id, standby=True))
        if not entry.get("messaging") and not entry.get("standby"):
            # e.g. `changes` (feed comments): kept for later features, not fatal.
            # Parsed like an item so that `from_dict(to_dict())` rebuilds the same event.
            events.append(parse_messaging_item(entry, page_id))
    return events
