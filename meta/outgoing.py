"""Translate one Rasa bot response into Messenger Send API `message` objects within Meta's limits.

Pure: no I/O, no clock. `build_messages` returns an `Outgoing` value with the messages to send
in order and one warning per adjustment, so the caller logs every change (nothing is adjusted
silently). Rasa 3.6's own Facebook channel never splits text over 2000 characters, drops every
button when there are more than 3 and never checks quick replies; everything here is lossless
instead: text is split, options are regrouped, long titles are shortened with "…" (payload kept).

What cannot be represented at all (a button without a title, a payload over 1000 characters, a
phone button without a number, ...) raises `OutgoingMessageError` naming the field.

Imported inside the Rasa process (Python 3.10): standard library only.
"""

from __future__ import annotations

import copy
import json
import posixpath
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from meta.errors import MessengerError
from meta.limits import (
    BUTTON_TEMPLATE_TEXT_MAX_CHARS,
    BUTTON_TITLE_MAX_CHARS,
    BUTTONS_MAX,
    ELEMENT_BUTTONS_MAX,
    ELEMENT_SUBTITLE_MAX_CHARS,
    ELEMENT_TITLE_MAX_CHARS,
    GENERIC_ELEMENTS_MAX,
    PAYLOAD_MAX_CHARS,
    QUICK_REPLIES_MAX,
    QUICK_REPLY_TITLE_MAX_CHARS,
    TEXT_MAX_CHARS,
)

# Lead-in of the extra button templates when options do not fit in one (the bot speaks Spanish).
CONTINUATION_TEXT = "Más opciones:"
ELLIPSIS = "…"

# Optional keys Meta accepts on a URL button (and on an element's default_action).
_WEB_URL_OPTIONS = ("webview_height_ratio", "messenger_extensions", "fallback_url", "webview_share_button")
_ELEMENT_KEYS = frozenset({"title", "subtitle", "image_url", "image", "default_action", "buttons"})
_SPECIAL_QUICK_REPLIES = frozenset({"user_email", "user_phone_number"})
_ATTACHMENT_TYPE_BY_EXTENSION = {
    **dict.fromkeys(("jpg", "jpeg", "png", "gif", "webp", "bmp"), "image"),
    **dict.fromkeys(("mp4", "mov", "m4v", "webm", "3gp", "avi"), "video"),
    **dict.fromkeys(("mp3", "m4a", "aac", "wav", "ogg", "oga", "opus", "amr"), "audio"),
}


