"""The words of a report: the period asked for (local days of the business timezone), its refusal, the pure figures
(percentiles, shares, trends) and the value objects a report is made of (tables with their columns, a headline).

Pure: no store, no clock; `Period.parse` takes `today`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Literal
from zoneinfo import ZoneInfo

from core.errors import DomainError, FieldInvalid

MAX_DAYS = 400  # a year and a bit: a year over a year's trend, at most 8,760 hour rows per series
EARLIEST = date(2000, 1, 1)
DEFAULT_DAYS = 30
FUTURE_DAYS = 1  # `hasta` may be tomorrow (a browser a timezone ahead), not later
PAGE_ID = re.compile(r"^[0-9]{1,64}$")
DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
HOUR = timedelta(hours=1)

Part = Literal["all", "knowledge"]
PARTS: tuple[Part, ...] = ("all", "knowledge")
Cell = str | int | float | None


class ReportsError(DomainError):
    """The root of the reports' errors (a bug or an outage)."""

    reason_code = "reports_error"


class ReportInvalid(ReportsError, FieldInvalid):
    """A period or page that cannot be reported on: `field` is the query parameter (`desde`, `hasta`, `pagina`)."""

    reason_code = "report_invalid"


class ReportsUnavailable(ReportsError):
    """A store the report reads did not answer (a database that is down, a SQLite file another connection holds
    locked): try again in a moment (`retry_after`: sent as Retry-After)."""

    reason_code = "reports_unavailable"

    def __init__(self, message_es: str = "Los datos de los reportes no están disponibles; intente en un momento.",
                 retry_after: timedelta | None = None) -> None:
        super().__init__(message_es)
        self.message_es = message_es
        self.retry_after = retry_after


def _day(value: str | None, name: str) -> date | None:
    text = (value or "").strip()
    if not text:
        return None
    if not DAY.match(text):
        raise ReportInvalid(name, f"«{name}» debe ser una fecha AAAA-MM-DD (por ejemplo 2025-03-31).")
    try:
        found = date.fromisoformat(text)
    except ValueError as exc:
        raise ReportInvalid(name, f"«{name}» no es una fecha que exista ({text}).") from exc
    if found < EARLIEST:  # refused here, before any arithmetic on it can leave the calendar (0001-01-05 - 29 days)
        raise ReportInvalid(name, f"«{name}» no puede ser anterior a {EARLIEST.isoformat()}.")
    return found


@dataclass(frozen=True)
class Period:
    """Local days `first_day`..`last_day` (both included) in `timezone`, of one Facebook page or all (None)."""

    first_day: date
    last_day: date
    timezone: ZoneInfo
    page_id: str | None = None

    def __post_init__(self) -> None:
        if self.first_day < EARLIEST:
            raise ReportInvalid("desde", f"«desde» no puede ser anterior a {EARLIEST.isoformat()}.")
        if self.last_day < self.first_day:
            raise ReportInvalid("hasta", "«hasta» no puede ser anterior a «desde».")
        if self.day_count > MAX_DAYS:
            raise ReportInvalid("hasta", f"El período puede tener como máximo {MAX_DAYS} días "
                                         f"(tiene {self.day_count}).")
        if self.last_day >= date.max - timedelta(days=MAX_DAYS):
            raise ReportInvalid("hasta", "«hasta» está demasiado lejos en el futuro.")
        if self.page_id is not None and not PAGE_ID.match(self.page_id):
            raise ReportInvalid("pagina", "«pagina» debe ser el id de una página de Facebook (solo dígitos).")

    @classmethod
    def parse(cls, desde: str | None, hasta: str | None, pagina: str | None, *, today: date,
              tz: ZoneInfo) -> Period:
        """The period of the query's `desde`, `hasta` (YYYY-MM-DD, local) and `pagina`: by default the last 30 days
        ending `today`; only `desde` runs to today; only `hasta` is the 30 days ending then."""
        first, last = _day(desde, "desde"), _day(hasta, "hasta")
        latest = today + timedelta(days=FUTURE_DAYS)
        if first is not None and first > latest:
            raise ReportInvalid("desde", "«desde» no puede ser posterior a hoy.")
        if last is not None and last > latest:
            raise ReportInvalid("hasta", "«hasta» no puede ser posterior a hoy.")
        if last is None:
            last = max(today, first) if first is not None else today
        if first is None:
            first = max(last - timedelta(days=DEFAULT_DAYS - 1), EARLIEST)
        page = (pagina or "").strip() or None
        return cls(first, last, tz, page)

    @property
    def day_count(self) -> int:
        return (self.last_day - self.first_day).days + 1

    def days(self) -> list[date]:
        return [self.first_day + timedelta(days=offset) for offset in range(self.day_count)]

    def _midnight(self, day: date) -> datetime:
        return datetime.combine(day, time(0), tzinfo=self.timezone).astimezone(timezone.utc)

    def utc_bounds(self) -> tuple[datetime, datetime]:
        """[since, until) in UTC: the first day's local midnight to the midnight after the last day."""
        return self._midnight(self.first_day), self._midnight(self.last_day + timedelta(days=1))

    def previous(self) -> Period | None:
        """The same number of days just before (the trend's comparison), cut at EARLIEST; None when none is left."""
        last = self.first_day - timedelta(days=1)
        if last < EARLIEST:
            return None
        first = max(last - timedelta(days=self.day_count - 1), EARLIEST)
        return Period(first, last, self.timezone, self.page_id)

    def day_of(self, moment: datetime) -> date:
        """The local day a moment (an hour bucket's start) falls in."""
        return moment.astimezone(self.timezone).date()

    def offset_spans(self) -> list[tuple[datetime, datetime, int]]:
        """[since, until) (`utc_bounds`) cut where the timezone's UTC offset changes, as (since, until, offset in
        seconds): an hour bucket (its start, a whole UTC hour) falls in the local day of its UTC start plus its
        span's offset, so a store can count per local day itself. One span in a zone without daylight saving time
        (Guayaquil), about three over a year in one with it. The offset is looked up at whole hours a day apart
        and, between two that differ, at every hour (no zone changes its offset and back within a day)."""
        since, until = self.utc_bounds()
        first = since.replace(minute=0, second=0, microsecond=0)
        first += HOUR if first < since else timedelta(0)
        last = (until - timedelta(microseconds=1)).replace(minute=0, second=0, microsecond=0)
        current = self._offset(first)
        spans: list[tuple[datetime, datetime, int]] = []
        start = since
        probe = first
        while probe < last:
            following = min(probe + timedelta(days=1), last)
            if self._offset(following) != current:
                hour = probe + HOUR
                while hour <= following:
                    if (offset := self._offset(hour)) != current:
                        spans.append((start, hour, current))
                        start, current = hour, offset
                    hour += HOUR
            probe = following
        spans.append((start, until, current))
        return spans

    def _offset(self, moment: datetime) -> int:
        """The timezone's UTC offset at `moment`, in seconds (east positive)."""
        found = moment.astimezone(self.timezone).utcoffset()
        return 0 if found is None else int(found.total_seconds())

    def to_dict(self) -> dict[str, Any]:
        since, until = self.utc_bounds()
        return {"desde": self.first_day.isoformat(), "hasta": self.last_day.isoformat(), "pagina": self.page_id,
                "timezone": self.timezone.key, "days": self.day_count, "since_utc": since.isoformat(),
                "until_utc": until.isoformat()}


