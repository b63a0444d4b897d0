"""Business hours ("horario de atención"): when people answer, so a handoff outside them says so.

`BUSINESS_HOURS="lun-vie 08:00-18:00; sáb 09:00-13:00"` in the business's time zone
(`BUSINESS_TIMEZONE`, default America/Guayaquil: UTC-5 all year, no daylight saving). Pure functions,
standard library only: the settings (both Python environments) validate the value with them at start-up.

Grammar, one clause per `;` (or new line): days, then one or more ranges separated by commas.
Days are Spanish abbreviations or full names, accents optional (`lun mar mié jue vie sáb dom`), as a range
(`lun-vie`, `vie-lun` wraps) or a list (`lun,mié,vie`). Ranges are `HH:MM-HH:MM`, end after start, `24:00`
allowed as an end; a clause may be repeated for a day (the ranges add up). Overnight ranges (22:00-02:00)
are refused: write them as two clauses.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DEFAULT_TIMEZONE = "America/Guayaquil"

# Monday is 0, as datetime.weekday().
_DAY_NAMES: dict[str, int] = {
    "lun": 0, "lunes": 0,
    "mar": 1, "martes": 1,
    "mie": 2, "mier": 2, "miercoles": 2,
    "jue": 3, "jueves": 3,
    "vie": 4, "viernes": 4,
    "sab": 5, "sabado": 5,
    "dom": 6, "domingo": 6,
}  # fmt: skip
DAY_LABELS = ("lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
_END_OF_DAY = timedelta(hours=24)


class BusinessHoursError(ValueError):
    """The schedule cannot be read; the message quotes the clause and says what is expected."""


@dataclass(frozen=True)
class OpeningRange:
    """[start, end) within one day, as offsets from midnight (end may be 24:00)."""

    start: timedelta
    end: timedelta

    def contains(self, moment: timedelta) -> bool:
        return self.start <= moment < self.end


@dataclass(frozen=True)
class BusinessHours:
    """Opening ranges per weekday (0 = Monday), in `timezone`. No ranges at all: always open."""

    days: tuple[tuple[OpeningRange, ...], ...]  # seven entries
    timezone: str = DEFAULT_TIMEZONE
    source: str = ""

    @property
    def always_open(self) -> bool:
        return not any(self.days)

    def describe(self) -> str:
        """The schedule in words for the user: "lunes a viernes de 08:00 a 18:00; sábado de 09:00 a 13:00"."""
        if self.always_open:
            return "todos los días"
        groups: list[tuple[list[int], tuple[OpeningRange, ...]]] = []
        for day, ranges in enumerate(self.days):
            if not ranges:
                continue
            if groups and groups[-1][1] == ranges and groups[-1][0][-1] == day - 1:
                groups[-1][0].append(day)
            else:
                groups.append(([day], ranges))
        parts = []
        for days, ranges in groups:
            if len(days) == 1:
                label = DAY_LABELS[days[0]]
            elif len(days) == 2:
                label = f"{DAY_LABELS[days[0]]} y {DAY_LABELS[days[1]]}"
            else:
                label = f"{DAY_LABELS[days[0]]} a {DAY_LABELS[days[-1]]}"
            times = " y ".join(f"de {_clock(r.start)} a {_clock(r.end)}" for r in ranges)
            parts.append(f"{label} {times}")
        return "; ".join(parts)


def _clock(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _plain(word: str) -> str:
    """Lower case without accents: "Sáb" and "sab" are the same day."""
    decomposed = unicodedata.normalize("NFD", word.strip().lower())
    return "".join(char for char in decomposed if unicodedata.category(char) != "Mn").rstrip(".")


def _day(word: str, clause: str) -> int:
    day = _DAY_NAMES.get(_plain(word))
    if day is None:
        raise BusinessHoursError(
            f"BUSINESS_HOURS: {word.strip()!r} in {clause!r} is not a day; use lun, mar, mié, jue, vie, sáb, dom"
        )
    return day


def _days(spec: str, clause: str) -> list[int]:
    days: list[int] = []
    for item in spec.split(","):
        if not item.strip():
            raise BusinessHoursError(f"BUSINESS_HOURS: an empty day in {clause!r}")
        first, dash, last = item.partition("-")
        if not dash:
            days.append(_day(first, clause))
            continue
        start, end = _day(first, clause), _day(last, clause)
        day = start
        while True:  # vie-lun wraps over the weekend
            days.append(day)
            if day == end:
                break
            day = (day + 1) % 7
    return days


def _offset(value: str, clause: str) -> timedelta:
    match = _TIME.match(value.strip())
    if not match:
        raise BusinessHoursError(f"BUSINESS_HOURS: {value.strip()!r} in {clause!r} is not a time like 08:00")
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes > 59 or hours > 24 or (hours == 24 and minutes):
        raise BusinessHoursError(f"BUSINESS_HOURS: {value.strip()!r} in {clause!r} is not a time of day")
    return timedelta(hours=hours, minutes=minutes)


def _range(spec: str, clause: str) -> OpeningRange:
    first, dash, last = spec.partition("-")
    if not dash:
        raise BusinessHoursError(f"BUSINESS_HOURS: {spec.strip()!r} in {clause!r} is not a range like 08:00-18:00")
    start, end = _offset(first, clause), _offset(last, clause)
    if start >= _END_OF_DAY:
        raise BusinessHoursError(f"BUSINESS_HOURS: a range cannot start at 24:00 ({clause!r})")
    if end <= start:
        raise BusinessHoursError(
            f"BUSINESS_HOURS: {spec.strip()!r} in {clause!r} ends before it starts; "
            "split a range past midnight into two clauses (e.g. 'vie 22:00-24:00; sáb 00:00-02:00')"
        )
    return OpeningRange(start, end)


def _merge(ranges: list[OpeningRange]) -> tuple[OpeningRange, ...]:
    merged: list[OpeningRange] = []
    for item in sorted(ranges, key=lambda r: (r.start, r.end)):
        if merged and item.start <= merged[-1].end:
            merged[-1] = OpeningRange(merged[-1].start, max(merged[-1].end, item.end))
        else:
            merged.append(item)
    return tuple(merged)


def check_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise BusinessHoursError(
            f"BUSINESS_TIMEZONE {name!r} is not a known time zone (e.g. America/Guayaquil, Pacific/Galapagos)"
        ) from exc


def parse_business_hours(text: str, timezone: str = DEFAULT_TIMEZONE) -> BusinessHours:
    """Read `BUSINESS_HOURS`; an empty value means always open (no "Fuera de Horario" message)."""
    check_timezone(timezone)
    per_day: list[list[OpeningRange]] = [[] for _ in range(7)]
    for raw_clause in re.split(r"[;\n]", text):
        clause = re.sub(r"\s*([-,])\s*", r"\1", raw_clause.strip())  # "lun - vie" reads as "lun-vie"
        if not clause:
            continue
        match = re.match(r"^(\S+)\s+(\S+)$", clause)
        if not match or not re.search(r"\d", match.group(2)):
            raise BusinessHoursError(
                f"BUSINESS_HOURS: {clause!r} is not 'days ranges', e.g. 'lun-vie 08:00-18:00' or 'sáb 09:00-13:00'"
            )
        days = _days(match.group(1), clause)
        ranges = [_range(item, clause) for item in match.group(2).split(",")]
        for day in days:
            per_day[day].extend(ranges)
    return BusinessHours(tuple(_merge(ranges) for ranges in per_day), timezone, text.strip())


def is_within_business_hours(now: datetime, hours: BusinessHours) -> bool:
    """Whether people are working at `now` (timezone-aware), read in the business's time zone."""
    if now.tzinfo is None:
        raise ValueError("naive datetime: pass a timezone-aware time")
    if hours.always_open:
        return True
    local = now.astimezone(ZoneInfo(hours.timezone))
    moment = timedelta(hours=local.hour, minutes=local.minute, seconds=local.second, microseconds=local.microsecond)
    return any(item.contains(moment) for item in hours.days[local.weekday()])


def start_of_business_day(now: datetime, time_zone: str = DEFAULT_TIMEZONE) -> datetime:
    """When the business's calendar day holding `now` began (its local midnight), as aware UTC: "today" for
    limits like one private reply per person per post per day. A DST gap at midnight starts the day at the first
    local time that exists (zoneinfo folds it forward)."""
    if now.tzinfo is None:
        raise ValueError("naive datetime: pass a timezone-aware time")
    zone = ZoneInfo(time_zone)
    local = now.astimezone(zone)
    midnight = datetime(local.year, local.month, local.day, tzinfo=zone)
    return midnight.astimezone(timezone.utc)