class OutgoingMessageError(MessengerError, ValueError):
    """The response cannot be represented as Messenger messages at all; `field` says where."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field


@dataclass(frozen=True)
class Outgoing:
    """The Send API `message` objects to send in this order, and what was adjusted to get them."""

    messages: tuple[dict[str, Any], ...]
    warnings: tuple[str, ...] = ()


def typing_action(on: bool) -> dict[str, Any]:
    """Body of a typing indicator request (add the recipient to send it)."""
    return {"sender_action": "typing_on" if on else "typing_off"}


def mark_seen_action() -> dict[str, Any]:
    return {"sender_action": "mark_seen"}


# --- splitting text ------------------------------------------------------------------------

# Whitespace a piece may end with: "\s" minus the no-break spaces, which say "do not break here".
_BREAKABLE_SPACE = r"[^\S\xa0\u2007\u202f]"
_PARAGRAPH_BREAK = re.compile(r"(?:\n[^\S\n]*\n|\u2029)\s*")
_LINE_BREAK = re.compile(r"[\n\r\x0b\x0c\x85\u2028]\s*")
# . ! ? … (possibly repeated, possibly closed by quotes or brackets) then a space, or directly an
# opening ¿ / ¡ ("¡Hola!¿Qué tal?"). ¿ and ¡ open a sentence, so they are never treated as its end.
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’»)\]]*(?:" + _BREAKABLE_SPACE + r"+|(?=[¿¡]))")
_WORD_BREAK = re.compile(_BREAKABLE_SPACE + "+")
_PREFERRED_BREAKS = (_PARAGRAPH_BREAK, _LINE_BREAK, _SENTENCE_END, _WORD_BREAK)

_ZERO_WIDTH_JOINER = "\u200d"
_ZERO_WIDTH_NON_JOINER = "\u200c"


def split_text(text: str, limit: int = TEXT_MAX_CHARS) -> list[str]:
    """Cut `text` into pieces of at most `limit` characters, losing and reordering nothing.

    `"".join(split_text(t)) == t` always holds, every piece is non-empty, and separators stay at
    the end of the piece they close. Each piece is as long as possible, cut at the last paragraph
    break (blank line) that fits, else the last line break, else the last sentence end, else the
    last space, else anywhere; never inside a user-perceived character (surrogate pair, base +
    combining marks, emoji ZWJ sequence, flag, CR LF) unless one such character is longer than
    `limit` by itself.

    Whitespace-only pieces (Meta rejects them) are avoided: every piece is cut so that it keeps
    some non-whitespace, and so that the last one is not only trailing whitespace. That is
    guaranteed (property-tested) when 2 × the longest whitespace run + the longest user-perceived
    character ≤ `limit`. Otherwise one can be left where no cut avoids it, e.g. a run of more than
    2 × (`limit` - 1) spaces between two words: its middle fits in no piece with a word, and it
    cannot be dropped without breaking the join. `build_messages` strips the edges of every
    message, so such a piece is never sent.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    if not text:
        return []
    length = len(text)
    last_content = _last_content_index(text)
    pieces: list[str] = []
    start = 0
    while length - start > limit:
        end = start + limit
        first_content = _first_content_index(text, start, end)
        # Keep some content in this piece (none if the window is a whitespace run of at least
        # `limit`: see above), and leave some for the last one; but never at the price of cutting
        # a user-perceived character in two.
        lowest = start + 1 if first_content is None else first_content + 1
        cut = _best_cut(text, start, lowest, end)
        if not _is_break_allowed(text, cut):
            fallback = _best_cut(text, start, start + 1, end)
            cut = fallback if _is_break_allowed(text, fallback) else cut
        if first_content is not None and first_content < last_content < cut:
            capped = _best_cut(text, start, lowest, last_content)
            cut = capped if _is_break_allowed(text, capped) else cut
        pieces.append(text[start:cut])
        start = cut
    pieces.append(text[start:])
    return pieces


def split_tail(text: str, limit: int) -> tuple[str, str]:
    """`(head, tail)` with `head + tail == text` and the longest tail of at most `limit` characters
    that starts at the strongest kind of break (as in `split_text`), so a button template can carry
    the closing paragraph or sentences of a long text, right above its buttons."""
    if len(text) <= limit:
        return "", text
    last_content = _last_content_index(text)
    first_content = _first_content_index(text, 0, len(text))
    if first_content is None or first_content == last_content:
        cut = _hard_cut(text, len(text) - limit, len(text) - 1, earliest=True)
    else:
        lowest = max(len(text) - limit, first_content + 1)
        cut = _best_cut(text, 0, lowest, max(lowest, last_content), earliest=True)
    return text[:cut], text[cut:]


def _best_cut(text: str, start: int, lowest: int, highest: int, *, earliest: bool = False) -> int:
    """The last (or first) preferred break in [lowest, highest], trying the strongest kind first."""
    search_end = min(len(text), highest + 1)  # see the whitespace run of a separator that ends there
    for pattern in _PREFERRED_BREAKS:
        best = None
        for match in pattern.finditer(text, start, search_end):
            cut = min(match.end(), highest)
            # The separator stays (at least partly) at the end of the piece it closes.
            if cut > match.start() and cut >= lowest and _is_break_allowed(text, cut):
                best = cut
                if earliest:
                    return best
        if best is not None:
            return best
    return _hard_cut(text, lowest, highest, earliest=earliest)


