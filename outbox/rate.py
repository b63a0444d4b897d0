"""The per-page send rate (`OUTBOX_PAGE_RATE`), shared by every worker through the outbox store.

Meta limits sends per page, whichever process makes them, so the rate cannot be kept in a worker's
memory: N workers would send N times the rate. The store keeps, per page, the time of the latest send
slot it granted; before each send a worker asks it for the next one (`OutboxStore.reserve_send_slot`,
atomic: a row lock on PostgreSQL, `BEGIN IMMEDIATE` on SQLite) and waits until that time.

Messages with audio or video have their own lane per page (`outbox.worker.send_lane`: Meta allows them 10 a
second, outbox/policy.yml `send_rates`); everything said here of a page holds for each of its lanes.

The decision is this module's pure function. Slots of one page are at least `send_interval(rate)`
apart: no burst, so any window of W seconds holds at most ceil(W × rate) sends of a page (at most
`OUTBOX_PAGE_RATE` in any second when the rate is a whole number). A page that sent nothing lately
gets its slot at once.

A worker holds the message while it waits, under its lease, so it only takes a slot that starts
by `not_after` (the worker passes half its lease). A later slot is not reserved: the worker gives the
message back, due again at `send_at`, and the page's slots stay free for whoever comes first.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from outbox.model import SendSlot, utc

MICROSECONDS_PER_SECOND = 1_000_000


def is_rate_limited(rate: float) -> bool:
    """0 (or less) turns the limit off: no slot is asked for, no store round trip."""
    return rate > 0


def send_interval(rate: float) -> timedelta:
    """The least time between two sends of a page, rounded up to whole microseconds (the stores keep
    microseconds), so rounding never lets one more send into a second."""
    if not is_rate_limited(rate):
        raise ValueError("a send interval needs a positive rate")
    return timedelta(microseconds=max(1, math.ceil(MICROSECONDS_PER_SECOND / rate)))


def next_send_slot(
    now: datetime, latest_slot: datetime | None, rate: float, not_after: datetime | None = None
) -> SendSlot:
    """The page's next slot, given the latest slot granted so far (None: never sent): now, or one
    interval after the latest slot, whichever is later. Granted only if it starts by `not_after` (None:
    any time). The slots granted by a sequence of calls, each fed the previous granted slot, are
    increasing and an interval apart, whatever order the workers' `now` comes in."""
    now = utc(now)
    send_at = now if latest_slot is None else max(now, utc(latest_slot) + send_interval(rate))
    return SendSlot(granted=not_after is None or send_at <= utc(not_after), send_at=send_at)
