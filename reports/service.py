"""`Reports`: reads a period's counters from the stores that keep them and hands them to `reports.assemble`.

Every source is optional (an app without the csat store still reports the rest, its tables say so) and reached
through the small interfaces below; the synchronous stores are called in a thread (`asyncio.to_thread`). Nothing is
recomputed from raw logs: the outbox's and the answer journal's hour rows, handoff's episodes, the ratings, the
contacts' first-seen index and the comment journal's rule counts are all kept at write time.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from answers.model import HandlingDay, HandlingHour
from comments.model import RuleCount
from core.postgres import DatabaseUnavailable
from core.sqlite import is_busy
from handoff.model import Episode
from outbox.model import MessageDay, MessageHour, SendHour
from reports.assemble import (
    TOP_GROUPS,
    AgentRating,
    BroadcastResult,
    BroadcastResults,
    CsatFigures,
    OpenGroup,
    Sources,
    assemble,
)
from reports.model import Part, Period, Report, ReportsUnavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_BROADCASTS = 500  # of one period (the table says when there were more)
BUSY_RETRY_AFTER = timedelta(seconds=5)  # a SQLite file locked by another connection (a long write): soon free again
BUSY_ES = ("Los datos de los reportes están ocupados por otra operación en este momento; intente de nuevo en unos "
           "segundos.")


class OutboxCounters(Protocol):
    async def message_hours(self, page_id: str | None, since: datetime, until: datetime) -> Sequence[MessageHour]: ...
    async def message_days(self, page_id: str | None, since: datetime, until: datetime,
                           offset_seconds: int) -> Sequence[MessageDay]: ...
    async def message_hours_since(self) -> datetime | None: ...
    async def send_hours(self, page_id: str | None, since: datetime, until: datetime) -> Sequence[SendHour]: ...


class Episodes(Protocol):
    async def episodes(self, page_id: str | None, since: datetime, until: datetime) -> Sequence[Episode]: ...


class AnswerCounters(Protocol):
    def handling_hours(self, page_id: str | None, since: datetime, until: datetime) -> Sequence[HandlingHour]: ...
    def handling_days(self, page_id: str | None, since: datetime, until: datetime,
                      offset_seconds: int) -> Sequence[HandlingDay]: ...
    def counts_by_handling(self, page_id: str | None, since: datetime, until: datetime) -> dict[str, int]: ...
    def entry_use(self, page_id: str | None, since: datetime, until: datetime) -> dict[str, int]: ...
    def open_groups_asked(self, page_id: str | None, since: datetime, until: datetime,
                          limit: int) -> Sequence[Any]: ...


class Ratings(Protocol):
    def summary(self, page_id: str | None, since: datetime, until: datetime) -> Any: ...
    def agent_satisfaction(self, since: datetime | None = None, until: datetime | None = None,
                           page_id: str | None = None) -> Sequence[Any]: ...


class CampaignCounts(Protocol):
    def new_by_campaign(self, page_id: str | None, since: datetime, until: datetime) -> dict[str | None, int]: ...


class RuleCounts(Protocol):
    def rule_counts(self, page_id: str | None, since: datetime, until: datetime) -> Sequence[RuleCount]: ...


class BroadcastList(Protocol):
    async def started_in(self, page_id: str | None, since: datetime, until: datetime,
                         limit: int) -> tuple[Sequence[Any], bool]: ...


@dataclass(frozen=True)
class Reports:
    """The reports' façade: `build(period, part)`. `entries` lists the live matrix's entries (id, first question);
    `rule_names` names comment rules by id; `pause_reasons_es` words handoff's pause reasons (the console's);
    `reserved_names` are the usernames no person can have (the console's), never ranked as agents."""

    outbox: OutboxCounters | None = None
    handoff: Episodes | None = None
    answers: AnswerCounters | None = None
    csat: Ratings | None = None
    contacts: CampaignCounts | None = None
    comments: RuleCounts | None = None
    broadcasts: BroadcastList | None = None
    entries: Callable[[], Sequence[tuple[str, str]]] | None = None
    rule_names: Callable[[Sequence[str]], Mapping[str, str]] | None = None
    pause_reasons_es: Mapping[str, str] | None = None
    standard_window: timedelta = timedelta(hours=24)
    group_url: str = "/console/unanswered/{id}"
    reserved_names: frozenset[str] = frozenset()

    async def build(self, period: Period, part: Part) -> Report:
        """The report of `period` (`part` "all" for admins, "knowledge" for editors). A store that is down, or a SQLite
        file another connection holds locked past the busy timeout, is `ReportsUnavailable` (503, the latter with
        Retry-After), not a report with holes nor a 500."""
        try:
            sources = await self._sources(period, part)
        except DatabaseUnavailable as exc:
            raise ReportsUnavailable() from exc
        except sqlite3.OperationalError as exc:
            if not is_busy(exc):
                raise
            log.warning("reports: a SQLite store stayed locked by another connection past its busy timeout")
            raise ReportsUnavailable(BUSY_ES, retry_after=BUSY_RETRY_AFTER) from exc
        return assemble(period, part, sources, reasons_es=self.pause_reasons_es or {},
                        standard_window=self.standard_window, reserved=self.reserved_names)

    async def _sources(self, period: Period, part: Part) -> Sources:
        """Every read at once (one `asyncio.gather`): each store answers on its own connection in its own thread,
        so the slowest store, not the sum of them, is what a report waits for (a store's own reads still queue on
        its connection: the answer journal's four are the longest line)."""
        since, until = period.utc_bounds()
        page = period.page_id
        previous = period.previous()
        reads: list[Awaitable[Any]] = [
            self._handling_days(period),
            self._sync(self.answers, lambda a: a.counts_by_handling(page, *previous.utc_bounds()))
            if previous is not None else _none(),
            self._sync(self.answers, lambda a: a.entry_use(page, since, until)),
            self._sync(self.entries, lambda provide: provide()),
            self._open_groups(page, since, until),
        ]
        if part == "all":
            reads += [
                self._message_days(period),
                self._async(self.outbox, lambda o: o.send_hours(page, since, until)),
                self._async(self.handoff, lambda h: h.episodes(page, since, until)),
                self._sync(self.csat, lambda c: c.summary(page, since, until)),
                self._sync(self.csat, lambda c: c.agent_satisfaction(since=since, until=until, page_id=page)),
                self._sync(self.contacts, lambda c: c.new_by_campaign(page, since, until)),
                self._sync(self.comments, lambda c: c.rule_counts(page, since, until)),
                self._broadcasts(page, since, until),
                self._async(self.outbox, lambda o: o.message_hours_since()),
            ]
        found: list[Any] = await asyncio.gather(*reads)
        handling_days, previous_handling, entry_use, entries, open_groups = found[:5]
        if part != "all":
            return Sources(handling_days=handling_days, previous_handling=previous_handling, entry_use=entry_use,
                           entries=entries, open_groups=open_groups)
        message_days, send_hours, episodes, csat, agents, campaigns, rules, broadcasts, counted_since = found[5:]
        rule_ids = [str(r.rule_id) for r in rules or ()]
        names = await self._sync(self.rule_names, lambda name: name(rule_ids)) if rule_ids else None
        return Sources(
            message_days=message_days, message_hours_since=counted_since, send_hours=send_hours,
            handling_days=handling_days, previous_handling=previous_handling, entry_use=entry_use, entries=entries,
            open_groups=open_groups, episodes=episodes,
            csat=CsatFigures(int(csat.asked), int(csat.answered), csat.average, dict(csat.by_rating))
            if csat is not None else None,
            agent_ratings=[AgentRating(str(a.agent), int(a.asked), int(a.answered), a.average) for a in agents]
            if agents is not None else None,
            new_by_campaign=campaigns, rule_counts=rules, rule_names=dict(names or {}),
            broadcasts=broadcasts.results if broadcasts is not None else None,
            broadcasts_cut=broadcasts.cut if broadcasts is not None else False)

    @staticmethod
    async def _sync(source: Any, call: Callable[[Any], T]) -> T | None:
        if source is None:
            return None
        return await asyncio.to_thread(call, source)

    @staticmethod
    async def _async(source: Any, call: Callable[[Any], Awaitable[T]]) -> T | None:
        if source is None:
            return None
        return await call(source)

    async def _handling_days(self, period: Period) -> list[Any] | None:
        """The questions per local day and handling, summed by the answer journal's store: one query per span of
        one UTC offset (one for Guayaquil, about three for a year of a daylight-saving zone)."""
        if self.answers is None:
            return None
        answers, page = self.answers, period.page_id
        return await asyncio.to_thread(lambda: [
            row for since, until, offset in period.offset_spans()
            for row in answers.handling_days(page, since, until, offset)])

    async def _message_days(self, period: Period) -> list[Any] | None:
        """People's messages, conversations and new contacts per local day, summed by the outbox's store: one query
        per span of one UTC offset, as `_handling_days`."""
        if self.outbox is None:
            return None
        found: list[Any] = []
        for since, until, offset in period.offset_spans():
            found += await self.outbox.message_days(period.page_id, since, until, offset)
        return found

    async def _open_groups(self, page: str | None, since: datetime, until: datetime) -> list[OpenGroup] | None:
        """The open groups of unanswered questions asked in the period, most people first, counted over the period
        (one query on the journal's time index)."""
        if self.answers is None:
            return None
        answers = self.answers
        groups = await asyncio.to_thread(lambda: answers.open_groups_asked(page, since, until, TOP_GROUPS))
        return [OpenGroup(g.label, int(g.people), int(g.questions), g.last_at, self.group_url.format(id=g.id))
                for g in groups]

    async def _broadcasts(self, page: str | None, since: datetime, until: datetime) -> BroadcastResults | None:
        """The broadcasts that started in the period, with their results (sent, delivered, ...): two reads."""
        if self.broadcasts is None:
            return None
        reports, more = await self.broadcasts.started_in(page, since, until, MAX_BROADCASTS)
        results = []
        for report in reports:
            broadcast = report.broadcast
            results.append(BroadcastResult(
                id=broadcast.id, name=broadcast.name, status_es=str(broadcast.to_dict()["status_es"]),
                started_at=broadcast.started_at, total=report.total, sent=report.sent, delivered=report.delivered,
                read=report.read, skipped=sum(report.skipped.values()), blocked=sum(report.blocked.values()),
                failed=sum(report.failed.values())))
        return BroadcastResults(results, more)


async def _none() -> None:
    return None