def _hard_cut(text: str, lowest: int, highest: int, *, earliest: bool = False) -> int:
    candidates = range(lowest, highest + 1) if earliest else range(highest, lowest - 1, -1)
    for cut in candidates:
        if _is_break_allowed(text, cut):
            return cut
    return lowest if earliest else highest  # one user-perceived character longer than the limit


def _first_content_index(text: str, start: int, end: int) -> int | None:
    for index in range(start, end):
        if not text[index].isspace():
            return index
    return None


def _last_content_index(text: str) -> int:
    for index in range(len(text) - 1, -1, -1):
        if not text[index].isspace():
            return index
    return -1


def _is_break_allowed(text: str, index: int) -> bool:
    """False inside a user-perceived character (an approximation of Unicode grapheme clusters)."""
    if index <= 0 or index >= len(text):
        return True
    before, after = text[index - 1], text[index]
    if before == "\r" and after == "\n":
        return False
    if "\ud800" <= before <= "\udbff" and "\udc00" <= after <= "\udfff":
        return False
    if after in (_ZERO_WIDTH_JOINER, _ZERO_WIDTH_NON_JOINER) or before == _ZERO_WIDTH_JOINER:
        return False
    if unicodedata.category(after) in ("Mn", "Me", "Mc"):  # combining marks, variation selectors, keycap
        return False
    code = ord(after)
    if 0x1F3FB <= code <= 0x1F3FF or 0xE0020 <= code <= 0xE007F:  # skin tone modifiers, emoji tag sequences
        return False
    if 0x1160 <= code <= 0x11FF or 0xD7B0 <= code <= 0xD7FF:  # Hangul vowel and final jamo
        return False
    if _is_regional_indicator(before) and _is_regional_indicator(after):
        run = 0
        position = index - 1
        while position >= 0 and _is_regional_indicator(text[position]):
            run += 1
            position -= 1
        return run % 2 == 0  # flags are pairs: break only between two complete pairs
    return True


def _is_regional_indicator(char: str) -> bool:
    return 0x1F1E6 <= ord(char) <= 0x1F1FF


def shorten(value: str, limit: int) -> str:
    """`value` if it fits, else a prefix ending in "…" of at most `limit` characters.

    The cut prefers a word boundary (if that keeps at least half) and never splits a
    user-perceived character.
    """
    if len(value) <= limit:
        return value
    room = limit - len(ELLIPSIS)
    if room < 1:
        return value[:limit]
    cut = _hard_cut(value, 1, room)
    head = value[:cut]
    if not value[cut].isspace():
        spaces = [match.start() for match in _WORD_BREAK.finditer(head)]
        if spaces and spaces[-1] >= limit // 2:
            head = head[: spaces[-1]]
    head = head.rstrip().rstrip(",;:-–—").rstrip() or value[:cut]
    return head + ELLIPSIS


# --- building messages ---------------------------------------------------------------------


