"""What a broadcast is: its message (`Content`), its audience (`contacts.model.Audience`), its state, and what the
dry run and the report say about it.

Pure: no I/O. Every check of a draft raises `BroadcastInvalid(field, message_es)` with a Spanish sentence naming the
field (the console shows it next to that field). Meta's limits come from `meta.limits`; a quick reply or a postback
button may start an intent or a knowledge entry (`links.model.Start`, as m.me links do): its payload is the message
Rasa reads, `Start.message_text()`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from types import MappingProxyType
from typing import Any

from contacts.model import Audience, ContactInvalid
from core.errors import DomainError, FieldInvalid
from links.model import LinkInvalid, Start, parse_start
from meta.limits import (
    BUTTON_TEMPLATE_TEXT_MAX_CHARS,
    BUTTON_TITLE_MAX_CHARS,
    BUTTONS_MAX,
    MESSAGE_TAGS,
    PAYLOAD_MAX_CHARS,
    QUICK_REPLIES_MAX,
    QUICK_REPLY_TITLE_MAX_CHARS,
    TEXT_MAX_CHARS,
)

MAX_NAME = 120
MAX_URL = 2000
MAX_ATTACHMENT_ID = 64
PAGE_ID_PATTERN = re.compile(r"^[0-9]{1,64}$")
ATTACHMENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")

# Reason codes of a recipient the broadcast leaves out before the policy is asked (the policy's own codes come from
# outbox.policy and are worded by outbox.wording).
NEVER_WROTE = "never_wrote"
CONVERSATION_PAUSED = "conversation_paused"
BLOCKED = "blocked"
PARTIALLY_SENT = "partially_sent"  # got some parts of the message; the rest was cancelled

HUMAN_AGENT_TAG = "HUMAN_AGENT"
# The tags a broadcast may claim (the outbox's policy still decides, at its date, whether one fits).
BROADCAST_TAGS = MESSAGE_TAGS - {HUMAN_AGENT_TAG}


class BroadcastsError(DomainError):
    """Root of what the broadcasts package raises on purpose."""

    reason_code = "broadcasts_error"


class BroadcastInvalid(BroadcastsError, FieldInvalid):
    """A draft that cannot be saved: `field` names it (`content.text`, `audience.tags_any`), `message_es` says why."""

    reason_code = "broadcast_invalid"


class BroadcastNotFound(BroadcastsError, LookupError):
    reason_code = "broadcast_not_found"

    def __init__(self, broadcast_id: int) -> None:
        super().__init__(f"no broadcast {broadcast_id}")
        self.broadcast_id = broadcast_id
        self.message_es = f"No existe la transmisión {broadcast_id}."


class BroadcastStateError(BroadcastsError):
    """What was asked does not fit the broadcast's state (editing one already sent, cancelling one finished)."""

    reason_code = "broadcast_state_error"

    def __init__(self, reason_code: str, message_es: str) -> None:
        super().__init__(message_es)
        self.reason_code = reason_code
        self.message_es = message_es


