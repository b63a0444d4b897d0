"""Meta's delivery and read receipts (`message_deliveries`, `message_reads`): the watermark and the delivered mids,
read as the rest of the module reads fields (a wrong shape refuses the item, an absent field is fine)."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pytest

from meta.events import EventKind, InboundEvent, parse_webhook, read_webhook
from tests.support import meta_payloads as meta


def one(item: dict[str, Any], standby: bool = False) -> InboundEvent:
    [event] = parse_webhook(meta.webhook(meta.entry([item], standby=standby)))
    return event


def test_a_delivery_carries_its_watermark_and_mids() -> None:
    event = one(meta.delivery(["m_1", "m_2"], watermark=1_700_000_000_123))

    assert (event.kind, event.watermark_ms, event.mids) == (EventKind.DELIVERY, 1_700_000_000_123, ("m_1", "m_2"))
    assert event.watermark() == datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=timezone.utc)
    assert event.is_receipt and not event.is_user_input and not event.opens_window


def test_a_read_carries_its_watermark_and_no_mids() -> None:
    event = one(meta.read(watermark=meta.T0 + 200))

    assert (event.kind, event.watermark_ms, event.mids) == (EventKind.READ, meta.T0 + 200, ())
    assert event.watermark() is not None and event.watermark().tzinfo == timezone.utc
    assert event.is_receipt


def test_a_receipt_survives_the_journal_s_json() -> None:
    event = one(meta.delivery(["m_1"], watermark=meta.T0))
    again = InboundEvent.from_dict(json.loads(json.dumps(event.to_dict())))

    assert (again.kind, again.watermark_ms, again.mids) == (event.kind, event.watermark_ms, event.mids)


def test_absent_fields_are_none_and_empty() -> None:
    delivery = one({"sender": {"id": meta.USER_ID}, "recipient": {"id": meta.PAGE_ID}, "delivery": {}})
    read = one({"sender": {"id": meta.USER_ID}, "recipient": {"id": meta.PAGE_ID}, "read": {}})

    assert (delivery.watermark_ms, delivery.mids, delivery.watermark()) == (None, (), None)
    assert (read.watermark_ms, read.watermark()) == (None, None)


def test_mids_that_are_not_ids_are_left_out() -> None:
    event = one(meta.delivery(["m_1", 7, None, "", {"mid": "x"}, "m_2"], watermark=meta.T0))  # type: ignore[list-item]

    assert event.mids == ("m_1", "m_2")


@pytest.mark.parametrize(
    "receipt",
    [
        {"delivery": {"watermark": "1700000000000", "mids": ["m_1"]}},
        {"delivery": {"watermark": True, "mids": ["m_1"]}},
        {"delivery": {"watermark": -1, "mids": ["m_1"]}},
        {"delivery": {"watermark": 2**60, "mids": ["m_1"]}},
        {"delivery": {"watermark": 1.5, "mids": ["m_1"]}},
        {"delivery": {"watermark": None, "mids": ["m_1"]}},
        {"read": {"watermark": "ayer"}},
        {"read": {"watermark": [1]}},
        {"read": {"watermark": {"ms": 1}}},
    ],
)
def test_an_odd_watermark_is_ignored_and_the_receipt_kept(receipt: dict[str, Any]) -> None:
    item = {"sender": {"id": meta.USER_ID}, "recipient": {"id": meta.PAGE_ID}, **receipt}
    good = meta.text_message(mid="m_ok")

    parsed = read_webhook(meta.webhook(meta.entry([item, good])))

    assert parsed.skipped == ()
    [receipt_event, message] = parsed.events
    assert message.mid == "m_ok"
    assert receipt_event.is_receipt and receipt_event.watermark_ms is None and receipt_event.watermark() is None
    expected_mids = ("m_1",) if receipt_event.kind is EventKind.DELIVERY else ()
    assert receipt_event.mids == expected_mids


def test_an_odd_watermark_survives_the_journal_s_json() -> None:
    """The journal stores Meta's item as it came: rebuilt, the odd watermark is ignored again, not fatal."""
    event = one({"sender": {"id": meta.USER_ID}, "recipient": {"id": meta.PAGE_ID},
                 "delivery": {"watermark": "ayer", "mids": ["m_1"]}})

    again = InboundEvent.from_dict(json.loads(json.dumps(event.to_dict())))

    assert (again.kind, again.watermark_ms, again.mids) == (EventKind.DELIVERY, None, ("m_1",))


def test_mids_of_the_wrong_shape_still_skip_the_item() -> None:
    item = {"sender": {"id": meta.USER_ID}, "recipient": {"id": meta.PAGE_ID}, "delivery": {"mids": "m_1"}}
    good = meta.text_message(mid="m_ok")

    parsed = read_webhook(meta.webhook(meta.entry([item, good])))

    assert [event.mid for event in parsed.events] == ["m_ok"]
    [skipped] = parsed.skipped
    assert "mids" in skipped.reason


def test_a_receipt_without_a_sender_is_no_receipt_of_anyone() -> None:
    event = one({"recipient": {"id": meta.PAGE_ID}, "read": {"watermark": meta.T0}})

    assert event.kind is EventKind.READ and not event.is_receipt
