"""`start_of_business_day`: "today" in the business's time zone (BUSINESS_TIMEZONE), not the last 24 hours nor the UTC
day. Would catch the local midnight computed in UTC, a naive result, or a day that starts at the wrong side of a
clock change."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from core.business_hours import start_of_business_day


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


@pytest.mark.parametrize(("now", "day_began"), [
    (utc(2026, 3, 3, 4, 59, 59), utc(2026, 3, 2, 5)),  # 23:59:59 on 2 March in Guayaquil (UTC-5)
    (utc(2026, 3, 3, 5, 0), utc(2026, 3, 3, 5)),  # local midnight
    (utc(2026, 3, 3, 18, 0), utc(2026, 3, 3, 5)),
])
def test_the_day_begins_at_midnight_in_guayaquil(now: datetime, day_began: datetime) -> None:
    began = start_of_business_day(now, "America/Guayaquil")
    assert began == day_began and began.utcoffset() is not None and began.utcoffset().total_seconds() == 0


def test_other_zones_and_a_clock_change() -> None:
    assert start_of_business_day(utc(2026, 3, 3, 5, 30), "Pacific/Galapagos") == utc(2026, 3, 2, 6)  # UTC-6
    # Madrid moves from +01:00 to +02:00 on 29 March 2026 at 02:00: that day began at 23:00 UTC the day before.
    assert start_of_business_day(utc(2026, 3, 29, 12), "Europe/Madrid") == utc(2026, 3, 28, 23)
    assert start_of_business_day(utc(2026, 3, 30, 12), "Europe/Madrid") == utc(2026, 3, 29, 22)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError):
        start_of_business_day(datetime(2026, 3, 3, 12), "America/Guayaquil")