def build_messages(response: Mapping[str, Any], *, continuation_text: str = CONTINUATION_TEXT) -> Outgoing:
    """The Messenger messages for one Rasa response, as `OutputChannel.send_response` receives it.

    Order follows Rasa's `send_response`: text (with its buttons), custom, image, attachment,
    elements. Keys other than text, quick_replies, buttons, custom, image, attachment and
    elements are Rasa metadata and are ignored. Whitespace at the edges of a text is not sent
    (Messenger does not show it).

    - text over 2000 characters: several text messages, cut by `split_text`.
    - buttons (postback, web_url, phone_number): button templates of at most 3 buttons, in order.
      The first carries the text (if it is over 640 characters, the beginning goes first as text
      messages and the template carries the last part); the others carry `continuation_text`.
    - quick replies attach to the last message of the response: for a text-only response that is
      the last text chunk. Messenger dismisses quick replies as soon as a newer message arrives,
      so attaching them to an earlier message would hide them.
    - more than 13 quick replies: all text quick replies become postback buttons (after any
      buttons) in button templates of 3. Keeping 13 as quick replies would not be lossless in
      practice: the overflow templates would be sent after them and dismiss them, or before the
      question, out of order. Postbacks carry the same payloads, so the bot sees the same intents.
      "user_email" / "user_phone_number" quick replies stay quick replies on the last message.
    - titles over 20 characters (80 for element titles and subtitles) are shortened with "…";
      the payload is kept, so the meaning is preserved.
    - elements: generic templates of at most 10 elements. An element's buttons past 3 follow
      that template as button templates whose text is the element's title.
    - image: an image attachment by URL (`is_reusable`); attachment: a URL becomes a media
      attachment (type guessed from the file extension, "file" otherwise), a dict is passed
      through, as the attachment (`{"type", "payload"}`) or as a whole message (`{"attachment"}`).
    - custom is passed through unchanged when it is a Messenger message: a dict with "text" or
      "attachment" (Rasa's convention: custom is the `message` object), a Send API body
      `{"message": {...}}` (its message is used; recipient and messaging type are the caller's),
      or a list of those. Any other custom payload is not sent to Messenger and is reported.
    """
    if not continuation_text.strip() or len(continuation_text) > BUTTON_TEMPLATE_TEXT_MAX_CHARS:
        raise ValueError("continuation_text must be a non-blank button template text")
    report: list[str] = []
    messages: list[dict[str, Any]] = []
    passthrough: set[int] = set()  # indexes of messages passed through as given, never modified

    text = _text(response.get("text"))
    buttons = [
        _button(raw, f"buttons[{index}]", report)
        for index, raw in enumerate(_items(response.get("buttons"), "buttons"))
    ]
    quick_replies = [
        _quick_reply(raw, f"quick_replies[{index}]", report)
        for index, raw in enumerate(_items(response.get("quick_replies"), "quick_replies"))
    ]
    text_quick_replies = [reply for reply in quick_replies if reply["content_type"] == "text"]
    if len(text_quick_replies) > QUICK_REPLIES_MAX:
        report.append(
            f"quick_replies: {len(text_quick_replies)} options exceed {QUICK_REPLIES_MAX}; "
            "all sent as postback buttons in button templates"
        )
        buttons += [_quick_reply_as_button(reply) for reply in text_quick_replies]
        quick_replies = [reply for reply in quick_replies if reply["content_type"] != "text"]
    if len(quick_replies) > QUICK_REPLIES_MAX:
        raise OutgoingMessageError("quick_replies", f"more than {QUICK_REPLIES_MAX} email / phone number requests")

    if buttons:
        if not text:
            raise OutgoingMessageError("text", "buttons need a text to go with them (Meta's button template)")
        messages += _text_with_buttons(text, buttons, continuation_text, report)
    elif text:
        messages += _text_messages(text, report)

    for message in _custom_messages(response.get("custom"), report):
        passthrough.add(len(messages))
        messages.append(message)
    if response.get("image"):
        messages.append(_media_message("image", _url(response["image"], "image")))
    if response.get("attachment"):
        attachment = response["attachment"]
        if isinstance(attachment, Mapping) and "attachment" in attachment:  # a whole message: not modified
            passthrough.add(len(messages))
        messages.append(_attachment_message(attachment))
    elements = [
        _element(raw, f"elements[{index}]", report)
        for index, raw in enumerate(_items(response.get("elements"), "elements"))
    ]
    messages += _generic_templates(elements, report)

    if quick_replies:
        _attach_quick_replies(messages, passthrough, quick_replies, report)
    return Outgoing(messages=tuple(messages), warnings=tuple(report))


def _text_messages(text: str, report: list[str]) -> list[dict[str, Any]]:
    chunks = _chunks(text, TEXT_MAX_CHARS)
    if len(chunks) > 1:
        report.append(f"text: {len(text)} characters sent as {len(chunks)} messages of at most {TEXT_MAX_CHARS}")
    return [{"text": chunk} for chunk in chunks]