class BroadcastStatus(str, Enum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    DONE = "done"
    CANCELLED = "cancelled"


STATUS_ES: Mapping[BroadcastStatus, str] = {
    BroadcastStatus.DRAFT: "Borrador",
    BroadcastStatus.SCHEDULED: "Programada",
    BroadcastStatus.SENDING: "Enviando",
    BroadcastStatus.DONE: "Enviada",
    BroadcastStatus.CANCELLED: "Cancelada",
}


class RecipientState(str, Enum):
    SKIPPED = "skipped"  # left out when planned (never wrote, paused, blocked, or the policy said no)
    QUEUED = "queued"  # in the outbox
    SENT = "sent"  # every part sent
    BLOCKED = "blocked"  # the policy refused it at send time (the window closed meanwhile)
    FAILED = "failed"  # Meta refused it (or transient errors until the attempts ran out)
    CANCELLED = "cancelled"  # the broadcast was cancelled before it left


# --- checks --------------------------------------------------------------------------------------------------------


def _invalid(field_name: str, message_es: str) -> BroadcastInvalid:
    return BroadcastInvalid(field_name, message_es)


def _has_control(text: str, allow_newlines: bool = False) -> bool:
    for char in text:
        if allow_newlines and char in "\n\t":
            continue
        if unicodedata.category(char) in ("Cc", "Cs") or char in "\u2028\u2029":
            return True
    return False


def _text(value: Any, field_name: str, what: str, limit: int, *, multiline: bool = False) -> str:
    if not isinstance(value, str):
        raise _invalid(field_name, f"{what} debe ser un texto.")
    if _has_control(value, allow_newlines=multiline):
        raise _invalid(field_name, f"{what} tiene caracteres invisibles o de control; escríbalo de nuevo.")
    text = value.strip() if multiline else " ".join(value.split())
    if not text:
        raise _invalid(field_name, f"Escriba {what[0].lower()}{what[1:]}.")
    if len(text) > limit:
        raise _invalid(field_name, f"{what} tiene {len(text)} caracteres; use como máximo {limit}.")
    return text


def _https_url(value: Any, field_name: str) -> str:
    if not isinstance(value, str) or not value.startswith("https://") or len(value) > MAX_URL \
            or any(char.isspace() for char in value) or _has_control(value) or len(value) <= len("https://"):
        raise _invalid(field_name, f"La dirección debe empezar por https:// y tener como máximo {MAX_URL} "
                                   "caracteres, sin espacios.")
    return value


def _start(value: Any, field_name: str) -> Start | None:
    try:
        return parse_start(value)
    except LinkInvalid as exc:
        raise _invalid(field_name, exc.message_es) from exc


def _object(value: Any, field_name: str, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _invalid(field_name, f"{what} debe ser un objeto JSON.")
    return value


def _no_extra(body: Mapping[str, Any], allowed: set[str], prefix: str) -> None:
    extra = sorted(str(key)[:40] for key in set(body) - allowed)
    if extra:
        raise _invalid(f"{prefix}{extra[0]}" if extra[0] else prefix.rstrip(".") or "body",
                       f"Campo desconocido «{extra[0]}».")


def _list(value: Any, field_name: str, what: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _invalid(field_name, f"{what} deben ser una lista.")
    return value


# --- the message ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class QuickReply:
    """An answer the person can tap; `start` (an intent or a knowledge entry) is what it starts, else the title is
    what the bot reads, as if typed."""

    title: str
    start: Start | None = None

    def payload(self) -> str:
        return self.start.message_text() if self.start is not None else self.title

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "start": self.start.to_dict() if self.start else None}


@dataclass(frozen=True)
class Button:
    """A link (`url`) or a postback that starts an intent or a knowledge entry (`start`)."""

    title: str
    url: str | None = None
    start: Start | None = None

    def to_send_api(self) -> dict[str, Any]:
        if self.url is not None:
            return {"type": "web_url", "url": self.url, "title": self.title}
        assert self.start is not None
        return {"type": "postback", "title": self.title, "payload": self.start.message_text()}

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "url": self.url, "start": self.start.to_dict() if self.start else None}


@dataclass(frozen=True)
class Content:
    """The broadcast's message: an image, a text (a button template when it has buttons), quick replies."""

    text: str | None = None
    image: Mapping[str, str] | None = None  # {"attachment_id": …} (the console's upload) or {"url": "https://…"}
    buttons: tuple[Button, ...] = ()
    quick_replies: tuple[QuickReply, ...] = ()

    def messages(self) -> list[dict[str, Any]]:
        """The Send API `message` objects, in order: the image (if any), then the text (a button template when
        there are buttons); the quick replies ride on the last one."""
        messages: list[dict[str, Any]] = []
        if self.image is not None:
            payload: dict[str, Any] = ({"attachment_id": self.image["attachment_id"]} if "attachment_id" in self.image
                                       else {"url": self.image["url"], "is_reusable": True})
            messages.append({"attachment": {"type": "image", "payload": payload}})
        if self.text is not None:
            if self.buttons:
                messages.append({"attachment": {"type": "template", "payload": {
                    "template_type": "button", "text": self.text,
                    "buttons": [button.to_send_api() for button in self.buttons]}}})
            else:
                messages.append({"text": self.text})
        if self.quick_replies and messages:
            messages[-1]["quick_replies"] = [{"content_type": "text", "title": reply.title,
                                              "payload": reply.payload()} for reply in self.quick_replies]
        return messages

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "image": dict(self.image) if self.image is not None else None,
                "buttons": [button.to_dict() for button in self.buttons],
                "quick_replies": [reply.to_dict() for reply in self.quick_replies]}

    @classmethod
    def from_dict(cls, data: Any) -> Content:
        body = _object(data, "content", "El contenido")
        _no_extra(body, {"text", "image", "buttons", "quick_replies"}, "content.")
        buttons = tuple(_button(raw, f"content.buttons[{index}]")
                        for index, raw in enumerate(_list(body.get("buttons"), "content.buttons", "Los botones")))
        if len(buttons) > BUTTONS_MAX:
            raise _invalid("content.buttons", f"Un mensaje admite como máximo {BUTTONS_MAX} botones.")
        text = None
        if body.get("text") not in (None, ""):
            limit = BUTTON_TEMPLATE_TEXT_MAX_CHARS if buttons else TEXT_MAX_CHARS
            text = _text(body.get("text"), "content.text", "El texto", limit, multiline=True)
        if buttons and text is None:
            raise _invalid("content.text", "Los botones necesitan un texto que los acompañe.")
        image = _image(body.get("image"))
        if text is None and image is None:
            raise _invalid("content.text", "Escriba un texto o adjunte una imagen.")
        replies_raw = _list(body.get("quick_replies"), "content.quick_replies", "Las respuestas rápidas")
        if len(replies_raw) > QUICK_REPLIES_MAX:
            raise _invalid("content.quick_replies",
                           f"Un mensaje admite como máximo {QUICK_REPLIES_MAX} respuestas rápidas.")
        replies = tuple(_quick_reply(raw, f"content.quick_replies[{index}]") for index, raw in enumerate(replies_raw))
        return cls(text=text, image=image, buttons=buttons, quick_replies=replies)


