"""The rule of the survey after the bot resolved a conversation, pure (csat/resolved.py): due from N to N + 60
minutes after the person's last message, not while a person has the conversation or when one was involved since it
began (24 hours before the last message), and only after an answer of the bot (matrix, a tapped candidate, GPT).

Would catch: an off-by-one at N or N + 60, a pause from before the conversation blocking it, one just inside it not
blocking it, a miss, a handoff or an offer counted as an answer."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from csat.resolved import (
    CATCH_UP,
    NotResolved,
    candidate_range,
    conversation_start,
    why_not_answered,
    why_not_due,
)

LAST = datetime(2026, 11, 30, 15, 0, tzinfo=timezone.utc)
N = timedelta(minutes=30)


def due(minutes_after: float, *, paused_now: bool = False, last_pause: datetime | None = None) -> NotResolved | None:
    return why_not_due(LAST, LAST + timedelta(minutes=minutes_after), N, paused_now=paused_now, last_pause=last_pause)


@pytest.mark.parametrize(("minutes", "reason"), [
    (0, NotResolved.TOO_RECENT), (29.99, NotResolved.TOO_RECENT), (30, None), (60, None), (90, None),
    (90.01, NotResolved.TOO_OLD), (24 * 60, NotResolved.TOO_OLD)])
def test_due_from_n_to_n_plus_an_hour(minutes: float, reason: NotResolved | None) -> None:
    assert due(minutes) is reason


def test_a_person_s_conversation_now_or_since_it_began_is_not_due() -> None:
    start = conversation_start(LAST)
    assert start == LAST - timedelta(hours=24)
    assert due(31, paused_now=True) is NotResolved.PAUSED
    assert due(31, last_pause=start) is NotResolved.PERSON_INVOLVED
    assert due(31, last_pause=LAST - timedelta(minutes=5)) is NotResolved.PERSON_INVOLVED
    assert due(31, last_pause=start - timedelta(microseconds=1)) is None, "a pause before this conversation"


@pytest.mark.parametrize(("handling", "reason"), [
    ("matrix", None), ("selected", None), ("gpt", None), ("no_answer", NotResolved.NOT_ANSWERED),
    ("handoff", NotResolved.NOT_ANSWERED), ("did_you_mean", NotResolved.NOT_ANSWERED),
    (None, NotResolved.NO_QUESTION)])
def test_only_an_answer_of_the_bot_resolves(handling: str | None, reason: NotResolved | None) -> None:
    assert why_not_answered(handling) is reason


def test_the_range_read_is_the_hour_before_n_minutes_ago() -> None:
    now = LAST + timedelta(hours=2)
    assert candidate_range(now, N) == (now - N - CATCH_UP, now - N)