def _chunks(text: str, limit: int) -> list[str]:
    """`split_text` pieces without their edge whitespace, which Messenger does not show anyway."""
    return [piece.strip() for piece in split_text(text, limit) if not piece.isspace()]


def _text_with_buttons(
    text: str, buttons: list[dict[str, Any]], continuation_text: str, report: list[str]
) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if len(text) > BUTTON_TEMPLATE_TEXT_MAX_CHARS:
        report.append(
            f"text: {len(text)} characters exceed the button template's {BUTTON_TEMPLATE_TEXT_MAX_CHARS}; "
            "the beginning is sent first as text messages, the template carries the last part"
        )
        lead, text = split_tail(text, BUTTON_TEMPLATE_TEXT_MAX_CHARS)
        messages += [{"text": chunk} for chunk in _chunks(lead, TEXT_MAX_CHARS)]
        text = text.strip()
    groups = _groups(buttons, BUTTONS_MAX)
    if len(groups) > 1:
        report.append(
            f"buttons: {len(buttons)} buttons sent as {len(groups)} button templates of at most {BUTTONS_MAX}"
        )
    messages.append(_button_template(text, groups[0]))
    messages += [_button_template(continuation_text, group) for group in groups[1:]]
    return messages


def _button_template(text: str, buttons: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "attachment": {
            "type": "template",
            "payload": {"template_type": "button", "text": text, "buttons": buttons},
        }
    }


def _generic_templates(
    elements: list[tuple[dict[str, Any], list[dict[str, Any]]]], report: list[str]
) -> list[dict[str, Any]]:
    groups = _groups(elements, GENERIC_ELEMENTS_MAX)
    if len(groups) > 1:
        report.append(
            f"elements: {len(elements)} elements sent as {len(groups)} generic templates of at most "
            f"{GENERIC_ELEMENTS_MAX}"
        )
    messages: list[dict[str, Any]] = []
    for group in groups:
        messages.append(
            {
                "attachment": {
                    "type": "template",
                    "payload": {"template_type": "generic", "elements": [element for element, _ in group]},
                }
            }
        )
        for element, extra_buttons in group:
            messages += [_button_template(element["title"], part) for part in _groups(extra_buttons, BUTTONS_MAX)]
    return messages


def _attach_quick_replies(
    messages: list[dict[str, Any]], passthrough: set[int], quick_replies: list[dict[str, Any]], report: list[str]
) -> None:
    own = [index for index in range(len(messages)) if index not in passthrough]
    if not own:
        raise OutgoingMessageError("quick_replies", "need a text (or an image, attachment, ...) to go with them")
    target = own[-1]
    if target != len(messages) - 1:
        report.append("quick_replies: attached before a passed-through message, which will dismiss them")
    messages[target] = {**messages[target], "quick_replies": quick_replies}


def _groups(items: list[Any], size: int) -> list[list[Any]]:
    return [items[index : index + size] for index in range(0, len(items), size)]


# --- one field at a time -------------------------------------------------------------------


def _items(value: Any, field: str) -> list[Any]:
    if not value:
        return []
    if isinstance(value, (Mapping, str, bytes)) or not isinstance(value, Sequence):
        raise OutgoingMessageError(field, f"must be a list, not {type(value).__name__}")
    return list(value)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise OutgoingMessageError("text", f"must be a string, not {type(value).__name__}")
    return value.strip()


def _title(value: Any, field: str, limit: int, report: list[str]) -> str:
    if not isinstance(value, str) or not value.strip():
        raise OutgoingMessageError(field, "is required (a non-blank string)")
    value = value.strip()
    short = shorten(value, limit)
    if short != value:
        report.append(f"{field}: {value!r} shortened to {short!r} ({limit} characters at most)")
    return short


