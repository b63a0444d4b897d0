"""The page's `feed` webhook (meta/feed.py, and its place in meta.events.read_webhook): Meta's documented shapes
(comment add, reply, edit, remove, hide/unhide, the page's own comment, a visitor post, a reaction), their dedup
keys, malformed changes skipped (or the body refused when nothing else is usable), and a fuzz: any value in any
field parses or is skipped, never another exception."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meta.delivery import judge_delivery
from meta.events import EventKind, WebhookPayloadError, decode_webhook, read_webhook
from meta.feed import FeedChange, MalformedChangeError, created_time_of, is_object_id, parse_feed_value
from meta.signature import sign
from sandbox import simulate
from tests.support import meta_payloads as meta
from tests.support.webhook_fuzz import CREATED_TIMES, FEED_VALUES, json_values

T0 = datetime.fromtimestamp(meta.T0_SECONDS, tz=timezone.utc)


def parse(value: dict[str, Any], page: str = meta.PAGE_ID) -> FeedChange:
    return parse_feed_value(value, page)


# --- the shapes ------------------------------------------------------------------------------------------------


def test_a_comment_on_a_post() -> None:
    change = parse(meta.comment_value("¿Precio?"))

    assert (change.page_id, change.item, change.verb) == (meta.PAGE_ID, "comment", "add")
    assert (change.comment_id, change.post_id, change.parent_id) == (meta.COMMENT_ID, meta.POST_ID, meta.POST_ID)
    assert (change.from_id, change.from_name, change.message) == (meta.COMMENTER_ID, "María Pérez", "¿Precio?")
    assert change.created_time == T0 and change.created_time.tzinfo is not None
    assert change.post is not None and change.post["permalink_url"].endswith(meta.POST_ID)
    assert change.is_comment and change.is_new_comment
    assert not change.is_reply and not change.is_by_page
    assert change.dedup_key == f"feed:comment:add:{meta.COMMENT_ID}"


def test_a_reply_to_a_comment_names_the_comment_as_parent() -> None:
    change = parse(meta.reply_value())

    assert change.is_reply and change.is_new_comment
    assert (change.parent_id, change.post_id) == (meta.COMMENT_ID, meta.POST_ID)
    assert change.dedup_key == f"feed:comment:add:{meta.OTHER_COMMENT_ID}"


def test_the_pages_own_comment_is_by_the_page_and_not_new() -> None:
    change = parse(meta.page_comment_value())

    assert change.is_by_page and change.is_comment
    assert not change.is_new_comment


def test_an_edit_is_keyed_by_its_text_and_time() -> None:
    edit = parse(meta.edited_value("¿Precio del combo?"))
    same = parse(meta.edited_value("¿Precio del combo?"))
    other_text = parse(meta.edited_value("¿Y a domicilio?"))
    later = parse(meta.edited_value("¿Precio del combo?", created_time=meta.T0_SECONDS + 999))

    assert edit.verb == "edited" and not edit.is_new_comment
    assert edit.dedup_key == same.dedup_key, "a redelivery of the edit is the same change"
    assert edit.dedup_key.startswith(f"feed:comment:edited:{meta.COMMENT_ID}:")
    assert len({edit.dedup_key, other_text.dedup_key, later.dedup_key}) == 3
    assert edit.dedup_key != parse(meta.comment_value()).dedup_key


def test_a_removal_has_no_message_and_one_key_per_comment() -> None:
    change = parse(meta.removed_value())

    assert (change.verb, change.message) == ("remove", "")
    assert change.dedup_key == f"feed:comment:remove:{meta.COMMENT_ID}"


def test_hide_and_unhide_are_different_changes() -> None:
    hidden, unhidden = parse(meta.hidden_value("hide")), parse(meta.hidden_value("unhide"))

    assert (hidden.verb, unhidden.verb) == ("hide", "unhide")
    assert hidden.dedup_key != unhidden.dedup_key
    assert hidden.dedup_key == parse(meta.hidden_value("hide")).dedup_key


def test_a_visitor_post_is_a_post_not_a_comment() -> None:
    change = parse(meta.visitor_post_value("¿Hacen entregas a Cumbayá?"))

    assert (change.item, change.verb, change.comment_id) == ("status", "add", None)
    assert change.post_id == f"{meta.PAGE_ID}_990000000001" and change.message == "¿Hacen entregas a Cumbayá?"
    assert not change.is_comment and not change.is_new_comment and not change.is_reply
    assert change.dedup_key == f"feed:status:add:{meta.PAGE_ID}_990000000001"


def test_reactions_of_two_people_to_one_post_are_two_changes() -> None:
    mine = parse(meta.reaction_value("love"))
    theirs_value = meta.reaction_value("love")
    theirs_value["from"] = {"id": "6100000000000077", "name": "Otra Persona"}

    assert mine.item == "reaction" and mine.comment_id is None
    assert mine.dedup_key != parse(theirs_value).dedup_key


def test_unknown_fields_are_kept_and_the_change_round_trips() -> None:
    value = {**meta.comment_value(), "x_new_meta_field": {"nested": [1, "dos"]}}
    change = parse(value)

    assert change.raw["x_new_meta_field"] == {"nested": [1, "dos"]}
    rebuilt = FeedChange.from_dict(json.loads(json.dumps(change.to_dict())))
    assert rebuilt == change and rebuilt.dedup_key == change.dedup_key


def test_numeric_ids_and_a_post_id_only_in_the_post_object() -> None:
    value = meta.comment_value()
    value["from"]["id"] = 6123456789012345
    del value["post_id"]

    change = parse(value)

    assert change.from_id == "6123456789012345"
    assert change.post_id == meta.POST_ID, "taken from post.id"


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        (meta.T0_SECONDS, T0),
        (str(meta.T0_SECONDS), T0),
        ("2024-06-10T06:13:20+0000", T0),
        ("2024-06-10T01:13:20-0500", T0),  # Ecuador's offset, the same instant
        ("2024-06-10T06:13:20Z", T0),
        (None, None),
    ],
)
def test_created_time_forms(sent: Any, expected: datetime | None) -> None:
    assert created_time_of(sent) == expected


# Digits to `str.isdigit` that `int` refuses or that are not Meta's ("²", 5,000 digits: ValueError), other scripts'
# digits, and times that `datetime` holds but UTC does not (year 1 ahead of UTC, year 9999 behind it: OverflowError).
NO_TIMES = [-1, True, 10**13, "ayer", "2024-06-10T06:13:20", 1.5, [1], {"t": 1}, "²", "1²", "٣", "１２", "1" * 5000,
            "9" * 21, "0001-01-01T00:00:00+01:00", "0001-01-01T00:30:00+0100", "9999-12-31T23:59:59-01:00",
            "9999-12-31T23:00:00-0500", "2024-06-10T06:13:20+2400"]


@pytest.mark.parametrize("sent", NO_TIMES)
def test_created_time_that_is_no_time_is_malformed(sent: Any) -> None:
    with pytest.raises(MalformedChangeError):
        created_time_of(sent)


@pytest.mark.parametrize("sent", NO_TIMES)
def test_a_signed_delivery_with_no_time_skips_the_change_and_keeps_the_rest(sent: Any) -> None:
    """Both webhook routes (connectors/webhook_server.py and the Rasa channel's) answer with `judge_delivery`."""
    raw = json.dumps(meta.webhook(meta.feed_entry(broken(created_time=sent), meta.reply_value()))).encode()
    alone = json.dumps(meta.webhook(meta.feed_entry(broken(created_time=sent)))).encode()

    verdict = judge_delivery(raw, sign(raw, "s3cret"), "s3cret")
    refused = judge_delivery(alone, sign(alone, "s3cret"), "s3cret")

    assert verdict.status == 200 and [change.is_reply for change in verdict.changes] == [True]
    assert [(skipped.list_name, skipped.item_index) for skipped in verdict.skipped] == [("changes", 0)]
    assert refused.status == 400 and refused.changes == ()


@pytest.mark.parametrize("text", ["\ud800", "a\udfffb"])
@pytest.mark.parametrize("where", ["message", "from.id", "from.name", "x_unknown", "post.status_type"])
def test_text_that_is_not_valid_unicode_is_malformed_wherever_it_is(text: str, where: str) -> None:
    """A lone surrogate (JSON's `"\\ud800"`) no database stores; hashing it for the dedup key raised before."""
    for value in (meta.comment_value(), meta.reaction_value()):
        target, _, key = where.rpartition(".")
        holder = value.setdefault(target, {}) if target else value
        holder[key] = text
        with pytest.raises(MalformedChangeError, match="not valid Unicode"):
            parse(value)


def test_nul_characters_are_removed_from_every_text_raw_included() -> None:
    value = meta.comment_value("hola\x00 precio\x00")
    value["from"]["name"] = "Ma\x00ría"
    value["x_extra"] = {"k\x00": ["\x00"]}

    change = parse(value)

    assert (change.message, change.from_name) == ("hola precio", "María")
    assert change.raw["x_extra"] == {"k": [""]}
    assert "\\u0000" not in json.dumps(change.to_dict())
    assert FeedChange.from_dict(change.to_dict()) == change
    assert parse(meta.comment_value("hola precio")).dedup_key == change.dedup_key


@pytest.mark.parametrize("field", ["comment_id", "post_id", "parent_id"])
@pytest.mark.parametrize("sent", ["../1", "123/comments", "1_2?x=1", "1#2", "12 ", "_1", "1__2", "１２", "a1", "1_",
                                  "1" * 41])
def test_an_id_that_is_not_metas_shape_is_malformed(field: str, sent: str) -> None:
    """Ids go into Graph API paths (`/{comment_id}/comments`): only digits joined by `_`."""
    with pytest.raises(MalformedChangeError, match="object id"):
        parse(broken(**{field: sent}))
    post = meta.comment_value()
    del post["post_id"]
    post["post"]["id"] = sent
    with pytest.raises(MalformedChangeError, match="object id"):
        parse(post)


def test_metas_id_shapes_and_numbers_are_ids() -> None:
    assert [is_object_id(value) for value in ("1", meta.POST_ID, meta.COMMENT_ID, "1_2_3", 12, "", None)] == [
        True, True, True, True, False, False, False]
    assert parse(broken(comment_id=880011223344, post_id=104523456789012)).comment_id == "880011223344"


# --- malformed ---------------------------------------------------------------------------------------------------


def broken(**fields: Any) -> dict[str, Any]:
    value = meta.comment_value()
    for key, replacement in fields.items():
        if replacement is ...:
            del value[key]
        else:
            value[key] = replacement
    return value


@pytest.mark.parametrize(
    "value",
    [
        "not an object",
        [meta.comment_value()],
        broken(item=...),
        broken(verb=...),
        broken(verb=5),
        broken(item=""),
        broken(comment_id=...),
        broken(comment_id=[1]),
        broken(post_id=..., post=...),
        broken(**{"from": "María"}),
        broken(**{"from": {"id": ["x"]}}),
        broken(**{"from": {"id": "1", "name": 7}}),
        broken(message=12),
        broken(post="2024_1"),
        broken(parent_id=True),
        broken(created_time="mañana"),
    ],
)
def test_malformed_values_are_refused_with_a_reason(value: Any) -> None:
    with pytest.raises(MalformedChangeError):
        parse(value)


# --- in a delivery -----------------------------------------------------------------------------------------------


def test_a_feed_entry_gives_changes_and_no_unknown_event() -> None:
    parsed = read_webhook(meta.webhook(meta.feed_entry(meta.comment_value(), meta.reply_value())))

    assert parsed.events == () and parsed.skipped == ()
    assert [change.comment_id for change in parsed.changes] == [meta.COMMENT_ID, meta.OTHER_COMMENT_ID]


def test_another_fields_change_beside_a_feed_change_keeps_the_entry_as_an_unknown_event() -> None:
    entry = meta.feed_entry(meta.comment_value())
    entry["changes"].append({"field": "ratings", "value": {"item": "rating", "verb": "add", "rating": 5}})

    parsed = read_webhook(meta.webhook(entry))

    assert [event.kind for event in parsed.events] == [EventKind.UNKNOWN]
    assert len(parsed.changes) == 1, "the feed change is read all the same"


def test_messaging_and_feed_entries_in_one_delivery() -> None:
    body = meta.webhook(meta.entry([meta.text_message()]), meta.feed_entry(meta.visitor_post_value()))

    parsed = read_webhook(body)

    assert [event.kind for event in parsed.events] == [EventKind.MESSAGE]
    assert [change.item for change in parsed.changes] == ["status"]


def test_a_malformed_change_beside_good_ones_is_skipped_and_said() -> None:
    parsed = read_webhook(meta.webhook(meta.feed_entry(meta.comment_value(), broken(comment_id=...))))

    assert len(parsed.changes) == 1
    (skipped,) = parsed.skipped
    assert (skipped.entry_index, skipped.list_name, skipped.item_index) == (0, "changes", 1)
    assert "comment_id" in skipped.reason


def test_a_delivery_of_only_malformed_changes_is_refused() -> None:
    with pytest.raises(WebhookPayloadError, match="no usable item"):
        read_webhook(meta.webhook(meta.feed_entry(broken(item=...), broken(verb=["add"]))))


def test_the_signed_delivery_verdict_carries_the_changes() -> None:
    raw = json.dumps(meta.webhook(meta.feed_entry(meta.comment_value()))).encode()

    verdict = judge_delivery(raw, sign(raw, "s3cret"), "s3cret")
    refused = judge_delivery(b'{"object":"page","entry":[{"id":"1","changes":[{"field":"feed","value":7}]}]}',
                             None, "s3cret")

    assert verdict.status == 200 and verdict.events == ()
    assert [change.dedup_key for change in verdict.changes] == [f"feed:comment:add:{meta.COMMENT_ID}"]
    assert refused.status == 403 and refused.changes == ()


# --- the sandbox's builders produce Meta's shapes ----------------------------------------------------------------


def test_the_sandbox_comment_has_metas_shape_and_parses() -> None:
    built = simulate.comment(meta.PAGE_ID, meta.COMMENTER_ID, "María Pérez", meta.POST_ID, "¿Precio?",
                             comment_id=meta.COMMENT_ID, created_time=meta.T0_SECONDS)

    assert built["field"] == "feed"
    assert set(built["value"]) == set(meta.comment_value())
    fields = ("item", "verb", "comment_id", "post_id", "parent_id", "from_id", "from_name", "message", "created_time")
    assert [getattr(parse(built["value"]), name) for name in fields] == [
        getattr(parse(meta.comment_value("¿Precio?")), name) for name in fields
    ]
    assert "message" not in simulate.comment(meta.PAGE_ID, "1", "A", meta.POST_ID, "x", verb="remove")["value"]


def test_the_sandbox_reply_visitor_post_and_body() -> None:
    reply = simulate.comment(meta.PAGE_ID, "61", "Luis", meta.POST_ID, "yo igual", parent_id=meta.COMMENT_ID)
    post = simulate.visitor_post(meta.PAGE_ID, "61", "Luis", "¿Abren el domingo?")
    body = simulate.feed_body(meta.PAGE_ID, [reply, post])

    assert set(post["value"]) == set(meta.visitor_post_value())
    parsed = decode_webhook(json.dumps(body).encode())
    assert [change.is_reply for change in parsed.changes] == [True, False]
    assert parsed.changes[1].post_id and parsed.changes[1].post_id.startswith(f"{meta.PAGE_ID}_")
    assert parsed.changes[0].comment_id != simulate.comment(meta.PAGE_ID, "61", "Luis", meta.POST_ID, "x")[
        "value"]["comment_id"], "fresh comment ids"


# --- fuzz: any value anywhere parses or is skipped, nothing else -------------------------------------------------


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found += _paths(child, (*prefix, key))
    return found


def _parses_or_is_malformed(value: Any) -> FeedChange | None:
    """The parser's promise: a change, or `MalformedChangeError`; then what it gives can be stored and keyed."""
    try:
        change = parse(value)
    except MalformedChangeError:
        return None
    assert isinstance(change.dedup_key, str) and change.dedup_key.startswith("feed:")
    assert change.created_time is None or change.created_time.tzinfo == timezone.utc
    assert "\x00" not in change.message + change.from_name + change.from_id
    assert all(is_object_id(found) for found in (change.comment_id, change.post_id, change.parent_id) if found)
    json.dumps(change.to_dict(), ensure_ascii=False).encode("utf-8")  # storable: valid Unicode everywhere
    return change


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(FEED_VALUES, CREATED_TIMES)
def test_any_created_time_parses_or_is_malformed(drawn: dict[str, Any], created_time: Any) -> None:
    change = _parses_or_is_malformed({**drawn, "created_time": created_time})
    if change is not None and isinstance(created_time, int) and not isinstance(created_time, bool):
        assert change.created_time == datetime.fromtimestamp(created_time, tz=timezone.utc)


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(FEED_VALUES, st.data())
def test_any_value_in_any_field_parses_or_is_malformed(drawn: dict[str, Any], data: st.DataObject) -> None:
    value: Any = copy.deepcopy(drawn)
    path = data.draw(st.sampled_from(_paths(value)))
    replacement = data.draw(json_values)
    if path:
        target = value
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = replacement
    else:
        value = replacement
    change = _parses_or_is_malformed(value)
    if change is None:
        return
    try:
        stored = json.dumps(change.to_dict(), ensure_ascii=False, allow_nan=False)
    except ValueError:  # NaN/inf: never in a body the webhook accepted (decode_webhook refuses them first)
        return
    assert FeedChange.from_dict(json.loads(stored)) == change
