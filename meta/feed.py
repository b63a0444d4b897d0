"""The page's `feed` webhook (comments on its posts, posts by visitors) as typed changes.

Meta sends them in an entry's `changes` list, `{"field": "feed", "value": {...}}` ("Webhooks for Pages",
field `feed`; the value's fields in the Graph API webhooks reference for the Page object):

    {"item": "comment", "verb": "add", "comment_id": "<post>_<comment>", "post_id": "<page>_<post>",
     "parent_id": "<page>_<post>" (a top-level comment) | "<post>_<comment>" (a reply),
     "from": {"id": "<app-scoped id>", "name": "…"}, "message": "…", "created_time": <epoch seconds>,
     "post": {"id": …, "status_type": "added_photos", "is_published": true, "permalink_url": "…", …}}

`verb` is "add", "edited", "remove", "hide", "unhide" (and "edit"/"delete"/"block"… for other items); `item` is
"comment", "post", "status", "photo", "video", "share", "reaction", "like"…; a removal carries no `message`.

Pure and standard library only (the Rasa channel, Python 3.10, imports `meta.events`). As for `messaging` items:
unknown fields are kept (`raw`), a field we read in the wrong shape makes the change malformed
(`MalformedChangeError`: `meta.events` skips it and says so), never a crash later. So does text that is not valid
Unicode (a lone surrogate, JSON's `"\\ud800"`: no database stores it), an id that is not Meta's shape (digits joined by
`_`: ids go into Graph API paths, `/{comment_id}/comments`) and a `created_time` that is no time. NUL characters are
removed from every text of the value, `raw` included (PostgreSQL cannot store them and SQLite would: both keep the
same text).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

FEED_FIELD = "feed"
# Epoch seconds up to the year 9999: beyond that it is not a time (and `datetime` cannot hold it).
MAX_EPOCH_SECONDS = 253_402_300_799
# Meta's object ids: digits, or digits joined by `_` (`<page>_<post>`, `<post>_<comment>`); ASCII digits only.
OBJECT_ID_PATTERN = re.compile(r"[0-9]{1,40}(?:_[0-9]{1,40}){0,3}")
# A comment or a post is added once and removed once: a redelivery of "comment add 123" is the same change whatever
# else it carries. Other verbs may happen several times to one target (an edit, a hide after an unhide), and other
# items (reactions, likes) are many per post: those are told apart by their content.
_ONCE_PER_TARGET = ("add", "remove")
_CONTENT_ITEMS = ("comment", "status", "post", "photo", "video", "share", "note", "event")


class MalformedChangeError(ValueError):
    """A `feed` change has a field we read in the wrong shape: the change is skipped."""


@dataclass(frozen=True)
class FeedChange:
    """One `changes[]` item with `field == "feed"`, with the page it belongs to."""

    page_id: str
    item: str
    verb: str
    raw: Mapping[str, Any] = field(repr=False)  # the whole `value`, kept
    comment_id: str | None = None  # None for posts, reactions to posts…
    post_id: str | None = None
    parent_id: str | None = None  # the post for a top-level comment, a comment for a reply
    from_id: str = ""
    from_name: str = ""
    message: str = ""
    created_time: datetime | None = None  # Meta's `created_time` (aware UTC); None when it sent none
    post: Mapping[str, Any] | None = field(default=None, repr=False)  # status_type, permalink_url, is_published…

    @property
    def is_comment(self) -> bool:
        return self.item == "comment"

    @property
    def is_reply(self) -> bool:
        """A reply to another comment (its parent is a comment, not the post)."""
        return bool(self.parent_id) and self.parent_id != self.post_id

    @property
    def is_by_page(self) -> bool:
        """Written by the page itself (its admins, or our own public replies)."""
        return bool(self.from_id) and self.from_id == self.page_id

    @property
    def is_new_comment(self) -> bool:
        """What the reply rules look at: a comment (or a reply) added by someone other than the page."""
        return self.is_comment and self.verb == "add" and not self.is_by_page

    @property
    def target_id(self) -> str | None:
        """What the change is about: the comment, else the post (or photo/video) it names."""
        if self.comment_id:
            return self.comment_id
        for key in ("post_id", "photo_id", "video_id", "share_id"):
            value = self.raw.get(key)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value):
                return str(value)
        return None

    @property
    def dedup_key(self) -> str:
        """Meta redelivers: one row per change. A comment or post is added (removed) once; an edit is told apart by
        its text and time; anything else (hide/unhide, reactions) by its whole value."""
        target = self.target_id
        prefix = f"feed:{self.item}:{self.verb}"
        if target and self.verb in _ONCE_PER_TARGET and self.item in _CONTENT_ITEMS:
            return f"{prefix}:{target}"
        if target and self.verb in ("edited", "edit"):
            stamp = self.created_time.isoformat() if self.created_time else ""
            return f"{prefix}:{target}:{_digest([self.message, stamp])}"
        return f"{prefix}:{target or '-'}:{_digest({'page': self.page_id, 'value': self.raw})}"

    def to_dict(self) -> dict[str, Any]:
        return {"page_id": self.page_id, "value": dict(self.raw)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeedChange:
        return parse_feed_value(data["value"], str(data["page_id"]))


def _digest(value: Any) -> str:
    canonical = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()[:24]


def is_object_id(value: Any) -> bool:
    """A Graph API object id as Meta writes them (`123`, `<post>_<comment>`): safe inside a Graph API path."""
    return isinstance(value, str) and OBJECT_ID_PATTERN.fullmatch(value) is not None


def storable(value: Any) -> Any:
    """A JSON value with NUL characters removed from its texts (keys too); `MalformedChangeError` for text that is
    not valid Unicode. Both databases then keep the same text."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise MalformedChangeError("text that is not valid Unicode") from exc
        return value.replace("\x00", "")
    if isinstance(value, Mapping):
        return {storable(key): storable(child) for key, child in value.items()}
    if isinstance(value, list):
        return [storable(child) for child in value]
    return value


