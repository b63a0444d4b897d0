"""The webhook's verdict on one POST (meta/delivery.py): size, then signature, then shape."""

from __future__ import annotations

import json

from meta.delivery import MAX_BODY_BYTES, judge_delivery
from meta.events import EventKind
from meta.signature import sign
from tests.support import meta_payloads as meta

SECRET = "test-app-secret-not-real"


def signed(raw: bytes) -> tuple[bytes, str]:
    return raw, sign(raw, SECRET)


def test_a_well_formed_signed_body_is_accepted_with_its_events() -> None:
    raw = json.dumps(meta.webhook(meta.entry([meta.text_message(mid="m_1"), meta.read(meta.T0)]))).encode()

    verdict = judge_delivery(*signed(raw), SECRET)

    assert verdict.accepted and verdict.status == 200
    assert [e.kind for e in verdict.events] == [EventKind.MESSAGE, EventKind.READ]
    assert verdict.skipped == ()


def test_an_unsigned_or_wrongly_signed_body_is_403_whatever_its_shape() -> None:
    """Nothing unsigned is parsed: a malformed unsigned body is 403, not 400."""
    for raw in (b"[[[[", json.dumps(meta.webhook()).encode()):
        assert judge_delivery(raw, None, SECRET).status == 403
        assert judge_delivery(raw, sign(raw, "another-secret"), SECRET).status == 403
        assert judge_delivery(raw, "sha1=abc", SECRET).status == 403


def test_a_signed_malformed_body_is_400_with_the_reason() -> None:
    """Was a 500: `messaging: 5` raised a TypeError in the route."""
    raw = json.dumps({"object": "page", "entry": [{"id": meta.PAGE_ID, "messaging": 5}]}).encode()

    verdict = judge_delivery(*signed(raw), SECRET)

    assert (verdict.status, verdict.events) == (400, ())
    assert "messaging is not a list" in verdict.error


def test_a_body_over_one_mib_is_413_before_its_signature_is_computed() -> None:
    raw = b" " * (MAX_BODY_BYTES + 1)

    assert judge_delivery(*signed(raw), SECRET).status == 413


def test_a_bad_item_among_good_ones_is_accepted_and_reported() -> None:
    bad = {**meta.text_message(mid="m_bad"), "message": {"mid": "m_bad", "text": ["no"]}}
    raw = json.dumps(meta.webhook(meta.entry([bad, meta.text_message(mid="m_ok")]))).encode()

    verdict = judge_delivery(*signed(raw), SECRET)

    assert verdict.status == 200
    assert [e.mid for e in verdict.events] == ["m_ok"]
    assert [s.reason for s in verdict.skipped] == ["message.text is not a string"]
