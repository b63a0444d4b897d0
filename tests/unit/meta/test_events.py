"""Parsing Messenger webhook deliveries (Meta's documented shapes) into typed events."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meta.events import (
    EventKind,
    InboundEvent,
    WebhookPayloadError,
    decode_webhook,
    parse_messaging_item,
    parse_webhook,
    read_webhook,
)
from tests.support import meta_payloads as meta


def parse_one(item: dict[str, Any], standby: bool = False, page: str = meta.PAGE_ID) -> InboundEvent:
    events = parse_webhook(meta.webhook(meta.entry([item], page=page, standby=standby)))
    assert len(events) == 1
    return events[0]


def round_trip(event: InboundEvent) -> InboundEvent:
    """Through JSON, as the ingest store keeps it."""
    return InboundEvent.from_dict(json.loads(json.dumps(event.to_dict(), ensure_ascii=False)))


# --- messages -----------------------------------------------------------------------------------


def test_text_message() -> None:
    event = parse_one(meta.text_message(mid="m_1", text="¿A qué hora abren?", timestamp=meta.T0 + 5))

    assert event.kind is EventKind.MESSAGE
    assert (event.page_id, event.user_id, event.mid, event.timestamp_ms) == (
        meta.PAGE_ID,
        meta.USER_ID,
        "m_1",
        meta.T0 + 5,
    )
    assert event.text == "¿A qué hora abren?"
    assert event.user_text() == "¿A qué hora abren?"
    assert event.is_user_input and not event.standby
    assert event.conversation_key == f"{meta.PAGE_ID}:{meta.USER_ID}"
    # Only what actions and the console read: the mid is the UserUttered's message_id, the time the journal's.
    assert event.metadata() == {"page_id": meta.PAGE_ID}


def test_quick_reply_payload_wins_and_shown_text_is_kept() -> None:
    event = parse_one(meta.quick_reply("m_2", text="Sí, reservar", payload='/reservar{"personas": 2}'))

    assert event.kind is EventKind.MESSAGE
    assert event.user_text() == '/reservar{"personas": 2}'
    metadata = event.metadata()
    assert metadata["payload"] == '/reservar{"personas": 2}'
    assert metadata["shown_text"] == "Sí, reservar"


def test_message_from_an_ad_keeps_its_referral() -> None:
    item = meta.text_message(mid="m_3", text="Hola, vi el anuncio")
    item["message"]["referral"] = meta.ad_referral(ad_id="23851234567890123")

    event = parse_one(item)

    assert event.user_text() == "Hola, vi el anuncio"
    assert event.metadata()["referral"]["ad_id"] == "23851234567890123"
    assert event.metadata()["referral"]["source"] == "ADS"


def test_message_fields_meta_adds_later_are_kept_not_fatal() -> None:
    item = meta.text_message(mid="m_4", text="respuesta")
    item["message"]["reply_to"] = {"mid": "m_earlier", "is_self_reply": False}
    item["message"]["nlp"] = {"entities": {}, "detected_locales": [{"locale": "es_LA", "confidence": 0.99}]}

    event = parse_one(item)

    assert event.user_text() == "respuesta"
    assert event.raw["message"]["reply_to"] == {"mid": "m_earlier", "is_self_reply": False}
    assert round_trip(event).raw["message"]["nlp"]["detected_locales"][0]["locale"] == "es_LA"


# --- postbacks ----------------------------------------------------------------------------------


def test_postback_with_title_and_payload() -> None:
    event = parse_one(meta.postback("m_pb", title="Ver menú", payload="/ver_menu"))

    assert event.kind is EventKind.POSTBACK
    assert (event.user_id, event.mid, event.title, event.payload) == (meta.USER_ID, "m_pb", "Ver menú", "/ver_menu")
    assert event.user_text() == "/ver_menu"
    assert event.is_user_input
    metadata = event.metadata()
    assert (metadata["kind"], metadata["title"], metadata["payload"]) == ("postback", "Ver menú", "/ver_menu")
    assert "referral" not in metadata and "shown_text" not in metadata


def test_postback_with_referral_from_an_m_me_link() -> None:
    event = parse_one(meta.postback("m_pb2", "Empezar", "GET_STARTED", referral=meta.shortlink_referral("qr_mesa_7")))

    assert event.user_text() == "GET_STARTED"
    assert event.referral == {"ref": "qr_mesa_7", "source": "SHORTLINK", "type": "OPEN_THREAD"}
    assert event.metadata()["referral"] == {"ref": "qr_mesa_7", "source": "SHORTLINK", "type": "OPEN_THREAD"}


def test_postback_without_payload_falls_back_to_its_title() -> None:
    """The payload only reaches the app that sent the button; other apps see the title."""
    event = parse_one(meta.postback("m_pb3", title="Hablar con una persona", payload=None))

    assert event.payload is None
    assert event.user_text() == "Hablar con una persona"


# --- attachments --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "surrogate"),
    [("image", "[imagen]"), ("audio", "[audio]"), ("video", "[video]"), ("file", "[archivo]")],
)
def test_media_attachment_becomes_a_surrogate_with_metadata(kind: str, surrogate: str) -> None:
    attachment = meta.media(kind, url=f"https://scontent.xx.fbcdn.net/v/{kind}.bin")

    event = parse_one(meta.attachment_message("m_att", [attachment]))

    assert event.kind is EventKind.MESSAGE and event.is_user_input
    assert event.user_text() == surrogate
    assert event.metadata()["attachments"] == [
        {"type": kind, "payload": {"url": f"https://scontent.xx.fbcdn.net/v/{kind}.bin"}}
    ]


def test_location_surrogate_carries_the_coordinates() -> None:
    event = parse_one(meta.attachment_message("m_loc", [meta.location(-0.180653, -78.467834)]))

    assert event.user_text() == "[ubicación -0.180653,-78.467834]"
    assert event.metadata()["attachments"][0]["payload"]["coordinates"] == {"lat": -0.180653, "long": -78.467834}


def test_location_without_coordinates_does_not_crash() -> None:
    attachment = {"type": "location", "payload": {}}

    assert parse_one(meta.attachment_message("m_loc2", [attachment])).user_text() == "[ubicación]"


@pytest.mark.parametrize("attachment", [meta.fallback(), meta.fallback_without_payload()])
def test_fallback_link_share(attachment: dict[str, Any]) -> None:
    event = parse_one(meta.attachment_message("m_fb", [attachment]))

    assert event.user_text() == "[enlace]"
    assert event.metadata()["attachments"] == [attachment]


@pytest.mark.parametrize("transition", [False, True])
def test_thumbs_up_sticker_is_a_thumbs_up(transition: bool) -> None:
    """Until 30 Aug 2026 Meta sends one sticker twice (an `image` and a `sticker`): still one 👍."""
    event = parse_one(meta.sticker_message("m_st", meta.THUMBS_UP_STICKER_ID, transition=transition))

    assert event.user_text() == "👍"
    assert len(event.metadata()["attachments"]) == (2 if transition else 1)


@pytest.mark.parametrize("transition", [False, True])
def test_other_sticker_is_one_surrogate(transition: bool) -> None:
    event = parse_one(meta.sticker_message("m_st2", sticker_id=1_845_000_000_000_001, transition=transition))

    assert event.user_text() == "[imagen]"


def test_two_different_stickers_are_two_surrogates() -> None:
    attachments = meta.sticker_attachments(meta.THUMBS_UP_STICKER_ID, transition=False)
    attachments += meta.sticker_attachments(1_845_000_000_000_001, transition=False)

    assert parse_one(meta.attachment_message("m_st3", attachments)).user_text() == "👍 [imagen]"


def test_several_attachments_keep_their_order() -> None:
    attachments = [meta.media("image"), meta.media("audio"), meta.location(1.5, 2.5)]

    assert parse_one(meta.attachment_message("m_many", attachments)).user_text() == (
        "[imagen] [audio] [ubicación 1.5,2.5]"
    )


def test_text_with_an_attachment_uses_the_text() -> None:
    event = parse_one(meta.attachment_message("m_cap", [meta.media("image")], text="mi comprobante"))

    assert event.user_text() == "mi comprobante"
    assert event.metadata()["attachments"][0]["type"] == "image"


@pytest.mark.parametrize(
    "attachments",
    [
        [{"type": "reel", "payload": {"url": "https://www.facebook.com/reel/1", "reel_video_id": 1}}],
        [{"payload": None}],
        [{"type": "image", "payload": None}],
        ["not an object", {"type": "video", "payload": {"url": "https://v"}}],
        [{"type": "image", "payload": {"url": "https://s", "sticker_id": ["unexpected"]}}],
    ],
)
def test_unusual_attachments_never_crash(attachments: list[Any]) -> None:
    event = parse_one(meta.attachment_message("m_odd", attachments))

    text = event.user_text()
    assert text.startswith("[") and text.endswith("]")
    assert event.is_user_input


def test_unknown_attachment_type_is_named_after_its_type() -> None:
    attachment = {"type": "ig_reel", "payload": {"url": "https://www.instagram.com/reel/1"}}

    assert parse_one(meta.attachment_message("m_ig", [attachment])).user_text() == "[ig_reel]"


def test_message_without_text_or_attachments() -> None:
    item = meta.text_message(mid="m_empty")
    del item["message"]["text"]

    assert parse_one(item).user_text() == "[mensaje vacío]"


# --- referrals ----------------------------------------------------------------------------------


def test_m_me_referral_is_kept_and_not_user_input() -> None:
    event = parse_one(meta.referral(meta.shortlink_referral("promo_enero")))

    assert event.kind is EventKind.REFERRAL
    assert event.user_id == meta.USER_ID
    assert not event.is_user_input
    assert event.metadata()["referral"] == {"ref": "promo_enero", "source": "SHORTLINK", "type": "OPEN_THREAD"}


def test_ad_referral_keeps_ad_id_and_context() -> None:
    event = parse_one(meta.referral(meta.ad_referral(ad_id="23851234567890123")))

    assert event.kind is EventKind.REFERRAL
    assert event.referral is not None
    assert event.referral["ad_id"] == "23851234567890123"
    assert event.metadata()["referral"]["ads_context_data"]["ad_title"] == "Entradas al 2x1"


# --- echoes -------------------------------------------------------------------------------------


def test_echo_of_our_own_app() -> None:
    event = parse_one(meta.echo("m_echo1", "¡Hola! ¿En qué te ayudo?", app_id=int(meta.OUR_APP_ID)))

    assert event.kind is EventKind.ECHO
    assert event.user_id == meta.USER_ID  # the recipient, not the page that sent it
    assert event.conversation_key == f"{meta.PAGE_ID}:{meta.USER_ID}"
    assert event.app_id == meta.OUR_APP_ID
    assert event.is_own_echo(meta.OUR_APP_ID)
    assert not event.is_page_inbox_echo
    assert not event.is_user_input


def test_echo_from_the_page_inbox_is_a_person_writing() -> None:
    event = parse_one(meta.echo("m_echo2", "Soy Ana, del equipo", app_id=meta.PAGE_INBOX_APP_ID_NUMBER))

    assert event.kind is EventKind.ECHO
    assert event.user_id == meta.USER_ID
    assert event.is_page_inbox_echo
    assert not event.is_own_echo(meta.OUR_APP_ID)


def test_echo_without_app_id_counts_as_the_page_inbox() -> None:
    event = parse_one(meta.echo("m_echo3", "escrito a mano", app_id=None))

    assert event.is_page_inbox_echo
    assert not event.is_own_echo(meta.OUR_APP_ID)


def test_echo_from_another_app() -> None:
    event = parse_one(meta.echo("m_echo4", "Mensaje de otra app", app_id=int(meta.OTHER_APP_ID)))

    assert event.kind is EventKind.ECHO
    assert not event.is_own_echo(meta.OUR_APP_ID)
    assert not event.is_page_inbox_echo


def test_no_echo_is_our_own_when_our_app_id_is_unknown() -> None:
    event = parse_one(meta.echo("m_echo5", "x", app_id=int(meta.OUR_APP_ID)))

    assert not event.is_own_echo("")


# --- receipts, reactions, standby, handover ------------------------------------------------------


def test_delivery_receipt() -> None:
    event = parse_one(meta.delivery(["m_sent1", "m_sent2"], watermark=meta.T0 + 100))

    assert event.kind is EventKind.DELIVERY
    assert event.user_id == meta.USER_ID
    assert event.timestamp_ms == 0  # Meta's delivery carries only a watermark
    assert event.mid is None
    assert not event.is_user_input


def test_read_receipt() -> None:
    event = parse_one(meta.read(watermark=meta.T0 + 200))

    assert event.kind is EventKind.READ
    assert event.user_id == meta.USER_ID and event.timestamp_ms == meta.T0
    assert not event.is_user_input


def test_reaction_points_at_the_reacted_message() -> None:
    event = parse_one(meta.reaction("m_reacted_to", action="react", emoji="\u2764\ufe0f"))

    assert event.kind is EventKind.REACTION
    assert event.mid == "m_reacted_to"
    assert not event.is_user_input


def test_standby_items_are_marked_and_never_user_input() -> None:
    body = meta.webhook(
        meta.entry([meta.text_message(mid="m_sb", text="hola"), meta.postback("m_sb2", "Menú", "/m")], standby=True)
    )

    events = parse_webhook(body)

    assert [e.kind for e in events] == [EventKind.MESSAGE, EventKind.POSTBACK]
    assert all(e.standby for e in events)
    assert not any(e.is_user_input for e in events)
    assert events[0].user_text() == "hola"  # still readable, e.g. for a human agent's view


@pytest.mark.parametrize(
    ("item", "user_id"),
    [
        (meta.pass_thread_control(), meta.USER_ID),
        (meta.take_thread_control(), meta.USER_ID),
        (meta.request_thread_control(), meta.USER_ID),
        (meta.app_roles(), ""),
    ],
)
def test_handover_protocol_items(item: dict[str, Any], user_id: str) -> None:
    event = parse_one(item)

    assert event.kind is EventKind.HANDOVER
    assert event.user_id == user_id
    assert not event.is_user_input
    assert dict(event.raw) == item


# --- unknown and malformed ------------------------------------------------------------------------


def test_unknown_item_is_kept_with_raw() -> None:
    item = meta.message_edit("m_edited", "hola (editado)")

    event = parse_one(item)

    assert event.kind is EventKind.UNKNOWN
    assert event.user_id == meta.USER_ID
    assert event.raw["message_edit"] == {"mid": "m_edited", "text": "hola (editado)", "num_edit": 1}
    assert not event.is_user_input


def test_entry_with_changes_only_is_one_unknown_event() -> None:
    entry = meta.changes_entry(time=meta.T0 + 42)

    events = parse_webhook(meta.webhook(entry))

    assert len(events) == 1
    event = events[0]
    assert event.kind is EventKind.UNKNOWN
    assert (event.page_id, event.user_id, event.timestamp_ms) == (meta.PAGE_ID, "", meta.T0 + 42)
    assert dict(event.raw) == entry


def test_items_that_are_not_objects_are_skipped_and_alone_refused() -> None:
    """Was: kept as UNKNOWN events (stored noise). Now skipped beside good items, refused when alone."""
    mixed = {"object": "page", "entry": [{"id": meta.PAGE_ID, "time": meta.T0, "messaging": ["?", meta.read(1), 3]}]}
    parsed = read_webhook(mixed)

    assert [e.kind for e in parsed.events] == [EventKind.READ]
    assert [(s.item_index, s.reason) for s in parsed.skipped] == [(0, "an item is not an object")] + [
        (2, "an item is not an object")
    ]
    with pytest.raises(WebhookPayloadError, match="no usable item"):
        parse_webhook({"object": "page", "entry": [{"id": meta.PAGE_ID, "time": meta.T0, "messaging": ["?", 3]}]})


# --- batches ------------------------------------------------------------------------------------


def test_batched_body_keeps_entry_and_item_order() -> None:
    first = meta.entry(
        [
            meta.text_message(mid="m_a1", text="uno", timestamp=meta.T0 + 1),
            meta.read(watermark=meta.T0, timestamp=meta.T0 + 2),
            meta.postback("m_a3", "Menú", "/menu", timestamp=meta.T0 + 3),
        ],
        page=meta.PAGE_ID,
    )
    second = meta.entry(
        [
            meta.echo(
                "m_b1", "respuesta", app_id=int(meta.OUR_APP_ID), page=meta.OTHER_PAGE_ID, recipient=meta.OTHER_USER_ID
            ),
            meta.text_message(mid="m_b2", text="dos", sender=meta.OTHER_USER_ID, page=meta.OTHER_PAGE_ID),
            meta.delivery(["m_b1"], watermark=meta.T0, sender=meta.OTHER_USER_ID, page=meta.OTHER_PAGE_ID),
            meta.reaction("m_b1"),
        ],
        page=meta.OTHER_PAGE_ID,
    )

    events = parse_webhook(meta.webhook(first, second))

    assert [(e.page_id, e.kind) for e in events] == [
        (meta.PAGE_ID, EventKind.MESSAGE),
        (meta.PAGE_ID, EventKind.READ),
        (meta.PAGE_ID, EventKind.POSTBACK),
        (meta.OTHER_PAGE_ID, EventKind.ECHO),
        (meta.OTHER_PAGE_ID, EventKind.MESSAGE),
        (meta.OTHER_PAGE_ID, EventKind.DELIVERY),
        (meta.OTHER_PAGE_ID, EventKind.REACTION),
    ]
    assert [e.raw for e in events] == first["messaging"] + second["messaging"]
    assert events[4].user_id == meta.OTHER_USER_ID and events[3].user_id == meta.OTHER_USER_ID


# --- envelope errors ------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [None, [], "page", 42, [meta.webhook()]])
def test_body_that_is_not_an_object_is_rejected(body: Any) -> None:
    with pytest.raises(WebhookPayloadError, match="not a JSON object"):
        parse_webhook(body)


@pytest.mark.parametrize("object_name", ["instagram", "user", "whatsapp_business_account", None])
def test_object_other_than_page_is_rejected(object_name: str | None) -> None:
    body: dict[str, Any] = {"object": object_name, "entry": []}

    with pytest.raises(WebhookPayloadError, match="expected 'page'"):
        parse_webhook(body)


@pytest.mark.parametrize("entry", ["<missing>", None, {"id": meta.PAGE_ID}, "entry"])
def test_entry_missing_or_not_a_list_is_rejected(entry: Any) -> None:
    body: dict[str, Any] = {"object": "page"}
    if entry != "<missing>":
        body["entry"] = entry

    with pytest.raises(WebhookPayloadError, match="entry is missing or not a list"):
        parse_webhook(body)


def test_entry_that_is_not_an_object_is_rejected() -> None:
    with pytest.raises(WebhookPayloadError, match="an entry is not an object"):
        parse_webhook({"object": "page", "entry": [meta.entry([meta.read(1)]), "oops"]})


def test_payload_errors_are_value_errors_for_the_webhook_answer() -> None:
    assert issubclass(WebhookPayloadError, ValueError)


def test_empty_entry_list_is_no_events() -> None:
    assert parse_webhook(meta.webhook()) == []


# --- dedup keys ---------------------------------------------------------------------------------


def test_redelivered_message_has_the_same_dedup_key() -> None:
    body = meta.webhook(meta.entry([meta.text_message(mid="m_same", text="hola")]))

    first = parse_webhook(body)[0]
    again = parse_webhook(copy.deepcopy(body))[0]

    assert first.dedup_key == again.dedup_key == "message:m_same"


def test_different_mids_have_different_dedup_keys() -> None:
    one = parse_one(meta.text_message(mid="m_1", text="hola"))
    two = parse_one(meta.text_message(mid="m_2", text="hola"))

    assert one.dedup_key != two.dedup_key


def test_echo_and_postback_dedup_on_their_mid() -> None:
    assert parse_one(meta.echo("m_e", "x", app_id=1)).dedup_key == "echo:m_e"
    assert parse_one(meta.postback("m_p", "T", "/p")).dedup_key == "postback:m_p"


def test_receipts_dedup_on_their_content() -> None:
    first = parse_one(meta.read(watermark=meta.T0 + 1))
    redelivered = parse_one(meta.read(watermark=meta.T0 + 1))
    later = parse_one(meta.read(watermark=meta.T0 + 2))
    other_page = parse_one(meta.read(watermark=meta.T0 + 1), page=meta.OTHER_PAGE_ID)
    as_standby = parse_one(meta.read(watermark=meta.T0 + 1), standby=True)

    assert first.dedup_key == redelivered.dedup_key
    assert first.dedup_key.startswith("sha256:")
    assert len({first.dedup_key, later.dedup_key, other_page.dedup_key, as_standby.dedup_key}) == 4


def test_content_dedup_key_ignores_json_key_order() -> None:
    item = meta.delivery(["m_x"], watermark=meta.T0)
    reordered = dict(reversed(list(item.items())))
    reordered["delivery"] = dict(reversed(list(item["delivery"].items())))

    assert parse_one(item).dedup_key == parse_one(reordered).dedup_key


def test_react_and_unreact_on_one_message_are_different_events() -> None:
    react = parse_one(meta.reaction("m_target", action="react"))
    unreact = parse_one(meta.reaction("m_target", action="unreact"))

    assert react.dedup_key != unreact.dedup_key


# --- to_dict / from_dict ------------------------------------------------------------------------


ALL_SHAPES: list[tuple[str, dict[str, Any], bool]] = [
    ("text", meta.text_message(mid="m_t", text="hola"), False),
    ("quick_reply", meta.quick_reply("m_q", "Sí", "/affirm"), False),
    ("postback", meta.postback("m_p", "Empezar", "GET_STARTED", referral=meta.ad_referral()), False),
    ("location", meta.attachment_message("m_l", [meta.location(-2.17, -79.92)]), False),
    ("sticker", meta.sticker_message("m_s", transition=True), False),
    ("referral", meta.referral(meta.shortlink_referral()), False),
    ("own_echo", meta.echo("m_e", "hola", app_id=int(meta.OUR_APP_ID)), False),
    ("inbox_echo", meta.echo("m_i", "hola", app_id=meta.PAGE_INBOX_APP_ID_NUMBER), False),
    ("delivery", meta.delivery(["m_e"], watermark=meta.T0), False),
    ("read", meta.read(watermark=meta.T0), False),
    ("reaction", meta.reaction("m_e"), False),
    ("handover", meta.pass_thread_control(), False),
    ("app_roles", meta.app_roles(), False),
    ("unknown", meta.message_edit("m_t", "hola!"), False),
    ("standby_text", meta.text_message(mid="m_sb", text="hola"), True),
]


@pytest.mark.parametrize(
    ("item", "standby"), [(item, standby) for _, item, standby in ALL_SHAPES], ids=[name for name, _, _ in ALL_SHAPES]
)
def test_round_trip_keeps_every_field_and_unknown_extras(item: dict[str, Any], standby: bool) -> None:
    item = {**item, "x_future_field": {"nested": [1, "dos", None]}}
    event = parse_one(item, standby=standby)

    restored = round_trip(event)

    assert restored == event
    assert restored.dedup_key == event.dedup_key
    assert restored.raw["x_future_field"] == {"nested": [1, "dos", None]}
    assert restored.user_text() == event.user_text()
    assert restored.metadata() == event.metadata()


def test_round_trip_of_an_entry_with_changes_only() -> None:
    event = parse_webhook(meta.webhook(meta.changes_entry(time=meta.T0 + 7)))[0]

    assert round_trip(event) == event


def test_parse_messaging_item_directly_uses_the_page_given() -> None:
    event = parse_messaging_item(meta.text_message(mid="m_d"), meta.OTHER_PAGE_ID, standby=True)

    assert (event.page_id, event.standby, event.mid) == (meta.OTHER_PAGE_ID, True, "m_d")


# --- property: batches ----------------------------------------------------------------------------

ids = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_-", min_size=1, max_size=24)
psids = st.integers(min_value=10**15, max_value=10**16 - 1).map(str)
texts = st.text(max_size=40)
timestamps = st.integers(min_value=1, max_value=2**41)
json_scalars = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
extra_fields = st.dictionaries(st.text(min_size=1, max_size=10).map(lambda k: "x_" + k), json_values, max_size=3)


def kind_and_item() -> st.SearchStrategy[tuple[EventKind, dict[str, Any]]]:
    """Every generator above with random content: (expected kind, item)."""
    message = st.builds(
        lambda m, t, s, ts: meta.text_message(mid=m, text=t, sender=s, timestamp=ts), ids, texts, psids, timestamps
    )
    quick = st.builds(lambda m, t, p, s: meta.quick_reply(m, t, p, sender=s), ids, texts, texts, psids)
    postback = st.builds(
        lambda m, t, p, r: meta.postback(m, t, p, referral=r),
        ids,
        texts,
        texts,
        st.none() | st.builds(meta.shortlink_referral, ids) | st.builds(meta.ad_referral, ids),
    )
    attachment = (
        st.sampled_from(["image", "audio", "video", "file"]).map(meta.media)
        | st.builds(meta.location, st.floats(-90, 90), st.floats(-180, 180))
        | st.just(meta.fallback())
        | st.just(meta.fallback_without_payload())
    )
    with_attachments = st.builds(meta.attachment_message, ids, st.lists(attachment, min_size=1, max_size=3))
    sticker = st.builds(meta.sticker_message, ids, st.sampled_from([meta.THUMBS_UP_STICKER_ID, 123]), st.booleans())
    referral = st.builds(meta.referral, st.builds(meta.shortlink_referral, ids) | st.builds(meta.ad_referral, ids))
    echo = st.builds(
        lambda m, t, a, r: meta.echo(m, t, app_id=a, recipient=r),
        ids,
        texts,
        st.sampled_from([int(meta.OUR_APP_ID), meta.PAGE_INBOX_APP_ID_NUMBER, int(meta.OTHER_APP_ID), None]),
        psids,
    )
    delivery = st.builds(
        lambda mids, w, s: meta.delivery(mids, w, sender=s), st.lists(ids, max_size=3), timestamps, psids
    )
    read = st.builds(lambda w, s: meta.read(w, sender=s), timestamps, psids)
    reaction = st.builds(meta.reaction, ids, st.sampled_from(["react", "unreact"]))
    handover = st.one_of(
        st.builds(meta.pass_thread_control),
        st.builds(meta.take_thread_control),
        st.builds(meta.request_thread_control),
        st.builds(meta.app_roles),
    )
    unknown = st.builds(meta.message_edit, ids, texts)
    return st.one_of(
        message.map(lambda i: (EventKind.MESSAGE, i)),
        quick.map(lambda i: (EventKind.MESSAGE, i)),
        with_attachments.map(lambda i: (EventKind.MESSAGE, i)),
        sticker.map(lambda i: (EventKind.MESSAGE, i)),
        postback.map(lambda i: (EventKind.POSTBACK, i)),
        referral.map(lambda i: (EventKind.REFERRAL, i)),
        echo.map(lambda i: (EventKind.ECHO, i)),
        delivery.map(lambda i: (EventKind.DELIVERY, i)),
        read.map(lambda i: (EventKind.READ, i)),
        reaction.map(lambda i: (EventKind.REACTION, i)),
        handover.map(lambda i: (EventKind.HANDOVER, i)),
        unknown.map(lambda i: (EventKind.UNKNOWN, i)),
    )


items_with_extras = st.tuples(kind_and_item(), extra_fields).map(lambda pair: (pair[0][0], {**pair[0][1], **pair[1]}))
entries = st.tuples(psids, st.booleans(), st.lists(items_with_extras, min_size=1, max_size=6), extra_fields)
bodies = st.tuples(st.lists(entries, min_size=1, max_size=4), extra_fields)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(bodies)
def test_every_item_of_a_batch_becomes_one_event_in_order(
    body_spec: tuple[list[tuple[str, bool, list[tuple[EventKind, dict[str, Any]]], dict[str, Any]]], dict[str, Any]],
) -> None:
    entry_specs, body_extras = body_spec
    body: dict[str, Any] = {"object": "page", "entry": [], **body_extras}
    expected: list[tuple[str, bool, EventKind, dict[str, Any]]] = []
    for page_id, standby, kinds_and_items, entry_extras in entry_specs:
        items = [item for _, item in kinds_and_items]
        body["entry"].append({**meta.entry(items, page=page_id, standby=standby), **entry_extras})
        expected += [(page_id, standby, kind, item) for kind, item in kinds_and_items]

    events = parse_webhook(json.loads(json.dumps(body)))

    assert len(events) == len(expected)
    for event, (page_id, standby, kind, item) in zip(events, expected, strict=True):
        assert (event.page_id, event.standby, event.kind) == (page_id, standby, kind)
        assert dict(event.raw) == item
        assert isinstance(event.user_text(), str)
        assert round_trip(event) == event
        if kind in (EventKind.MESSAGE, EventKind.POSTBACK):
            assert event.is_user_input is not standby


# --- malformed but signed bodies (issue 8, item 7) --------------------------------------------------
# Each of these once answered 500 (or was stored and then failed three times in processing).


def _raw(body: Any) -> bytes:
    return json.dumps(body).encode("utf-8")


def _one_item_body(item: Any) -> bytes:
    return _raw(meta.webhook(meta.entry([item])))


def _with(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    item = meta.text_message(mid="m_bad")
    target = item
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return item


MALFORMED_BODIES: list[tuple[str, bytes]] = [
    ("messaging_not_a_list", _raw({"object": "page", "entry": [{"id": meta.PAGE_ID, "messaging": 5}]})),
    ("standby_not_a_list", _raw({"object": "page", "entry": [{"id": meta.PAGE_ID, "standby": "x"}]})),
    ("attachments_not_a_list", _one_item_body(meta.attachment_message("m_a", 7))),  # type: ignore[arg-type]
    ("timestamp_1e400", _one_item_body(meta.text_message()).replace(str(meta.T0).encode(), b"1e400")),
    ("timestamp_float", _one_item_body(meta.text_message()).replace(str(meta.T0).encode(), b"1.5e300")),
    ("timestamp_huge_int", _one_item_body(meta.text_message()).replace(str(meta.T0).encode(), b"9" * 25)),
    ("timestamp_string", _one_item_body(_with(("timestamp",), "ayer"))),
    ("timestamp_negative", _one_item_body(_with(("timestamp",), -5))),
    ("timestamp_bool", _one_item_body(_with(("timestamp",), True))),
    (
        "int_with_5000_digits",
        _raw(meta.webhook(meta.entry([meta.read(1)]))).replace(b'"page"', b'"page","n":' + b"7" * 5000),
    ),
    ("deep_nesting_100k", b'{"object":"page","entry":' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    ("deep_nesting_40", _one_item_body({**meta.text_message(), "x_extra": json.loads("[" * 40 + "]" * 40)})),
    ("text_number", _one_item_body(_with(("message", "text"), 5))),
    ("text_object", _one_item_body(_with(("message", "text"), {"body": "hola"}))),
    ("message_not_an_object", _one_item_body(_with(("message",), "hola"))),
    ("mid_object", _one_item_body(_with(("message", "mid"), {"id": 1}))),
    ("quick_reply_payload_list", _one_item_body(_with(("message", "quick_reply"), {"payload": ["/a"]}))),
    ("entry_not_an_object", _raw({"object": "page", "entry": ["oops"]})),
    ("entry_without_id", _raw({"object": "page", "entry": [{"messaging": [meta.text_message()]}]})),
    ("entry_id_object", _raw({"object": "page", "entry": [{"id": {"x": 1}, "messaging": [meta.text_message()]}]})),
    ("message_without_sender", _one_item_body({k: v for k, v in meta.text_message().items() if k != "sender"})),
    ("sender_not_an_object", _one_item_body(_with(("sender",), "7012345678901234"))),
    ("sender_id_float", _one_item_body(_with(("sender", "id"), 1.5))),
    ("sender_id_bool", _one_item_body(_with(("sender", "id"), True))),
    ("echo_without_recipient", _one_item_body({**meta.echo("m_e", "hola", app_id=None), "recipient": {}})),
    ("postback_not_an_object", _one_item_body({**meta.referral(meta.shortlink_referral()), "postback": 3})),
    ("reaction_without_sender", _one_item_body({k: v for k, v in meta.reaction("m_r").items() if k != "sender"})),
    ("nan", _one_item_body(meta.text_message()).replace(str(meta.T0).encode(), b"NaN")),
    ("infinity", _one_item_body(meta.text_message()).replace(str(meta.T0).encode(), b"-Infinity")),
    ("lone_surrogate", _one_item_body(meta.text_message(text="x")).replace(b'"x"', b'"\\ud800"')),
    ("invalid_utf8", b'{"object": "page", "entry": [], "x": "\xff\xfe"}'),
    ("not_json", b"object=page&entry="),
    ("empty", b""),
    ("items_all_not_objects", _raw({"object": "page", "entry": [{"id": meta.PAGE_ID, "messaging": [1, "dos", None]}]})),
]


@pytest.mark.parametrize("raw", [raw for _, raw in MALFORMED_BODIES], ids=[name for name, _ in MALFORMED_BODIES])
def test_malformed_bodies_are_refused_whole_with_a_payload_error(raw: bytes) -> None:
    """Proves each shape that used to crash the webhook (500) or poison the store is refused before storage."""
    with pytest.raises(WebhookPayloadError):
        decode_webhook(raw)


def test_one_bad_item_among_good_ones_is_skipped_and_the_others_kept() -> None:
    """Meta's body is signed: refusing it whole would lose the good items with the bad one."""
    good = meta.text_message(mid="m_good")
    bad = _with(("message", "text"), 5)
    parsed = decode_webhook(_raw(meta.webhook(meta.entry([bad, good, meta.read(1)]))))

    assert [(e.kind, e.mid) for e in parsed.events] == [(EventKind.MESSAGE, "m_good"), (EventKind.READ, None)]
    assert [(s.entry_index, s.list_name, s.item_index) for s in parsed.skipped] == [(0, "messaging", 0)]
    assert parsed.skipped[0].reason == "message.text is not a string"


