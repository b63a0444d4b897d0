"""The channel's side of referrals (connectors/referrals.py), pure: what it reports to the app for each shape Meta
sends, and what Rasa then gets (the link's start, the postback's own payload, the person's own words, or no turn)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.referrals import ReferralAnswer, answer_of, referral_report, turn_event
from links.model import Start
from meta.events import EventKind, InboundEvent, parse_webhook
from tests.support import meta_payloads as meta

AT = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
MENU = ReferralAnswer("Menú en las mesas", Start(entry_id="menu"))
NOTHING = ReferralAnswer(None, None)


def parse_one(item: dict[str, Any], standby: bool = False) -> InboundEvent:
    [event] = parse_webhook(meta.webhook(meta.entry([item], standby=standby)))
    return event


def test_a_standalone_referral_is_reported_and_its_start_is_the_turn() -> None:
    event = parse_one(meta.referral(meta.shortlink_referral("menu_mesas")))
    report = referral_report(event, AT)
    assert report == {"event_key": event.dedup_key, "page_id": meta.PAGE_ID, "user_id": meta.USER_ID,
                      "ref": "menu_mesas", "source": "SHORTLINK", "via": "referral", "ad_id": None,
                      "at": AT.isoformat()}
    turn = turn_event(event, MENU)
    assert turn is not None and turn.kind is EventKind.REFERRAL
    assert turn.user_text() == '/ask_knowledge{"entry_id":"menu"}'
    assert turn.shown_text() == "Llegó por el enlace «Menú en las mesas»"  # what agents see, not the command
    assert turn.dedup_key == event.dedup_key, "the same event: the same outbox keys on a replay"


@pytest.mark.parametrize("answer", [NOTHING, None], ids=["no start", "app down"])
def test_a_standalone_referral_without_a_start_is_no_turn(answer: ReferralAnswer | None) -> None:
    assert turn_event(parse_one(meta.referral(meta.shortlink_referral())), answer) is None


def test_get_started_takes_the_links_start_else_keeps_its_payload() -> None:
    event = parse_one(meta.postback("m_gs", "Empezar", "/greet", referral=meta.shortlink_referral("menu_mesas")))
    assert referral_report(event, AT)["via"] == "postback"  # type: ignore[index]
    started = turn_event(event, ReferralAnswer("Saludo", Start(intent="thanks")))
    assert started is not None and started.user_text() == "/thanks" and started.title == "Empezar"
    for answer in (NOTHING, None):
        kept = turn_event(event, answer)
        assert kept is not None and kept.user_text() == "/greet"


def test_a_message_from_an_ad_is_reported_and_keeps_its_words() -> None:
    item = meta.text_message(mid="m_ad", text="¿Tienen en talla M?")
    item["message"]["referral"] = meta.ad_referral(ad_id="23851234567890123", ref="anuncio_fb")
    event = parse_one(item)
    report = referral_report(event, AT)
    assert report is not None and (report["via"], report["source"], report["ad_id"]) == ("message", "ADS",
                                                                                        "23851234567890123")
    assert turn_event(event, MENU) is event


def test_nothing_is_reported_without_a_referral_or_in_standby() -> None:
    assert referral_report(parse_one(meta.text_message(mid="m_plain")), AT) is None
    assert referral_report(parse_one(meta.referral(meta.shortlink_referral()), standby=True), AT) is None


def test_the_apps_answer_is_checked() -> None:
    assert answer_of({"recorded": True, "link": {"id": 1, "name": "Menú"}, "start": {"entry_id": "menu"}}) == \
        ReferralAnswer("Menú", Start(entry_id="menu"))
    assert answer_of({"link": None, "start": None}) == NOTHING
    assert answer_of({"link": {"name": 3}, "start": {"intent": "restart"}}) == NOTHING  # never a Rasa control
    assert answer_of(["not", "an", "object"]) == NOTHING


odd_values = st.none() | st.integers() | st.text(max_size=3000) | st.lists(st.integers(), max_size=3) | \
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2)


@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(ref=odd_values, source=odd_values, ad_id=odd_values)
def test_any_referral_object_gives_a_report_the_app_accepts(ref: Any, source: Any, ad_id: Any) -> None:
    """Fuzz: whatever Meta puts in the referral object, the report fits the app's limits (ref ≤ 2083, source and
    ad id ≤ 64 characters, strings), so the app never refuses it for its shape."""
    event = parse_one(meta.referral({"ref": ref, "source": source, "ad_id": ad_id, "type": "OPEN_THREAD"}))
    report = referral_report(event, AT)
    assert report is not None
    assert isinstance(report["ref"], str) and len(report["ref"]) <= 2083
    assert isinstance(report["source"], str) and len(report["source"]) <= 64
    assert report["ad_id"] is None or (isinstance(report["ad_id"], str) and 0 < len(report["ad_id"]) <= 64)
