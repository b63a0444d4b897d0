"""Generated webhook deliveries for the fuzz tests (unit: the parser in-process; integration: the running webhook).

Three families, each yielding `FuzzBody(raw, signature, family)`:
- `shaped`: Meta's documented shapes (tests/support/meta_payloads.py: `messaging`/`standby` items and `feed`
  changes) with random values, random extra fields and, often, one field or one envelope part replaced by a random
  or poisonous JSON value (`1e400`, NaN, a 25-digit integer, a lone surrogate, deep nesting, a wrong type);
- `random_json`: arbitrary JSON documents, sometimes wrapped in a page envelope;
- `random_bytes`: arbitrary bytes.
Most bodies are signed with the app secret (the parser is reached); some are unsigned or wrongly signed.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from meta.signature import sign
from tests.support import meta_payloads as meta

# Serialised as the literal `1e400` (json gives inf) and as 5,000 nested lists: Python's json cannot write them.
HUGE_FLOAT_MARKER = "__fuzz_1e400__"
DEEP_MARKER = "__fuzz_deep__"
# The fuzz writes only to these users and mids, so a few of its messages reach Rasa, the rest are duplicates.
FUZZ_USERS = ("9990000000000001", "9990000000000002", "9990000000000003")
FUZZ_MIDS = ("m_fuzz_1", "m_fuzz_2", "m_fuzz_3", "m_fuzz_4")
SIGNING_SECRET_TYPO = "demo-app-secret "  # a near miss of the demo secret


@dataclass(frozen=True)
class FuzzBody:
    raw: bytes
    signature: str | None
    family: str
    signed: bool


def serialise(body: Any) -> bytes:
    text = json.dumps(body, ensure_ascii=True, allow_nan=True)
    text = text.replace(f'"{HUGE_FLOAT_MARKER}"', "1e400")
    return text.replace(f'"{DEEP_MARKER}"', "[" * 5000 + "]" * 5000).encode("utf-8")


def _deep(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
poison = st.sampled_from(
    [
        HUGE_FLOAT_MARKER,
        float("nan"),
        float("inf"),
        -float("inf"),
        10**25,
        -(10**30),
        "\ud800",
        "a\udfffb",
        "a\x00b",  # NUL: PostgreSQL refuses it in text
        "²",  # a digit to `str.isdigit`, not to `int`
        "1" * 5000,  # more digits than `int` reads from a string
        "0001-01-01T00:00:00+01:00",  # a time `datetime` holds but UTC does not
        "9999-12-31T23:59:59-0500",
        "../1",  # not an id, and a path to elsewhere in a URL
        True,
        5,
        7.5,
        "",
        [],
        {},
        _deep(40),
        DEEP_MARKER,
    ]
).map(copy.deepcopy)  # fresh each time: a mutation must not change the next draw
json_values = st.recursive(
    json_scalars | poison,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=6,
)
extra_fields = st.dictionaries(st.text(min_size=1, max_size=8).map(lambda k: "x_" + k), json_values, max_size=1)

texts = st.text(max_size=30)
mids = st.sampled_from(FUZZ_MIDS)
users = st.sampled_from(FUZZ_USERS)
timestamps = st.integers(min_value=1, max_value=2**45)


def _items(users: st.SearchStrategy[str], mids: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    attachment = (
        st.sampled_from(["image", "audio", "video", "file"]).map(meta.media)
        | st.builds(meta.location, st.floats(-90, 90), st.floats(-180, 180))
        | st.builds(meta.fallback)
        | st.builds(meta.fallback_without_payload)
        | json_values
    )
    return st.one_of(
        st.builds(
            lambda m, t, s, ts: meta.text_message(mid=m, text=t, sender=s, timestamp=ts), mids, texts, users, timestamps
        ),
        st.builds(lambda m, t, p, s: meta.quick_reply(m, t, p, sender=s), mids, texts, texts, users),
        st.builds(
            lambda m, t, p, s: meta.postback(m, t, p, sender=s), mids, texts | st.none(), texts | st.none(), users
        ),
        st.builds(
            lambda m, a, s: meta.attachment_message(m, a, sender=s), mids, st.lists(attachment, max_size=3), users
        ),
        st.builds(lambda m, s: meta.sticker_message(m), mids, users),
        st.builds(lambda r, s: meta.referral(meta.shortlink_referral(r), sender=s), texts, users),
        st.builds(
            lambda m, t, a, r: meta.echo(m, t, app_id=a, recipient=r),
            mids,
            texts,
            st.sampled_from([int(meta.OUR_APP_ID), meta.PAGE_INBOX_APP_ID_NUMBER, None]),
            users,
        ),
        st.builds(lambda ms, w, s: meta.delivery(ms, w, sender=s), st.lists(mids, max_size=3), timestamps, users),
        st.builds(lambda w, s: meta.read(w, sender=s), timestamps, users),
        st.builds(
            lambda m, a: {**meta.reaction(m, action=a), "sender": {"id": FUZZ_USERS[0]}},
            mids,
            st.sampled_from(["react", "unreact"]),
        ),
        st.builds(meta.pass_thread_control),
        st.builds(meta.app_roles),
        st.builds(meta.message_edit, mids, texts),
    )


ITEMS = _items(users, mids)
# `feed` changes (comments on the page's posts, visitor posts, reactions): Meta's shapes with random values.
FEED_VERBS = st.sampled_from(["add", "edited", "remove", "hide", "unhide"])
# What a `created_time` may hold: epoch seconds, ISO 8601 times with any offset (years 1 to 9999), digits of any
# script and length, and any JSON value.
CREATED_TIMES = st.one_of(
    st.integers(-(2**40), 2**40),
    st.integers(-(2**40), 2**40).map(str),
    st.text(st.characters(categories=("Nd", "No")), min_size=1, max_size=6),
    st.integers(4000, 6000).map(lambda n: "7" * n),
    st.builds(lambda at, offset: at.isoformat() + offset, st.datetimes(),
              st.sampled_from(["", "Z", "+0000", "-0500", "+14:00", "-23:59", "+2400", "+00:00:01"])),
    json_values,
)
FEED_VALUES = st.one_of(
    st.builds(
        lambda t, v, s: meta.comment_value(t, verb=v, sender=s), texts, FEED_VERBS, users | st.just(meta.PAGE_ID)
    ),
    st.builds(meta.reply_value, texts),
    st.builds(meta.page_comment_value, texts),
    st.builds(meta.visitor_post_value, texts),
    st.builds(meta.reaction_value, st.sampled_from(["like", "love", "haha", "wow"])),
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a document where a value sits."""
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found += _paths(child, (*prefix, index))
    return found


