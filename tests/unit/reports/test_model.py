"""The period a report covers and its figures: local days in the business timezone to UTC bounds, the refusals of a
bad `desde`/`hasta`/`pagina` (all `ReportInvalid`, never another error), nearest-rank percentiles, shares and the
headline's trend in points.

Would catch: a day bucketed by UTC instead of Guayaquil's midnight, `hasta` before `desde` or a 10-year period
accepted, 9999-12-31 overflowing into a 500, a percentile that is not an observed value, a trend from a share of 0
questions."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reports.model import (
    EARLIEST,
    MAX_DAYS,
    Period,
    ReportInvalid,
    Trend,
    percentile,
    share,
    table,
)

GYE = ZoneInfo("America/Guayaquil")
TODAY = date(2025, 3, 31)


def parse(desde: str | None = None, hasta: str | None = None, pagina: str | None = None) -> Period:
    return Period.parse(desde, hasta, pagina, today=TODAY, tz=GYE)


def test_by_default_the_last_30_days_ending_today() -> None:
    period = parse()
    assert (period.first_day, period.last_day, period.page_id) == (date(2025, 3, 2), TODAY, None)
    assert period.day_count == 30 and len(period.days()) == 30 and period.days()[-1] == TODAY


def test_local_days_become_utc_bounds_at_guayaquil_midnight() -> None:
    period = parse("2025-03-01", "2025-03-02", "100000000000001")
    since, until = period.utc_bounds()
    assert since == datetime(2025, 3, 1, 5, tzinfo=timezone.utc)  # UTC-5
    assert until == datetime(2025, 3, 3, 5, tzinfo=timezone.utc)
    # an hour bucket belongs to the local day of its start: 04:00 UTC on the 2nd is still the 1st in Guayaquil
    assert period.day_of(datetime(2025, 3, 2, 4, tzinfo=timezone.utc)) == date(2025, 3, 1)
    assert period.day_of(datetime(2025, 3, 2, 5, tzinfo=timezone.utc)) == date(2025, 3, 2)
    assert period.page_id == "100000000000001"


def test_previous_is_the_same_length_just_before() -> None:
    previous = parse("2025-03-11", "2025-03-20").previous()
    assert previous is not None
    assert (previous.first_day, previous.last_day) == (date(2025, 3, 1), date(2025, 3, 10))
    assert Period(EARLIEST, EARLIEST, GYE).previous() is None


@pytest.mark.parametrize(("desde", "hasta", "pagina", "field"), [
    ("2025-3-1", None, None, "desde"),
    ("2025-02-30", None, None, "desde"),
    ("hoy", None, None, "desde"),
    (None, "2025-13-01", None, "hasta"),
    ("2025-03-10", "2025-03-09", None, "hasta"),
    ("1999-12-31", "2000-01-05", None, "desde"),
    ("2023-01-01", "2025-01-01", None, "hasta"),  # more than MAX_DAYS
    (None, "9999-12-31", None, "hasta"),  # the future (and date.max)
    (None, "0001-01-05", None, "hasta"),  # 29 days before it are not in the calendar (was an OverflowError)
    (None, "0001-01-29", None, "hasta"),
    (None, "1999-12-31", None, "hasta"),
    (None, "2025-04-02", None, "hasta"),
    (None, None, "pagina-1", "pagina"),
    ("２０２５-03-01", None, None, "desde"),  # full-width digits are not a date here
])
def test_bad_params_are_refused_naming_the_field(desde: str | None, hasta: str | None, pagina: str | None,
                                                 field: str) -> None:
    with pytest.raises(ReportInvalid) as refused:
        parse(desde, hasta, pagina)
    assert refused.value.field == field
    assert refused.value.reason_code == "report_invalid"
    assert refused.value.message_es


def test_only_desde_runs_to_today_and_only_hasta_is_the_30_days_ending_then() -> None:
    assert (parse("2025-03-20").first_day, parse("2025-03-20").last_day) == (date(2025, 3, 20), TODAY)
    assert (parse(None, "2025-01-31").first_day, parse(None, "2025-01-31").last_day) == (date(2025, 1, 2),
                                                                                           date(2025, 1, 31))
    assert parse(None, "2025-04-01").last_day == date(2025, 4, 1)  # tomorrow: a browser a timezone ahead
    assert parse("  ", " ", " ").day_count == 30  # empty fields are the defaults


@given(desde=st.one_of(st.none(), st.text(max_size=12), st.dates().map(date.isoformat)),
       hasta=st.one_of(st.none(), st.text(max_size=12), st.dates().map(date.isoformat)),
       pagina=st.one_of(st.none(), st.text(max_size=20), st.from_regex(r"\A[0-9]{1,20}\Z")))
def test_any_query_is_a_valid_period_or_a_report_invalid(desde: str | None, hasta: str | None,
                                                         pagina: str | None) -> None:
    try:
        period = parse(desde, hasta, pagina)
    except ReportInvalid as refused:
        assert refused.field in ("desde", "hasta", "pagina")
        return
    assert EARLIEST <= period.first_day <= period.last_day <= TODAY + timedelta(days=1)
    assert 1 <= period.day_count <= MAX_DAYS
    since, until = period.utc_bounds()
    assert since < until and since.tzinfo is not None
    assert len(period.days()) == period.day_count
    previous = period.previous()
    if previous is not None:
        assert previous.utc_bounds()[1] == since  # the periods touch, never overlap
        assert previous.day_count <= period.day_count


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2100, 1, 1)))
def test_every_local_day_maps_back_from_its_utc_bounds(day: date) -> None:
    period = Period(day, day, GYE)
    since, until = period.utc_bounds()
    assert period.day_of(since) == day
    assert period.day_of(until - timedelta(seconds=1)) == day
    assert period.day_of(until) == day + timedelta(days=1)


def test_percentiles_are_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([4, 1, 3, 2], 50) == 2
    assert percentile([4, 1, 3, 2], 90) == 4
    assert percentile([7], 90) == 7
    assert percentile(range(1, 11), 90) == 9
    with pytest.raises(ValueError):
        percentile([1], 0)


@given(st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=50))
def test_a_percentile_is_an_observed_value_and_p50_at_most_p90(values: list[int]) -> None:
    p50, p90 = percentile(values, 50), percentile(values, 90)
    assert p50 in values and p90 in values
    assert p50 is not None and p90 is not None and min(values) <= p50 <= p90 <= max(values)
    assert sum(1 for v in values if v <= p50) * 2 >= len(values)


def test_share_and_trend() -> None:
    assert share(0, 0) is None
    assert share(3, 4) == 75.0
    trend = Trend(75.0, 60.0)
    assert trend.points == 15.0
    assert trend.to_dict() == {"current": 75.0, "previous": 60.0, "points": 15.0}
    assert Trend(75.0, None).points is None
    assert Trend(None, 50.0).to_dict()["points"] is None


def test_a_table_refuses_a_row_of_the_wrong_width() -> None:
    good = table("t", "T", [("a", "A"), ("b", "B")], [[1, 2]])
    assert good.records() == [{"a": 1, "b": 2}]
    with pytest.raises(ValueError):
        table("t", "T", [("a", "A")], [[1, 2]])