def test_coordinates_that_are_not_an_object_do_not_crash_the_surrogate() -> None:
    """Was: `coordinates: ["lat", "long"]` passed the `in` test and crashed `user_text()` with a TypeError."""
    attachment = {"type": "location", "payload": {"coordinates": ["lat", "long"]}}
    event = parse_one(meta.attachment_message("m_loc", [attachment]))

    assert event.user_text() == "[ubicación]"


def test_well_formed_numbers_and_ids_still_pass() -> None:
    """Meta's app ids arrive as JSON numbers; page ids may be numbers too: both stay accepted."""
    echo = meta.echo("m_e", "hola", app_id=meta.PAGE_INBOX_APP_ID_NUMBER)
    parsed = decode_webhook(_raw({"object": "page", "entry": [{"id": int(meta.PAGE_ID), "messaging": [echo]}]}))

    (event,) = parsed.events
    assert (event.page_id, event.app_id, event.timestamp_ms) == (
        meta.PAGE_ID,
        str(meta.PAGE_INBOX_APP_ID_NUMBER),
        meta.T0,
    )


# --- Rasa's `/command` syntax (found by tests/integration/test_webhook_processing_fuzz.py) -------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/back", "back"),  # was Rasa's action_back: the user's turn undone, no reply at all
        ("/restart", "restart"),
        ('  //request_human{"x":1}', 'request_human{"x":1}'),
        ("/", "/"),  # no command: stays as typed
        ("hola /restart", "hola /restart"),
    ],
)
def test_typed_text_never_reaches_rasa_as_a_command(text: str, expected: str) -> None:
    (event,) = parse_webhook(meta.webhook(meta.entry([meta.text_message(text=text)])))
    assert event.user_text() == expected
    assert event.shown_text() == text, "the live view shows what the user typed"
    assert event.metadata().get("shown_text", event.user_text()) == text, "and so does the console's transcript"


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ('/ask_knowledge{"entry_id":"horario"}', '/ask_knowledge{"entry_id":"horario"}'),  # our own buttons
        ("/request_human", "/request_human"),
        ("/back", "back"),  # Rasa's conversation controls answer nothing: never from Messenger
        ("/restart{}", "restart{}"),
        ("/session_start", "session_start"),
    ],
)
def test_payloads_may_name_intents_but_not_rasa_controls(payload: str, expected: str) -> None:
    (quick,) = parse_webhook(meta.webhook(meta.entry([meta.quick_reply("m_q", "Sí", payload)])))
    (button,) = parse_webhook(meta.webhook(meta.entry([meta.postback("m_p", "Sí", payload)])))
    assert quick.user_text() == button.user_text() == expected