def _image(value: Any) -> Mapping[str, str] | None:
    if value is None:
        return None
    body = _object(value, "content.image", "La imagen")
    _no_extra(body, {"attachment_id", "url"}, "content.image.")
    if ("attachment_id" in body) == ("url" in body):
        raise _invalid("content.image", "La imagen es un archivo subido (attachment_id) o una dirección https://, "
                                        "una de las dos.")
    if "attachment_id" in body:
        attachment_id = body["attachment_id"]
        if not isinstance(attachment_id, str) or not ATTACHMENT_ID_PATTERN.match(attachment_id):
            raise _invalid("content.image.attachment_id", "El archivo subido no es válido; súbalo de nuevo.")
        return MappingProxyType({"attachment_id": attachment_id})
    return MappingProxyType({"url": _https_url(body["url"], "content.image.url")})


def _button(value: Any, field_name: str) -> Button:
    body = _object(value, field_name, "El botón")
    _no_extra(body, {"title", "url", "start"}, f"{field_name}.")
    title = _text(body.get("title"), f"{field_name}.title", "El título del botón", BUTTON_TITLE_MAX_CHARS)
    url = body.get("url")
    start = _start(body.get("start"), f"{field_name}.start")
    if (url in (None, "")) == (start is None):
        raise _invalid(field_name, "Un botón abre una dirección https:// o inicia una intención o entrada de la "
                                   "matriz, una de las dos.")
    if start is not None and len(start.message_text()) > PAYLOAD_MAX_CHARS:
        raise _invalid(f"{field_name}.start", "El inicio del botón es demasiado largo.")
    return Button(title=title, url=_https_url(url, f"{field_name}.url") if start is None else None, start=start)