def _payload(value: Any, field: str, report: list[str]) -> str:
    if value is None or value == "":
        raise OutgoingMessageError(field, "is required")
    if isinstance(value, str):
        payload = value
    elif isinstance(value, int) and not isinstance(value, bool):
        payload = str(value)
    else:
        payload = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        report.append(f"{field}: {type(value).__name__} sent as the JSON string {payload[:60]!r}")
    if len(payload) > PAYLOAD_MAX_CHARS:
        raise OutgoingMessageError(field, f"is {len(payload)} characters; Meta allows {PAYLOAD_MAX_CHARS}")
    return payload


def _url(value: Any, field: str) -> str:
    if not isinstance(value, str) or any(char.isspace() for char in value):
        raise OutgoingMessageError(field, "must be an http(s) URL")
    try:
        parts = urlsplit(value)
    except ValueError as exc:
        raise OutgoingMessageError(field, "must be an http(s) URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutgoingMessageError(field, f"must be an http(s) URL, not {value[:80]!r}")
    return value


def _mapping(value: Any, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise OutgoingMessageError(field, f"must be an object, not {type(value).__name__}")
    return value


def _quick_reply(raw: Any, field: str, report: list[str]) -> dict[str, Any]:
    raw = _mapping(raw, field)
    content_type = raw.get("content_type") or "text"
    if content_type in _SPECIAL_QUICK_REPLIES:
        return {"content_type": content_type}
    if content_type != "text":
        raise OutgoingMessageError(f"{field}.content_type", f"{content_type!r} is not supported by Messenger")
    reply: dict[str, Any] = {
        "content_type": "text",
        "title": _title(raw.get("title"), f"{field}.title", QUICK_REPLY_TITLE_MAX_CHARS, report),
        "payload": _payload(raw.get("payload"), f"{field}.payload", report),
    }
    if raw.get("image_url"):
        reply["image_url"] = _url(raw["image_url"], f"{field}.image_url")
    return reply


def _quick_reply_as_button(reply: dict[str, Any]) -> dict[str, Any]:
    # Both limits are 20 characters, so a quick reply title is already a valid button title.
    return {"type": "postback", "title": reply["title"], "payload": reply["payload"]}


def _button(raw: Any, field: str, report: list[str]) -> dict[str, Any]:
    """A Rasa button ({title, payload} / {title, url} / {title, type, ...}) as a Messenger button."""
    raw = _mapping(raw, field)
    kind = raw.get("type") or ("web_url" if raw.get("url") else "postback")
    title = _title(raw.get("title"), f"{field}.title", BUTTON_TITLE_MAX_CHARS, report)
    button: dict[str, Any]
    if kind == "postback":
        button = {
            "type": "postback",
            "title": title,
            "payload": _payload(raw.get("payload"), f"{field}.payload", report),
        }
        used = {"type", "title", "payload"}
    elif kind == "web_url":
        url = raw.get("url") or raw.get("payload")
        button = {"type": "web_url", "title": title, "url": _url(url, f"{field}.url")}
        button.update({key: raw[key] for key in _WEB_URL_OPTIONS if key in raw})
        used = {"type", "title", "url", "payload", *_WEB_URL_OPTIONS}
    elif kind == "phone_number":
        button = {"type": "phone_number", "title": title, "payload": _phone_number(raw.get("payload"), field, report)}
        used = {"type", "title", "payload"}
    else:
        raise OutgoingMessageError(f"{field}.type", f"{kind!r} is not one of postback, web_url, phone_number")
    _report_dropped_keys(raw, used, field, report)
    return button


def _phone_number(value: Any, field: str, report: list[str]) -> str:
    """A "+" then 6 to 15 digits, as Meta requires; common separators are removed."""
    if not isinstance(value, str):
        raise OutgoingMessageError(f"{field}.payload", "must be a phone number such as +593991234567")
    number = re.sub(r"[\s().\-]", "", value)
    if not (number.startswith("+") and number[1:].isdigit() and 6 <= len(number) - 1 <= 15):
        raise OutgoingMessageError(f"{field}.payload", f"{value!r} is not a phone number such as +593991234567")
    if number != value:
        report.append(f"{field}.payload: {value!r} sent as {number!r}")
    return number


def _report_dropped_keys(raw: Mapping[str, Any], used: set[str], field: str, report: list[str]) -> None:
    dropped = sorted(str(key) for key in raw if key not in used)
    if dropped:
        report.append(f"{field}: keys Messenger does not accept were not sent: {', '.join(dropped)}")


def _element(raw: Any, field: str, report: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A generic template element, and the buttons past the 3 it may carry."""
    raw = _mapping(raw, field)
    element: dict[str, Any] = {"title": _title(raw.get("title"), f"{field}.title", ELEMENT_TITLE_MAX_CHARS, report)}
    subtitle = raw.get("subtitle")
    if subtitle is not None and not isinstance(subtitle, str):
        raise OutgoingMessageError(f"{field}.subtitle", "must be a string")
    if subtitle and subtitle.strip():
        element["subtitle"] = _title(subtitle, f"{field}.subtitle", ELEMENT_SUBTITLE_MAX_CHARS, report)
    image_url = raw.get("image_url") or raw.get("image")
    if image_url:
        element["image_url"] = _url(image_url, f"{field}.image_url")
    if raw.get("default_action"):
        element["default_action"] = _default_action(raw["default_action"], f"{field}.default_action")
    buttons = [
        _button(button, f"{field}.buttons[{index}]", report)
        for index, button in enumerate(_items(raw.get("buttons"), f"{field}.buttons"))
    ]
    if len(buttons) > ELEMENT_BUTTONS_MAX:
        report.append(
            f"{field}.buttons: {len(buttons)} buttons; {len(buttons) - ELEMENT_BUTTONS_MAX} sent after the carousel "
            "in button templates titled with the element"
        )
    if buttons:
        element["buttons"] = buttons[:ELEMENT_BUTTONS_MAX]
    if len(element) == 1:
        raise OutgoingMessageError(field, "needs a subtitle, image_url, default_action or buttons besides its title")
    _report_dropped_keys(raw, set(_ELEMENT_KEYS), field, report)
    return element, buttons[ELEMENT_BUTTONS_MAX:]


def _default_action(raw: Any, field: str) -> dict[str, Any]:
    raw = _mapping(raw, field)
    if raw.get("type", "web_url") != "web_url":
        raise OutgoingMessageError(f"{field}.type", "must be web_url")
    action = {"type": "web_url", "url": _url(raw.get("url"), f"{field}.url")}
    action.update({key: raw[key] for key in _WEB_URL_OPTIONS if key in raw})
    return action


def _media_message(kind: str, url: str) -> dict[str, Any]:
    return {"attachment": {"type": kind, "payload": {"url": url, "is_reusable": True}}}


def _attachment_message(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        url = _url(value, "attachment")
        extension = posixpath.splitext(urlsplit(url).path)[1].lstrip(".").lower()
        return _media_message(_ATTACHMENT_TYPE_BY_EXTENSION.get(extension, "file"), url)
    value = _mapping(value, "attachment")
    if "attachment" in value:
        return copy.deepcopy(dict(value))
    if "type" in value and "payload" in value:
        return {"attachment": copy.deepcopy(dict(value))}
    raise OutgoingMessageError("attachment", "must be a URL, a Messenger attachment {type, payload} or a message")


def _custom_messages(custom: Any, report: list[str]) -> list[dict[str, Any]]:
    if not custom:
        return []
    items = custom if isinstance(custom, list) else [custom]
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        field = f"custom[{index}]" if isinstance(custom, list) else "custom"
        if isinstance(item, Mapping) and isinstance(item.get("message"), Mapping):
            item = item["message"]
        if isinstance(item, Mapping) and ("text" in item or "attachment" in item):
            messages.append(copy.deepcopy(dict(item)))
        else:
            keys = ", ".join(sorted(str(key) for key in item)) if isinstance(item, Mapping) else type(item).__name__
            report.append(f"{field}: not a Messenger message (no text or attachment: {keys}); not sent")
    return messages
