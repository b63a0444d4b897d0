"""Parsing of Messenger webhook deliveries into typed events.

Pure functions over Meta's documented shapes. Unknown fields and unknown event kinds are
kept (`raw`), never fatal: a new webhook field must not break the bot. A field we read that has
the wrong shape (`text: 5`, `attachments: 7`, a message without a sender) is refused here, before
anything is stored, so no stored event can fail later because of its shape:

- the envelope (not JSON, not an object, `object` not "page", `entry`/`messaging`/`standby` not lists,
  an entry that is not an object or has no page id, nesting deeper than `MAX_NESTING_DEPTH`, a number
  that is not finite or longer than `MAX_INTEGER_DIGITS`, text that is not valid Unicode) refuses the
  whole body (`WebhookPayloadError`, answered 400);
- one malformed item among well-formed ones is skipped and reported (`ParsedWebhook.skipped`, logged),
  the others are kept: the body is Meta's, signed, and refusing it would lose the good items with it;
- a body whose every item is malformed is refused (400).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from core.settings import PAGE_INBOX_APP_ID
from meta.feed import FeedChange, MalformedChangeError, is_feed_change, parse_feed_value


class WebhookPayloadError(ValueError):
    """The body is not a Messenger page webhook; answered with 400."""


class MalformedItemError(WebhookPayloadError):
    """One `messaging`/`standby` item has a field we read in the wrong shape: the item is skipped."""


# Meta's deepest documented item (an echoed generic template) nests about 10 levels.
MAX_NESTING_DEPTH = 32
# Ids and millisecond timestamps fit in 64 bits (at most 20 digits); longer numbers are not Meta's.
MAX_INTEGER_DIGITS = 20
# Millisecond timestamps: anything past this (year ~287,000) is not a time.
MAX_TIMESTAMP_MS = 2**53


class EventKind(str, Enum):
    MESSAGE = "message"
    POSTBACK = "postback"
    REFERRAL = "referral"
    ECHO = "echo"
    DELIVERY = "delivery"
    READ = "read"
    REACTION = "reaction"
    HANDOVER = "handover"
    FEEDBACK = "feedback"  # `messaging_feedback`: the person submitted Meta's customer feedback template
    UNKNOWN = "unknown"


# What opens the 24-hour window: the user's own actions (not echoes, receipts or standby noise).
WINDOW_OPENING_KINDS = (EventKind.MESSAGE, EventKind.POSTBACK, EventKind.REFERRAL, EventKind.REACTION)
# Rasa reads text starting with "/" as a command (`/intent{"entity": …}`, regardless of its NLU). What a user types is
# their words, never a command; a payload (our own buttons) may name an intent, but never Rasa's conversation controls,
# which answer nothing (`/back` undoes the user's turn silently, `/restart` forgets the conversation).
_RASA_COMMAND = re.compile(r"^\s*/+\s*([^\s{@]*)")
RASA_CONTROL_INTENTS = frozenset({"restart", "back", "session_start"})
_HANDOVER_KEYS = ("pass_thread_control", "take_thread_control", "request_thread_control", "app_roles")
THUMBS_UP_STICKER_IDS = {369239263222822, 369239343222814, 369239383222810}

# The satisfaction question asked with quick replies (csat/): each option's payload is `/csat{"score":N}`, N 1 to 5.
# The person's tap is for the app's ratings, not for Rasa (`InboundEvent.is_feedback`).
CSAT_SCORES = range(1, 6)
_CSAT_PAYLOAD = re.compile(r'^/csat\{"score":\s*([1-5])\}$')
# Meta's free-form answer holds at most 400 characters; longer text is not Meta's and is cut.
FEEDBACK_TEXT_MAX_CHARS = 400


def csat_payload(score: int) -> str:
    """The quick reply payload of one rating option."""
    if score not in CSAT_SCORES:
        raise ValueError(f"a rating is 1 to 5, not {score!r}")
    return '/csat{"score":' + str(score) + "}"


def csat_score_of(payload: str | None) -> int | None:
    """The rating a quick reply payload carries (None: not a rating)."""
    match = _CSAT_PAYLOAD.match(payload or "")
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class FeedbackAnswer:
    """One answered question of Meta's customer feedback template (`feedback_screens[].questions{id: …}`): the
    question id we set when asking, its type (csat, nps, ces, free_form), the score as Meta sends it (text) and the
    optional free-form text (`follow_up.payload`)."""

    question_id: str
    type: str
    payload: str
    follow_up: str | None = None

    @property
    def score(self) -> int | None:
        """The score as a number (None: not a whole number, e.g. a free_form question)."""
        text = self.payload.strip()
        return int(text) if text.isdigit() and len(text) <= 3 else None

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
    watermark_ms: int | None = None  # a receipt's: everything the page sent up to this time was delivered / read
    mids: tuple[str, ...] = ()  # a delivery receipt's: the messages delivered (Meta may leave it out)
    feedback: tuple[FeedbackAnswer, ...] = ()  # a FEEDBACK event's answers (`messaging_feedback`)

    @property
    def csat_score(self) -> int | None:
        """A tap on one of the satisfaction quick replies: its rating (None: any other event)."""
        return csat_score_of(self.payload) if self.kind is EventKind.MESSAGE else None

    @property
    def is_feedback(self) -> bool:
        """A rating for the app (Meta's feedback template submitted, or a satisfaction quick reply tapped): journaled
        for the app (the journal's `notice_pending`), never a turn of Rasa."""
        return bool(self.user_id) and (self.kind is EventKind.FEEDBACK or self.csat_score is not None)

    @property
    def is_receipt(self) -> bool:
        """Meta's delivery or read receipt of what the page sent to this person."""
        return self.kind in (EventKind.DELIVERY, EventKind.READ) and bool(self.user_id)

    def watermark(self) -> datetime | None:
        """The receipt's watermark as an aware UTC time (None: none given)."""
        if self.watermark_ms is None:
            return None
        return datetime.fromtimestamp(self.watermark_ms / 1000, tz=timezone.utc)

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
        """Whether Rasa should see it: what the user said or clicked, while we own the thread (a rating goes to the
        app instead)."""
        return not self.standby and self.kind in (EventKind.MESSAGE, EventKind.POSTBACK) and not self.is_feedback

    @property
    def opens_window(self) -> bool:
        """A user acting opens Meta's 24-hour window, whoever holds the thread."""
        return self.kind in WINDOW_OPENING_KINDS and bool(self.user_id)

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
        """The text Rasa parses: a quick reply or postback payload wins over the shown text. Typed text and titles
        never reach Rasa as a `/command`, payloads never as one of Rasa's conversation controls."""
        if self.payload:
            command = _RASA_COMMAND.match(self.payload)
            if command is None or command.group(1) not in RASA_CONTROL_INTENTS:
                return self.payload
            return as_words(self.payload)
        if self.text:
            return as_words(self.text)
        if self.kind is EventKind.POSTBACK and self.title:
            return as_words(self.title)
        return attachments_surrogate(self.attachments)

    def metadata(self) -> dict[str, Any]:
        """What travels with the message into Rasa's tracker (`UserUttered.metadata`, and Rasa's
        `session_started_metadata` slot): only what the actions and the console read (the page; what the console
        shows and the handoff transcript keeps). Every tracker load and save carries it, so the rest stays in the
        ingest journal's event JSON: the mid is the UserUttered's `message_id`, Meta's timestamp the journal's, and
        the kind is said only when it is not a plain message."""
        data: dict[str, Any] = {"page_id": self.page_id}
        if self.kind is not EventKind.MESSAGE:
            data["kind"] = self.kind.value
        if self.payload:
            data["payload"] = self.payload
        if self.title:
            data["title"] = self.title
        if self.text and (self.payload or self.user_text() != self.text):
            data["shown_text"] = self.text  # what the console shows: a quick reply's title, a typed "/restart"
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


def as_words(text: str) -> str:
    """Text Rasa will not read as a `/command`: the leading slashes go ("/restart" → "restart"); a text of only
    slashes is no command and stays."""
    if not _RASA_COMMAND.match(text):
        return text
    words = text.strip().lstrip("/").strip()
    return words or text


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
            coordinates = payload.get("coordinates")
            if isinstance(coordinates, Mapping) and "lat" in coordinates and "long" in coordinates:
                label = f"{label} {coordinates['lat']},{coordinates['long']}"
        parts.append(f"[{label}]")
    return " ".join(parts) if parts else "[mensaje vacío]"


def _object_field(container: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any] | None:
    value = container.get(key)
    if value is None or isinstance(value, Mapping):
        return value
    raise MalformedItemError(f"{where}{key} is not an object")


def _text_field(container: Mapping[str, Any], key: str, where: str) -> str | None:
    value = container.get(key)
    if value is None or isinstance(value, str):
        return value
    raise MalformedItemError(f"{where}{key} is not a string")


def _id_field(container: Mapping[str, Any], key: str, where: str) -> str | None:
    """Ids, payloads and titles: a string, or an integer (Meta sends app ids as numbers)."""
    value = container.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise MalformedItemError(f"{where}{key} is not a string or an integer")


def _party_id(item: Mapping[str, Any], key: str) -> str:
    """`sender`/`recipient`: a PSID, or a `user_ref` (chat plugin); absent gives ''."""
    party = _object_field(item, key, "")
    if party is None:
        return ""
    return _id_field(party, "id", f"{key}.") or _id_field(party, "user_ref", f"{key}.") or ""


def _timestamp_ms(item: Mapping[str, Any]) -> int:
    """`timestamp`, or an entry's own `time` (an entry without items is kept as one UNKNOWN event)."""
    key = "timestamp" if item.get("timestamp") is not None else "time"
    value = item.get(key)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TIMESTAMP_MS:
        raise MalformedItemError(f"{key} is not a time in milliseconds")
    return value


def _watermark_ms(receipt: Mapping[str, Any]) -> int | None:
    """A receipt's `watermark` (milliseconds): absent or of a wrong shape gives None. The field alone is ignored,
    not the receipt: a delivery still names its `mids`, and a receipt without a watermark marks nothing else."""
    value = receipt.get("watermark")
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TIMESTAMP_MS:
        return None
    return value


def _mids(delivery: Mapping[str, Any]) -> tuple[str, ...]:
    """A delivery's `mids`: absent gives (); not a list refuses the item; an entry that is not an id is left out
    (the watermark still covers it)."""
    value = delivery.get("mids")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise MalformedItemError("delivery.mids is not a list")
    return tuple(mid for mid in value if isinstance(mid, str) and mid)


def _attachments(message: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    value = message.get("attachments")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise MalformedItemError("message.attachments is not a list")
    # An attachment that is not an object is left out: the others still stand for the message.
    return tuple(a for a in value if isinstance(a, Mapping))


def _feedback_answers(feedback: Mapping[str, Any]) -> tuple[FeedbackAnswer, ...]:
    """`messaging_feedback.feedback_screens[].questions{id: {type, payload, follow_up{type, payload}}}` (Meta's
    documented shape). A screen or answer in another shape refuses the item; one without answers gives ()."""
    screens = feedback.get("feedback_screens")
    if screens is None:
        return ()
    if not isinstance(screens, list):
        raise MalformedItemError("messaging_feedback.feedback_screens is not a list")
    answers: list[FeedbackAnswer] = []
    for screen in screens:
        if not isinstance(screen, Mapping):
            raise MalformedItemError("a feedback screen is not an object")
        questions = _object_field(screen, "questions", "feedback_screens[].")
        for question_id, answer in (questions or {}).items():
            where = "feedback_screens[].questions[]."
            if not isinstance(answer, Mapping):
                raise MalformedItemError(f"{where[:-1]} is not an object")
            follow_up = _object_field(answer, "follow_up", where)
            text = _text_field(follow_up, "payload", where + "follow_up.") if follow_up is not None else None
            answers.append(FeedbackAnswer(
                question_id=str(question_id)[:200],
                type=(_text_field(answer, "type", where) or "")[:40],
                payload=(_id_field(answer, "payload", where) or "")[:40],
                follow_up=text[:FEEDBACK_TEXT_MAX_CHARS] if text else None,
            ))
    return tuple(answers)


def _needs(user_id: str, party: str, kind: EventKind) -> str:
    """What Rasa, the window or a handoff acts on needs its user: refused here, not failed later."""
    if not user_id:
        raise MalformedItemError(f"a {kind.value} without a {party} id")
    return user_id


def parse_messaging_item(item: Mapping[str, Any], page_id: str, standby: bool = False) -> InboundEvent:
    """One `messaging` item → an event; unrecognised items become UNKNOWN, keeping `raw`.
    Raises `MalformedItemError` when a field we read has the wrong shape."""
    if not isinstance(item, Mapping):
        raise MalformedItemError("an item is not an object")
    sender = _party_id(item, "sender")
    recipient = _party_id(item, "recipient")
    base: dict[str, Any] = {"page_id": page_id, "timestamp_ms": _timestamp_ms(item), "raw": item, "standby": standby}
    message = _object_field(item, "message", "")
    if message is not None:
        attachments = _attachments(message)
        text = _text_field(message, "text", "message.")
        mid = _id_field(message, "mid", "message.")
        if message.get("is_echo"):
            # The page sent it: the user is the recipient.
            return InboundEvent(
                EventKind.ECHO,
                user_id=_needs(recipient, "recipient", EventKind.ECHO),
                mid=mid,
                text=text,
                attachments=attachments,
                app_id=_id_field(message, "app_id", "message."),
                **base,
            )
        quick_reply = _object_field(message, "quick_reply", "message.")
        return InboundEvent(
            EventKind.MESSAGE,
            user_id=_needs(sender, "sender", EventKind.MESSAGE),
            mid=mid,
            text=text,
            payload=_id_field(quick_reply, "payload", "message.quick_reply.") if quick_reply else None,
            attachments=attachments,
            referral=_object_field(message, "referral", "message."),
            **base,
        )
    postback = _object_field(item, "postback", "")
    if postback is not None:
        return InboundEvent(
            EventKind.POSTBACK,
            user_id=_needs(sender, "sender", EventKind.POSTBACK),
            mid=_id_field(postback, "mid", "postback."),
            payload=_id_field(postback, "payload", "postback."),
            title=_id_field(postback, "title", "postback."),
            referral=_object_field(postback, "referral", "postback."),
            **base,
        )
    referral = _object_field(item, "referral", "")
    if referral is not None:
        return InboundEvent(
            EventKind.REFERRAL, user_id=_needs(sender, "sender", EventKind.REFERRAL), referral=referral, **base
        )
    delivery = _object_field(item, "delivery", "")
    if delivery is not None:
        return InboundEvent(
            EventKind.DELIVERY,
            user_id=sender,
            watermark_ms=_watermark_ms(delivery),
            mids=_mids(delivery),
            **base,
        )
    read = _object_field(item, "read", "")
    if read is not None:
        return InboundEvent(EventKind.READ, user_id=sender, watermark_ms=_watermark_ms(read), **base)
    reaction = _object_field(item, "reaction", "")
    if reaction is not None:
        return InboundEvent(
            EventKind.REACTION,
            user_id=_needs(sender, "sender", EventKind.REACTION),
            mid=_id_field(reaction, "mid", "reaction."),
            **base,
        )
    feedback = _object_field(item, "messaging_feedback", "")
    if feedback is not None:
        return InboundEvent(
            EventKind.FEEDBACK,
            user_id=_needs(sender, "sender", EventKind.FEEDBACK),
            feedback=_feedback_answers(feedback),
            **base,
        )
    if any(key in item for key in _HANDOVER_KEYS):
        return InboundEvent(EventKind.HANDOVER, user_id=sender, **base)
    return InboundEvent(EventKind.UNKNOWN, user_id=sender, **base)


@dataclass(frozen=True)
class SkippedItem:
    """A malformed item left out of a delivery: where it was and why (logged, never stored)."""

    entry_index: int
    list_name: str  # "messaging", "standby", "changes" (a feed change), or "entry" for an entry without items
    item_index: int
    reason: str


@dataclass(frozen=True)
class ParsedWebhook:
    events: tuple[InboundEvent, ...]
    skipped: tuple[SkippedItem, ...] = ()
    changes: tuple[FeedChange, ...] = ()  # the entries' `feed` changes (comments, visitor posts), meta.feed


def _item_list(entry: Mapping[str, Any], key: str) -> list[Any]:
    value = entry.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise WebhookPayloadError(f"an entry's {key} is not a list")
    return value


def _entry_page_id(entry: Mapping[str, Any]) -> str:
    page_id = entry.get("id")
    if isinstance(page_id, bool) or not isinstance(page_id, (str, int)) or page_id in ("", None):
        raise WebhookPayloadError("an entry has no page id")
    return str(page_id)


def read_webhook(body: Any) -> ParsedWebhook:
    """Every entry and every item, in delivery order; `standby` items are marked as such; an entry's `feed`
    changes go to `changes` (an entry whose changes are all `feed` ones is no UNKNOWN event); malformed
    items and changes are skipped and reported. Raises `WebhookPayloadError` for a malformed envelope, and when
    items were sent but none of them is usable."""
    if not isinstance(body, Mapping):
        raise WebhookPayloadError("the body is not a JSON object")
    if body.get("object") != "page":
        raise WebhookPayloadError(f"object is {str(body.get('object'))[:40]!r}, expected 'page'")
    entries = body.get("entry")
    if not isinstance(entries, list):
        raise WebhookPayloadError("entry is missing or not a list")
    events: list[InboundEvent] = []
    changes: list[FeedChange] = []
    skipped: list[SkippedItem] = []
    for entry_index, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise WebhookPayloadError("an entry is not an object")
        page_id = _entry_page_id(entry)
        lists = [("messaging", _item_list(entry, "messaging")), ("standby", _item_list(entry, "standby"))]
        entry_changes = entry.get("changes")
        feed_only = False
        if isinstance(entry_changes, list):
            feed_only = bool(entry_changes) and all(is_feed_change(change) for change in entry_changes)
            for change_index, change in enumerate(entry_changes):
                if not is_feed_change(change):
                    continue
                try:
                    changes.append(parse_feed_value(change.get("value"), page_id))
                except MalformedChangeError as exc:
                    skipped.append(SkippedItem(entry_index, "changes", change_index, str(exc)))
        if not lists[0][1] and not lists[1][1] and not feed_only:
            # e.g. `changes` of another field than `feed`: kept for later features, not fatal.
            # Parsed like an item so that `from_dict(to_dict())` rebuilds the same event.
            lists = [("entry", [entry])]
        for list_name, items in lists:
            for item_index, item in enumerate(items):
                try:
                    events.append(parse_messaging_item(item, page_id, standby=list_name == "standby"))
                except MalformedItemError as exc:
                    skipped.append(SkippedItem(entry_index, list_name, item_index, str(exc)))
    if skipped and not events and not changes:
        raise WebhookPayloadError(f"no usable item ({skipped[0].reason})")
    return ParsedWebhook(tuple(events), tuple(skipped), tuple(changes))


def parse_webhook(body: Any) -> list[InboundEvent]:
    """The usable events of a decoded body (see `read_webhook` for what is skipped or refused)."""
    return list(read_webhook(body).events)


def _bounded_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INTEGER_DIGITS:
        raise WebhookPayloadError(f"a number has more than {MAX_INTEGER_DIGITS} digits")
    return int(digits)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise WebhookPayloadError("a number is too large")
    return value


def _no_constant(name: str) -> Any:
    raise WebhookPayloadError(f"{name} is not JSON")


def _check_nesting(body: Any) -> None:
    """Iterative, so a deep body cannot exhaust the stack here (or later in `json.dumps`)."""
    stack: list[tuple[Any, int]] = [(body, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Iterable[Any] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_NESTING_DEPTH:
            raise WebhookPayloadError(f"the body nests deeper than {MAX_NESTING_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)


def decode_webhook(raw: bytes) -> ParsedWebhook:
    """Raw body → events: what the webhook stores is exactly what this accepts."""
    try:
        body = json.loads(raw, parse_int=_bounded_int, parse_float=_finite_float, parse_constant=_no_constant)
    except RecursionError as exc:
        raise WebhookPayloadError(f"the body nests deeper than {MAX_NESTING_DEPTH} levels") from exc
    except WebhookPayloadError:
        raise
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise WebhookPayloadError(f"not JSON ({type(exc).__name__})") from exc
    _check_nesting(body)
    try:
        # Lone surrogates (`"\ud800"`) decode but cannot be stored as UTF-8.
        json.dumps(body, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise WebhookPayloadError("the body has text that is not valid Unicode") from exc
    return read_webhook(body)
