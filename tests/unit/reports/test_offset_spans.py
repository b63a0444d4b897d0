"""`Period.offset_spans`: the period's UTC bounds cut where the business timezone's offset changes, so the stores can
count per local day themselves (one offset per query). Checked against the day each whole UTC hour of the period
falls in (`Period.day_of`, what the per-hour path uses), in a zone without daylight saving time (Guayaquil), with it
(New York, São Paulo's old midnight changes, Lord Howe's half hour), and with offsets that are not whole hours
(Kolkata +05:30, Chatham +12:45/+13:45).

Would catch: a span cut an hour late or early around a change (the night of a change counted in the wrong day), the
offset of the period's start used for a whole year of New York, a +05:30 midnight's first hour (18:30 UTC → 19:00)
left out or counted twice, spans that leave a gap or overlap."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from reports.model import Period

HOUR = timedelta(hours=1)
ZONES = ("America/Guayaquil", "America/New_York", "America/Sao_Paulo", "Australia/Lord_Howe", "Asia/Kolkata",
         "Pacific/Chatham", "Europe/London", "UTC")


def whole_hours(since: datetime, until: datetime) -> list[datetime]:
    hour = since.replace(minute=0, second=0, microsecond=0)
    hour += HOUR if hour < since else timedelta(0)
    found = []
    while hour < until:
        found.append(hour)
        hour += HOUR
    return found


def check(period: Period) -> list[tuple[datetime, datetime, int]]:
    spans = period.offset_spans()
    since, until = period.utc_bounds()
    assert spans[0][0] == since and spans[-1][1] == until
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:], strict=False)), "no gap, no overlap"
    assert all(start < end for start, end, _ in spans)
    assert all(a[2] != b[2] for a, b in zip(spans, spans[1:], strict=False)), "a cut only where the offset changes"
    for start, end, offset in spans:
        for hour in whole_hours(start, end):
            assert (hour + timedelta(seconds=offset)).date() == period.day_of(hour), (hour, offset)
    return spans


def test_a_zone_without_daylight_saving_is_one_span() -> None:
    spans = check(Period(date(2024, 1, 1), date(2024, 12, 31), ZoneInfo("America/Guayaquil")))
    assert [offset for *_, offset in spans] == [-5 * 3600]


def test_a_year_of_new_york_is_three_spans_cut_at_the_changes() -> None:
    zone = ZoneInfo("America/New_York")
    spans = check(Period(date(2024, 1, 1), date(2024, 12, 31), zone))
    assert [offset // 3600 for *_, offset in spans] == [-5, -4, -5]
    assert [start.isoformat() for start, *_ in spans[1:]] == ["2024-03-10T07:00:00+00:00",
                                                             "2024-11-03T06:00:00+00:00"]


def test_kolkata_a_day_starts_at_18_30_utc() -> None:
    period = Period(date(2024, 3, 1), date(2024, 3, 2), ZoneInfo("Asia/Kolkata"))
    spans = check(period)
    assert spans == [(*period.utc_bounds(), 5 * 3600 + 1800)]


@settings(max_examples=60, deadline=None)
@given(zone=st.sampled_from(ZONES), first=st.dates(date(2000, 1, 1), date(2035, 12, 31)),
       days=st.integers(1, 400))
def test_every_hour_falls_in_the_day_its_span_says(zone: str, first: date, days: int) -> None:
    check(Period(first, first + timedelta(days=days - 1), ZoneInfo(zone)))