# --- figures -------------------------------------------------------------------------------------------------------


def percentile(values: Iterable[float], q: float) -> float | None:
    """The nearest-rank percentile (an observed value: p50 of 1, 2, 3, 4 is 2); None without values."""
    ordered = sorted(values)
    if not ordered:
        return None
    if not 0 < q <= 100:
        raise ValueError(f"a percentile is in (0, 100], not {q}")
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def share(part: int, whole: int) -> float | None:
    """`part` of `whole` as a percentage (0–100), None when there is nothing to divide."""
    return 100.0 * part / whole if whole > 0 else None


@dataclass(frozen=True)
class Trend:
    """A share now and in the period before, and the difference in percentage points (None when either is)."""

    current: float | None
    previous: float | None

    @property
    def points(self) -> float | None:
        if self.current is None or self.previous is None:
            return None
        return self.current - self.previous

    def to_dict(self) -> dict[str, Any]:
        return {"current": _round(self.current), "previous": _round(self.previous), "points": _round(self.points)}


def _round(value: float | None, digits: int = 1) -> float | None:
    return round(value, digits) if value is not None else None


# --- tables --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    key: str  # the JSON key (and what programs read)
    label: str  # the CSV header and the page's, in Spanish


@dataclass(frozen=True)
class Table:
    """One table of a report: its name (the CSV's `/reports/{name}.csv`), title, columns and rows (one value per
    column, in order)."""

    name: str
    title: str
    columns: tuple[Column, ...]
    rows: tuple[tuple[Cell, ...], ...]
    note: str = ""

    def __post_init__(self) -> None:
        width = len(self.columns)
        for row in self.rows:
            if len(row) != width:
                raise ValueError(f"table {self.name}: a row of {len(row)} values for {width} columns")

    def records(self) -> list[dict[str, Cell]]:
        keys = [column.key for column in self.columns]
        return [dict(zip(keys, row, strict=True)) for row in self.rows]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "note": self.note,
                "columns": [{"key": c.key, "label": c.label} for c in self.columns], "rows": self.records()}


def table(name: str, title: str, columns: Sequence[tuple[str, str]], rows: Iterable[Sequence[Cell]],
          note: str = "") -> Table:
    return Table(name, title, tuple(Column(key, label) for key, label in columns), tuple(tuple(r) for r in rows),
                 note)


@dataclass(frozen=True)
class Report:
    """A period's report: the headline (the share answered without a person and its trend), the summary figures
    (name → value) and the tables by name, in the order the page shows them."""

    period: Period
    part: Part
    headline: Trend
    handled: int  # questions handled in the period (the headline's whole)
    summary: Mapping[str, Cell] = field(default_factory=dict)
    tables: Mapping[str, Table] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"period": self.period.to_dict(), "part": self.part,
                "headline": {"answered_without_person_pct": self.headline.to_dict(), "handled": self.handled},
                "summary": dict(self.summary), "tables": {name: t.to_dict() for name, t in self.tables.items()}}