def _quick_reply(value: Any, field_name: str) -> QuickReply:
    body = _object(value, field_name, "La respuesta rápida")
    _no_extra(body, {"title", "start"}, f"{field_name}.")
    title = _text(body.get("title"), f"{field_name}.title", "El título de la respuesta rápida",
                  QUICK_REPLY_TITLE_MAX_CHARS)
    start = _start(body.get("start"), f"{field_name}.start")
    if start is not None and len(start.message_text()) > PAYLOAD_MAX_CHARS:
        raise _invalid(f"{field_name}.start", "El inicio de la respuesta rápida es demasiado largo.")
    return QuickReply(title=title, start=start)


# --- the draft and the broadcast ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BroadcastDraft:
    """What an admin composes: the page, a name for the list, the message, who gets it, and whether it is
    promotional (offers, discounts: never outside the 24-hour window, never with a tag)."""

    page_id: str
    name: str
    content: Content
    audience: Audience
    promotional: bool = True
    tag: str | None = None  # a message tag the admin claims (the policy decides if it fits)

    @classmethod
    def from_dict(cls, data: Any) -> BroadcastDraft:
        body = _object(data, "body", "El cuerpo")
        _no_extra(body, {"page_id", "name", "content", "audience", "promotional", "tag"}, "")
        page_id = body.get("page_id")
        if not isinstance(page_id, str) or not PAGE_ID_PATTERN.match(page_id):
            raise _invalid("page_id", "El id de la página debe tener solo dígitos (hasta 64).")
        name = _text(body.get("name"), "name", "El nombre de la transmisión", MAX_NAME)
        content = Content.from_dict(body.get("content"))
        audience_body = _object(body.get("audience", {"page_id": page_id}), "audience", "La audiencia")
        if audience_body.get("page_id", page_id) != page_id:
            raise _invalid("audience.page_id", "La audiencia debe ser de la misma página que la transmisión.")
        try:
            audience = Audience.from_dict({**audience_body, "page_id": page_id})
        except ContactInvalid as exc:
            field_name = exc.field if exc.field.startswith("audience") else f"audience.{exc.field}".rstrip(".")
            raise _invalid(field_name, exc.message_es) from exc
        promotional = body.get("promotional", True)
        if not isinstance(promotional, bool):
            raise _invalid("promotional", "«promotional» debe ser true o false.")
        tag = body.get("tag")
        if tag in ("", None):
            tag = None
        elif tag == HUMAN_AGENT_TAG:
            raise _invalid("tag", "La etiqueta HUMAN_AGENT es solo para respuestas que escribe una persona del "
                                  "equipo, nunca para transmisiones.")
        elif not isinstance(tag, str) or tag not in BROADCAST_TAGS:
            raise _invalid("tag", f"La etiqueta de mensaje debe ser una de: {', '.join(sorted(BROADCAST_TAGS))}.")
        if promotional and tag is not None:
            raise _invalid("tag", "El contenido promocional (ofertas, cupones, descuentos) nunca se puede enviar con "
                                  "una etiqueta de mensaje: Meta lo prohíbe y puede restringir la página.")
        return cls(page_id=page_id, name=name, content=content, audience=audience, promotional=promotional, tag=tag)

    def to_dict(self) -> dict[str, Any]:
        return {"page_id": self.page_id, "name": self.name, "content": self.content.to_dict(),
                "audience": self.audience.to_dict(), "promotional": self.promotional, "tag": self.tag}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class Broadcast:
    id: int
    page_id: str
    name: str
    content: Content
    audience: Audience
    promotional: bool
    tag: str | None
    status: BroadcastStatus
    send_at: datetime | None
    created_by: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    cancelled_by: str | None = None

    @property
    def draft(self) -> BroadcastDraft:
        return BroadcastDraft(page_id=self.page_id, name=self.name, content=self.content, audience=self.audience,
                              promotional=self.promotional, tag=self.tag)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, **self.draft.to_dict(), "status": self.status.value,
                "status_es": STATUS_ES[self.status], "send_at": _iso(self.send_at), "created_by": self.created_by,
                "created_at": _iso(self.created_at), "updated_at": _iso(self.updated_at),
                "started_at": _iso(self.started_at), "finished_at": _iso(self.finished_at),
                "cancelled_by": self.cancelled_by}


