"""The per-page send rate's decision (outbox/rate.py): pure, `now` passed in.

The property: whatever order the workers' clocks ask in, the slots granted to one page never put more than
ceil(W × rate) sends into any window of W seconds. The stores only make read-decide-record atomic (their
contract: tests/integration/outbox/test_store_contract.py); the sends it spaces are timed in
tests/integration/outbox/test_page_rate.py.
"""

from __future__ import annotations

import bisect
import math
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from outbox.rate import is_rate_limited, next_send_slot, send_interval

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=timezone.utc)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_zero_or_less_turns_the_limit_off() -> None:
    assert not is_rate_limited(0) and not is_rate_limited(-1)
    assert is_rate_limited(0.5)
    with pytest.raises(ValueError):
        send_interval(0)


@pytest.mark.parametrize(
    ("rate", "microseconds"),
    [(5, 200_000), (40, 25_000), (3, 333_334), (0.5, 2_000_000), (7, 142_858), (10_000_000, 1)],
)
def test_the_interval_is_rounded_up_to_whole_microseconds(rate: float, microseconds: int) -> None:
    # 3/s rounded down (333 333 µs) would fit a fourth send into one second.
    assert send_interval(rate) == timedelta(microseconds=microseconds)


def test_a_page_that_never_sent_gets_its_slot_now() -> None:
    assert next_send_slot(at(0), None, 5).send_at == at(0)
    assert next_send_slot(at(0), None, 5).granted


def test_the_next_slot_is_one_interval_after_the_latest() -> None:
    assert next_send_slot(at(0), at(0), 5).send_at == at(0.2)
    assert next_send_slot(at(0.1), at(0), 5).send_at == at(0.2)


def test_slots_reserved_ahead_queue_up() -> None:
    """Several workers asking at the same moment get consecutive slots, the latest one in the future."""
    latest = None
    granted = []
    for _ in range(4):
        slot = next_send_slot(at(0), latest, 5)
        granted.append(slot.send_at)
        latest = slot.send_at
    assert granted == [at(0), at(0.2), at(0.4), at(0.6)]


def test_an_idle_page_sends_at_once_no_credit_is_saved_up() -> None:
    slot = next_send_slot(at(60), at(0), 5)
    assert slot.send_at == at(60)
    assert next_send_slot(at(60), slot.send_at, 5).send_at == at(60.2), "an idle minute is no burst allowance"


def test_a_slot_after_not_after_is_not_granted_and_says_when_the_page_is_free() -> None:
    slot = next_send_slot(at(0), at(10), 5, not_after=at(5))
    assert (slot.granted, slot.send_at) == (False, at(10.2))
    assert next_send_slot(at(0), at(10), 5, not_after=at(10.2)).granted, "a slot exactly at not_after is granted"


def test_a_clock_behind_the_latest_slot_still_gets_a_later_slot() -> None:
    """A worker whose `now` is older than what another worker already reserved never goes before it."""
    assert next_send_slot(at(0), at(3), 5).send_at == at(3.2)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError):
        next_send_slot(datetime(2026, 3, 1, 9, 0), None, 5)


def max_in_window(times: list[datetime], window: timedelta) -> int:
    """The most sends in any half-open window [t, t + window): it is enough to start windows at a send."""
    ordered = sorted(times)
    return max((bisect.bisect_left(ordered, start + window) - i for i, start in enumerate(ordered)), default=0)


def test_max_in_window_counts_half_open_windows() -> None:
    times = [at(0), at(0.5), at(1), at(1.5)]
    assert max_in_window(times, timedelta(seconds=1)) == 2
    assert max_in_window(times, timedelta(seconds=1.0001)) == 3


@given(
    rate=st.one_of(st.sampled_from([1, 3, 5, 7, 40, 300]), st.floats(min_value=0.05, max_value=2000)),
    asks=st.lists(st.integers(min_value=-2_000_000, max_value=20_000_000), min_size=1, max_size=120),
    window_us=st.integers(min_value=1, max_value=5_000_000),
)
def test_granted_slots_never_exceed_the_rate_in_any_window(rate: float, asks: list[int], window_us: int) -> None:
    """Any interleaving of workers' clocks (microseconds from T0, in any order, as the store serializes them):
    slots increase, each at or after its ask, at least an interval apart, and no window of any length holds more
    than ceil(length × rate) of them (one second: at most `rate` sends for a whole rate)."""
    latest = None
    granted = []
    for ask in asks:
        now = T0 + timedelta(microseconds=ask)
        slot = next_send_slot(now, latest, rate)
        assert slot.granted and slot.send_at >= now
        if latest is not None:
            assert slot.send_at - latest >= timedelta(seconds=1 / rate) - timedelta(microseconds=1)
            assert slot.send_at == max(now, latest + send_interval(rate)), "no send waits longer than it must"
        granted.append(slot.send_at)
        latest = slot.send_at
    assert granted == sorted(granted)
    assert max_in_window(granted, timedelta(microseconds=window_us)) <= math.ceil(window_us * rate / 1_000_000)
    assert max_in_window(granted, timedelta(seconds=1)) <= math.ceil(rate)
