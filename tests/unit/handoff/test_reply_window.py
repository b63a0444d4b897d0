"""The window indicator over the outbox policy: normal reply, HUMAN_AGENT, then nothing."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import partial

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handoff.reply_window import duration_es, reply_window
from outbox.policy import HUMAN_AGENT_WINDOW_EXPIRED, NEVER_WROTE, decide
from outbox.policy_file import load_policy

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
DECIDE = partial(decide, policy=load_policy())  # what `Outbox.decide` is


def test_within_24_hours_a_normal_reply_then_human_agent() -> None:
    window = reply_window(NOW - timedelta(hours=2), NOW, DECIDE)
    assert window.can_reply
    assert (window.messaging_type, window.tag) == ("RESPONSE", None)
    assert window.ends_at == NOW + timedelta(hours=22)
    assert window.last_chance_at == NOW - timedelta(hours=2) + timedelta(days=7)
    assert "22 h" in window.message_es and "HUMAN_AGENT" in window.message_es


def test_between_24_hours_and_7_days_only_human_agent() -> None:
    window = reply_window(NOW - timedelta(days=3), NOW, DECIDE)
    assert window.can_reply
    assert (window.messaging_type, window.tag) == ("MESSAGE_TAG", "HUMAN_AGENT")
    assert window.time_left == timedelta(days=4)
    assert window.message_es.startswith("Puede responder con la etiqueta HUMAN_AGENT durante 4 días")
    assert "escribir de nuevo" in window.message_es


def test_after_7_days_refused_with_the_policy_reason() -> None:
    window = reply_window(NOW - timedelta(days=8), NOW, DECIDE)
    assert not window.can_reply
    assert window.reason_code == HUMAN_AGENT_WINDOW_EXPIRED
    assert "ni siquiera con la etiqueta HUMAN_AGENT" in window.message_es
    assert window.to_dict()["seconds_left"] is None


def test_a_customer_who_never_wrote() -> None:
    window = reply_window(None, NOW, DECIDE)
    assert not window.can_reply and window.reason_code == NEVER_WROTE


@pytest.mark.parametrize(
    ("span", "text"),
    [
        (timedelta(seconds=59), "menos de 1 min"),
        (timedelta(minutes=12, seconds=59), "12 min"),
        (timedelta(hours=5, minutes=12), "5 h 12 min"),
        (timedelta(hours=5), "5 h"),
        (timedelta(days=1), "1 día"),
        (timedelta(days=3, hours=4, minutes=30), "3 días 4 h"),
    ],
)
def test_duration_es(span: timedelta, text: str) -> None:
    assert duration_es(span) == text


@given(st.integers(min_value=0, max_value=10 * 24 * 3600))
def test_the_indicator_agrees_with_seven_days(seconds_ago: int) -> None:
    """Whatever the age of the last message: a reply is possible exactly up to 7 days, and the time left
    never exceeds what is left of those 7 days."""
    last = NOW - timedelta(seconds=seconds_ago)
    window = reply_window(last, NOW, DECIDE)
    assert window.can_reply == (seconds_ago <= 7 * 24 * 3600)
    if window.can_reply:
        assert window.time_left is not None
        assert window.time_left == last + timedelta(days=7) - NOW
        assert (window.tag == "HUMAN_AGENT") == (seconds_ago > 24 * 3600)