def _text(value: Mapping[str, Any], key: str, where: str = "") -> str | None:
    found = value.get(key)
    if found is None or isinstance(found, str):
        return found
    raise MalformedChangeError(f"{where}{key} is not a string")


def _id(value: Mapping[str, Any], key: str, where: str = "") -> str | None:
    """Ids: a string, or an integer (some of Meta's ids arrive as numbers); empty counts as absent."""
    found = value.get(key)
    if found is None or found == "":
        return None
    if isinstance(found, str):
        return found
    if isinstance(found, int) and not isinstance(found, bool):
        return str(found)
    raise MalformedChangeError(f"{where}{key} is not an id")


def _object_id(value: Mapping[str, Any], key: str, where: str = "") -> str | None:
    found = _id(value, key, where)
    if found is not None and not is_object_id(found):
        raise MalformedChangeError(f"{where}{key} is not a Graph API object id")
    return found


def _object(value: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    found = value.get(key)
    if found is None or isinstance(found, Mapping):
        return found
    raise MalformedChangeError(f"{key} is not an object")


def created_time_of(value: Any) -> datetime | None:
    """Meta's `created_time`: epoch seconds (a number or a numeric string); an ISO 8601 time with its offset (the
    Graph API's own format, `2024-06-10T15:09:57+0000`) is taken too."""
    if value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        digits = value.strip()
        # ASCII digits only ("²" and "٣" are digits to `str.isdigit`, not to Meta), and few: `int` refuses more
        # than 4,300 of them with a ValueError, and 13 already pass the year 9999.
        if not (digits.isascii() and len(digits) <= 20):
            raise MalformedChangeError("created_time is not a time in seconds")
        value = int(digits)
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= MAX_EPOCH_SECONDS:
            raise MalformedChangeError("created_time is not a time in seconds")
        return datetime.fromtimestamp(value, tz=timezone.utc)
    if isinstance(value, str):
        text = value.strip()
        if len(text) >= 5 and text[-5] in "+-" and text[-4:].isdigit():
            text = f"{text[:-2]}:{text[-2:]}"  # +0000 → +00:00 (Python 3.10's fromisoformat)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise MalformedChangeError("created_time is not a time") from exc
        if parsed.tzinfo is None:
            raise MalformedChangeError("created_time has no time zone")
        try:
            return parsed.astimezone(timezone.utc)
        except OverflowError as exc:  # year 1 with a positive offset, year 9999 with a negative one
            raise MalformedChangeError("created_time is not a time in UTC") from exc
    raise MalformedChangeError("created_time is not a time")


def parse_feed_value(value: Any, page_id: str) -> FeedChange:
    """One `feed` change's `value` → a `FeedChange`. Raises `MalformedChangeError` when `item`/`verb` are missing, a
    comment has no comment or post id, or a field we read has the wrong shape."""
    if not isinstance(value, Mapping):
        raise MalformedChangeError("value is not an object")
    try:
        value = storable(value)
    except RecursionError as exc:
        raise MalformedChangeError("value nests too deep") from exc
    item = _text(value, "item")
    verb = _text(value, "verb")
    if not item or not verb:
        raise MalformedChangeError("a feed change without item or verb")
    sender = _object(value, "from")
    post = _object(value, "post")
    change = FeedChange(
        page_id=page_id,
        item=item,
        verb=verb,
        raw=value,
        comment_id=_object_id(value, "comment_id"),
        post_id=_object_id(value, "post_id") or (_object_id(post, "id", "post.") if post else None),
        parent_id=_object_id(value, "parent_id"),
        from_id=(_id(sender, "id", "from.") or "") if sender else "",
        from_name=(_text(sender, "name", "from.") or "") if sender else "",
        message=_text(value, "message") or "",
        created_time=created_time_of(value.get("created_time")),
        post=post,
    )
    if change.is_comment and not (change.comment_id and change.post_id):
        raise MalformedChangeError("a comment change without comment_id or post_id")
    return change


def is_feed_change(change: Any) -> bool:
    """`{"field": "feed", …}`: the changes this module reads (other fields stay unknown events)."""
    return isinstance(change, Mapping) and change.get("field") == FEED_FIELD