def _replace(document: Any, path: tuple[Any, ...], value: Any) -> None:
    target = document
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value


@st.composite
def shaped_bodies(draw: Callable[..., Any], page_id: str = meta.PAGE_ID) -> bytes:
    """A page webhook of Meta's shapes with random values; usually one place replaced by a bad value."""
    entries = []
    for _ in range(draw(st.integers(1, 2))):
        entry: dict[str, Any]
        if draw(st.integers(0, 4)) == 0:  # a `feed` entry (changes), one in five
            values = [{**draw(FEED_VALUES), **draw(extra_fields)} for _ in range(draw(st.integers(1, 3)))]
            entry = meta.feed_entry(*values, page=page_id)
        else:
            entry_items = [{**draw(ITEMS), **draw(extra_fields)} for _ in range(draw(st.integers(0, 3)))]
            entry = meta.entry(entry_items, page=page_id, standby=draw(st.booleans()))
        entries.append({**entry, **draw(extra_fields)})
    # A deep copy: a replacement below must never reach into a value another draw may return again.
    body: Any = copy.deepcopy({**meta.webhook(*entries), **draw(extra_fields)})
    if draw(st.integers(0, 9)) < 7:  # most bodies carry one wrong value somewhere
        paths = _paths(body)
        path = draw(st.sampled_from(paths))
        _replace(body, path, draw(json_values))
    return serialise(body)


random_json_bodies = st.one_of(
    json_values.map(serialise),
    st.builds(lambda entry: serialise({"object": "page", "entry": entry}), json_values),
)
random_byte_bodies = st.binary(max_size=2048)


@st.composite
def signed_or_not(draw: Callable[..., Any], bodies: st.SearchStrategy[bytes], family: str, secret: str) -> FuzzBody:
    raw = draw(bodies)
    choice = draw(st.integers(0, 19))
    if choice < 17:
        return FuzzBody(raw, sign(raw, secret), family, True)
    # What an HTTP client can carry: printable ASCII, no surrounding blanks.
    printable = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=80)
    wrong = [None, "", "sha256=", sign(raw, "not-the-secret"), "sha1=00", sign(raw, SIGNING_SECRET_TYPO)]
    header = draw(st.sampled_from(wrong) | printable | printable.map(lambda text: "sha256=" + text))
    return FuzzBody(raw, header, family, False)


# --- bodies that reach Rasa: fresh mids, random values, valid shapes (test_webhook_processing_fuzz.py)