# --- what the dry run and the report say --------------------------------------------------------------------------


@dataclass(frozen=True)
class DryRun:
    audience: int  # contacts matching the audience
    will_send: int
    outside_window: int  # matching contacts whose 24-hour window is closed (whatever else)
    skipped: dict[str, int]  # reason code → count
    reasons_es: dict[str, str]  # reason code → a Spanish sentence for admins
    estimated_seconds: float  # will_send / page rate
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason → up to 5 display names

    def to_dict(self) -> dict[str, Any]:
        return {"audience": self.audience, "will_send": self.will_send, "outside_window": self.outside_window,
                "skipped": dict(self.skipped), "reasons_es": dict(self.reasons_es),
                "estimated_seconds": round(self.estimated_seconds, 1),
                "examples": {key: list(names) for key, names in self.examples.items()}}


@dataclass(frozen=True)
class Report:
    broadcast: Broadcast
    total: int
    queued: int
    sent: int
    delivered: int
    read: int
    skipped: dict[str, int]
    blocked: dict[str, int]  # blocked by the policy at send time, by reason
    failed: dict[str, int]  # "code 551" etc → count (failed or dead in the outbox)
    retryable: int  # failed ones that may still be sent now (the policy allows)
    reasons_es: dict[str, str] = field(default_factory=dict)  # every reason code above → a Spanish sentence
    partial: int = 0  # not in "sent" but got part of the message (an image, not the text); counted above too

    def to_dict(self) -> dict[str, Any]:
        return {"broadcast": self.broadcast.to_dict(), "total": self.total, "queued": self.queued,
                "sent": self.sent, "delivered": self.delivered, "read": self.read, "skipped": dict(self.skipped),
                "blocked": dict(self.blocked), "failed": dict(self.failed), "retryable": self.retryable,
                "reasons_es": dict(self.reasons_es), "partial": self.partial}


@dataclass(frozen=True)
class RetryResult:
    requeued: int
    still_refused: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"requeued": self.requeued, "still_refused": dict(self.still_refused)}


@dataclass(frozen=True)
class FailedRecipient:
    psid: str
    name: str
    state: RecipientState
    reason_code: str | None
    reason_es: str
    error_code: int | None
    partial: bool = False  # got part of the message (an image, not the text)

    def to_dict(self) -> dict[str, Any]:
        return {"psid": self.psid, "name": self.name, "state": self.state.value, "reason_code": self.reason_code,
                "reason_es": self.reason_es, "error_code": self.error_code, "partial": self.partial}


@dataclass(frozen=True)
class Recipient:
    """One person of a broadcast (the store's row): what was decided for them and what became of it."""

    broadcast_id: int
    page_id: str
    psid: str
    name: str
    state: RecipientState
    position: int = 0  # order among the queued (their send slot at the page's rate)
    reason_code: str | None = None
    error_code: int | None = None
    outbox_ids: tuple[int, ...] = ()
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    read_at: datetime | None = None
    attempt: int = 0
    updated_at: datetime | None = None
    sent_parts: Mapping[int, int] = field(default_factory=dict)  # part → outbox id of the parts already SENT


@dataclass(frozen=True)
class PartsOutcome:
    """What the outbox messages of a recipient's attempt say became of them (`broadcasts.planner.outcome_of`);
    `sent_parts`: part → outbox id of those SENT (a retry never sends them again)."""

    state: RecipientState
    reason_code: str | None = None
    error_code: int | None = None
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    read_at: datetime | None = None
    sent_parts: Mapping[int, int] = field(default_factory=dict)