# What looks like Rasa's own syntax (`/intent{entities}`, Rasa's default intents and actions) or JSON.
RASA_LOOKALIKES = (
    "/restart",
    "/restart{}",
    '/request_human{"x":1}',
    "/request_human",
    "/session_start",
    "/action_listen",
    "/back",
    "/out_of_scope",
    "/nlu_fallback",
    "/greet",
    '/greet{"entry_id": null}',
    '/ask_knowledge{"entry_id":"no-such-entry"}',
    '/ask_knowledge{"entry_id": {"a": [1, 2]}}',
    "/ask_knowledge{",
    '/greet{"a":1}@0.99',
    "/EXTERNAL: x",
    "/",
    "//",
    "/ ",
    "/😀",
    '{"text": "hola"}',
    "[1, 2, 3]",
    "null",
    "{}",
    '{"intent": {"name": "restart"}}',
)
# Meta's limits: a message's text up to 2,000 characters (longer ones are split), payloads up to 1,000.
MAX_TEXT_CHARS = 2000
MAX_PAYLOAD_CHARS = 1000
_any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_LONG_UNITS = ["a", "ñ", "😀", "👍🏽", "中", " ", "\u200d", "🏳️‍🌈"]
_long_text = st.integers(100, MAX_TEXT_CHARS).flatmap(
    lambda size: st.sampled_from(_LONG_UNITS).map(lambda unit: (unit * size)[:size])
)
_EMOJI = ["😀", "👍", "❤️", "🇨🇴", "👨‍👩‍👧", "\U0001fae0", "¿", "¡", "ß", "ٱ"]
_emoji_text = st.lists(st.sampled_from(_EMOJI), max_size=20).map("".join)
fuzz_texts = _any_text | _long_text | _emoji_text | st.sampled_from(RASA_LOOKALIKES) | st.just("")
fuzz_payloads = (
    st.sampled_from(RASA_LOOKALIKES)
    | st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=MAX_PAYLOAD_CHARS)
    | st.sampled_from(RASA_LOOKALIKES).flatmap(lambda base: _any_text.map(lambda tail: base + tail))
)
fuzz_refs = st.one_of(
    st.builds(meta.shortlink_referral, _any_text),
    st.builds(meta.ad_referral, st.text("0123456789", min_size=1, max_size=20), _any_text),
    st.dictionaries(st.text(max_size=8), json_scalars, max_size=4),
)
_unicode_url = _any_text.map(lambda tail: "https://example.com/" + tail)
fuzz_attachments = st.lists(
    st.builds(meta.media, st.sampled_from(["image", "audio", "video", "file"]), _unicode_url)
    | st.builds(meta.location, st.floats(-90, 90), st.floats(-180, 180))
    | st.builds(meta.location, st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**53), 2**53))
    | st.builds(meta.fallback, _unicode_url, _any_text)
    | st.builds(meta.fallback_without_payload)
    | st.builds(meta.sticker_attachments, st.integers(0, 2**62), st.booleans()).map(lambda found: found[-1])
    | st.dictionaries(st.sampled_from(["type", "payload", "title", "url"]), json_scalars, max_size=4)
    | st.fixed_dictionaries({"type": _any_text, "payload": st.dictionaries(st.text(max_size=8), json_scalars)}),
    min_size=1,
    max_size=4,
)


@st.composite
def processed_items(draw: Callable[..., Any], mid: str, sender: str, timestamp: int) -> dict[str, Any]:
    """One user message Rasa will process: text, a quick reply, a postback (maybe with a referral), attachments
    (maybe with text), a sticker, or a message carrying a referral; values random, shape Meta's."""
    choice = draw(st.integers(0, 6))
    if choice == 0:
        return meta.text_message(mid=mid, text=draw(fuzz_texts), sender=sender, timestamp=timestamp)
    if choice == 1:
        return meta.quick_reply(mid, draw(fuzz_texts), draw(fuzz_payloads), sender=sender, timestamp=timestamp)
    if choice == 2:
        return meta.postback(
            mid,
            draw(fuzz_texts | st.none()),
            draw(fuzz_payloads | st.none()),
            referral=draw(fuzz_refs | st.none()),
            sender=sender,
            timestamp=timestamp,
        )
    if choice == 3:
        return meta.attachment_message(
            mid, draw(fuzz_attachments), text=draw(fuzz_texts | st.none()), sender=sender, timestamp=timestamp
        )
    if choice == 4:
        item = meta.sticker_message(mid, draw(st.integers(0, 2**62)), draw(st.booleans()))
        return {**item, "sender": {"id": sender}, "timestamp": timestamp}
    if choice == 5:
        item = meta.text_message(mid=mid, text=draw(fuzz_texts), sender=sender, timestamp=timestamp)
        item["message"]["referral"] = draw(fuzz_refs)
        return item
    return meta.text_message(mid=mid, text=draw(st.sampled_from(RASA_LOOKALIKES)), sender=sender, timestamp=timestamp)
