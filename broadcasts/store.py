"""The broadcasts store: each broadcast and one row per person it was planned for, in a SQLite file or a PostgreSQL
schema (`open_broadcasts_store(settings.store_url("broadcasts"))`, `core.database`).

Numbered migrations and named queries live in `broadcasts/sql/sqlite/` and `broadcasts/sql/postgres/`. Synchronous
and thread-safe; the service calls it through a thread. It stores what it is given: the checks are
`broadcasts.model`'s. A recipient row is written once per broadcast and person (a batch planned again after a crash
keeps what was decided the first time); its outcome is rewritten only for the attempt it belongs to, so a late read
of an old attempt never overwrites a retry.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from broadcasts.model import (
    Broadcast,
    BroadcastDraft,
    BroadcastStatus,
    Content,
    PartsOutcome,
    Recipient,
    RecipientState,
)
from broadcasts.planner import slots_start
from contacts.model import Audience
from core.database import DatabaseStore, moment, stored_time

SQL_DIR = Path(__file__).parent / "sql"  # sqlite/ and postgres/: numbered migrations and queries.sql
MAX_KEYS = 1000  # PSIDs per `recipients_of` read


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)


def _parts(sent_parts: Any) -> str:
    return _json({str(part): int(outbox_id) for part, outbox_id in dict(sent_parts).items()})


def _optional(value: Any) -> datetime | None:
    return moment(value) if value is not None else None


def _stored(value: datetime | None) -> str | None:
    return stored_time(value) if value is not None else None


def _broadcast(row: Any) -> Broadcast:
    return Broadcast(
        id=int(row["id"]), page_id=row["page_id"], name=row["name"],
        content=Content.from_dict(json.loads(row["content_json"])),
        audience=Audience.from_dict(json.loads(row["audience_json"])),
        promotional=bool(row["promotional"]), tag=row["tag"], status=BroadcastStatus(row["status"]),
        send_at=_optional(row["send_at"]), created_by=row["created_by"], created_at=moment(row["created_at"]),
        updated_at=moment(row["updated_at"]), started_at=_optional(row["started_at"]),
        finished_at=_optional(row["finished_at"]), cancelled_by=row["cancelled_by"],
    )


def _recipient(row: Any) -> Recipient:
    return Recipient(
        broadcast_id=int(row["broadcast_id"]), page_id=row["page_id"], psid=row["psid"], name=row["name"],
        state=RecipientState(row["state"]), position=int(row["position"]), reason_code=row["reason_code"],
        error_code=int(row["error_code"]) if row["error_code"] is not None else None,
        outbox_ids=tuple(int(value) for value in json.loads(row["outbox_ids"])),
        sent_at=_optional(row["sent_at"]), delivered_at=_optional(row["delivered_at"]),
        read_at=_optional(row["read_at"]), attempt=int(row["attempt"]), updated_at=moment(row["updated_at"]),
        sent_parts={int(part): int(outbox_id) for part, outbox_id in json.loads(row["sent_parts"]).items()},
    )


def _count(row: Any) -> RecipientCount:
    return RecipientCount(RecipientState(row["state"]), row["reason_code"],
                          int(row["error_code"]) if row["error_code"] is not None else None,
                          int(row["recipients"]), int(row["delivered"]), int(row["seen"]), int(row["partial"] or 0))


@dataclass(frozen=True)
class PlanState:
    """Where planning got to: the audience's contacts up to id `after` are planned; `queued` recipients so far."""

    after: int
    done: bool
    queued: int


@dataclass(frozen=True)
class RecipientCount:
    """One group of `counts`: recipients in `state` with this reason and error code."""

    state: RecipientState
    reason_code: str | None
    error_code: int | None
    recipients: int
    delivered: int
    read: int
    partial: int = 0  # of them, those who got part of the message (and are not "sent")


@dataclass(frozen=True)
class Outcome:
    """What the outbox says became of a recipient's current attempt."""

    psid: str
    attempt: int
    parts: PartsOutcome


class BroadcastStore(DatabaseStore):
    BACKEND = "broadcasts"
    SQL_DIR = SQL_DIR

    # --- broadcasts ------------------------------------------------------------------------------------------------

    def create(self, draft: BroadcastDraft, author: str, now: datetime) -> Broadcast:
        with self._db.write() as session:
            row = session.execute(self._db.queries["insert_broadcast"], {**self._draft_params(draft),
                                                                         "by": author, "now": stored_time(now)})
            broadcast_id = int(row.fetchone()["id"])
        found = self.get(broadcast_id)
        assert found is not None
        return found

    def get(self, broadcast_id: int) -> Broadcast | None:
        rows = self._db.read("get_broadcast", {"id": broadcast_id})
        return _broadcast(rows[0]) if rows else None

    def update_draft(self, broadcast_id: int, draft: BroadcastDraft, now: datetime) -> bool:
        """False: not a draft (or no such broadcast)."""
        with self._db.write() as session:
            row = session.execute(self._db.queries["update_draft"], {**self._draft_params(draft), "id": broadcast_id,
                                                                     "now": stored_time(now)}).fetchone()
        return row is not None

    def delete_draft(self, broadcast_id: int) -> bool:
        with self._db.write() as session:
            return session.execute(self._db.queries["delete_draft"], {"id": broadcast_id}).fetchone() is not None

    def list(self, page_id: str | None, limit: int, before_id: int | None) -> builtins.list[Broadcast]:
        """Newest first."""
        rows = self._db.read("list_broadcasts", {"page_id": page_id, "before_id": before_id, "limit": limit})
        return [_broadcast(row) for row in rows]

    def schedule(self, broadcast_id: int, send_at: datetime, now: datetime) -> bool:
        """DRAFT → SCHEDULED for `send_at`; False when it is not a draft."""
        with self._db.write() as session:
            row = session.execute(self._db.queries["schedule"], {"id": broadcast_id, "send_at": stored_time(send_at),
                                                                 "now": stored_time(now)}).fetchone()
        return row is not None

    def start_due(self, now: datetime) -> builtins.list[int]:
        """Scheduled broadcasts due by `now` → SENDING (one statement: two runners never both take one)."""
        with self._db.write() as session:
            return sorted(int(row["id"]) for row in
                          session.execute(self._db.queries["start_due"], {"now": stored_time(now)}).fetchall())

    def ids_to_refresh(self, since: datetime) -> builtins.list[int]:
        """Sending broadcasts, and those finished or cancelled since `since`."""
        return [int(row["id"]) for row in self._db.read("ids_to_refresh", {"since": stored_time(since)})]

    def cancel(self, broadcast_id: int, author: str, now: datetime) -> bool:
        """SCHEDULED or SENDING → CANCELLED; False otherwise."""
        with self._db.write() as session:
            row = session.execute(self._db.queries["cancel"], {"id": broadcast_id, "by": author,
                                                               "now": stored_time(now)}).fetchone()
        return row is not None

    def reopen(self, broadcast_id: int, now: datetime) -> None:
        """DONE → SENDING (failed recipients retried): done again when they are through."""
        self._db.run("reopen", {"id": broadcast_id, "now": stored_time(now)})

    def plan_state(self, broadcast_id: int) -> PlanState:
        row = self._db.read("get_broadcast", {"id": broadcast_id})[0]
        return PlanState(int(row["plan_after"]), bool(row["plan_done"]), int(row["queued_count"]))

    def save_plan(self, broadcast_id: int, plan: PlanState, expected_after: int, now: datetime) -> bool:
        """The planning cursor after a batch, only while the broadcast is still sending and the cursor is still at
        `expected_after` (where the batch started): a stale runner never moves it back. False: not saved."""
        with self._db.write() as session:
            return session.execute(self._db.queries["save_plan"], {
                "id": broadcast_id, "plan_after": plan.after, "plan_done": plan.done, "queued_count": plan.queued,
                "expected_after": expected_after, "now": stored_time(now)}).fetchone() is not None

    def take_lease(self, broadcast_id: int, owner: str, now: datetime, until: datetime) -> bool:
        """This runner (`owner`) works on the broadcast until `until`, if it holds the lease already or nobody does
        (or theirs ran out). False: another runner has it."""
        with self._db.write() as session:
            return session.execute(self._db.queries["take_lease"], {
                "id": broadcast_id, "owner": owner, "now": stored_time(now),
                "until": stored_time(until)}).fetchone() is not None

    def reserve_slots(self, page_id: str, count: int, rate: float, now: datetime) -> datetime:
        """`count` consecutive broadcast send slots of the page at `rate` per second, shared by every broadcast,
        retry and process: the first one's time (the page's next free slot, never before `now`); the next
        reservation starts after the last. Atomic (SQLite's write lock; PostgreSQL's row lock)."""
        if count <= 0:
            return now
        with self._db.write() as session:
            session.execute(self._db.queries["ensure_page_slot"], {"page_id": page_id, "now": stored_time(now)})
            row = session.execute(self._db.queries["page_slot"], {"page_id": page_id}).fetchone()
            start = slots_start(moment(row["next_at"]), now)
            session.execute(self._db.queries["set_page_slot"], {
                "page_id": page_id, "next_at": stored_time(start + timedelta(seconds=count / rate))})
        return start

    def has_queued(self, broadcast_id: int) -> bool:
        return bool(self._db.read("has_queued", {"broadcast_id": broadcast_id}))

    def to_enqueue(self, broadcast_id: int, limit: int) -> builtins.list[Recipient]:
        """Queued recipients with no outbox messages yet (planned, retried, or a runner died before their outbox
        ids were saved), in send order."""
        return [_recipient(row) for row in self._db.read("to_enqueue", {"broadcast_id": broadcast_id,
                                                                        "limit": limit})]

    def cancel_unenqueued(self, broadcast_id: int, now: datetime) -> int:
        """A cancelled broadcast's queued recipients that never reached the outbox → cancelled."""
        return self._db.run("cancel_unenqueued", {"broadcast_id": broadcast_id, "now": stored_time(now)})

    def finish_if_complete(self, broadcast_id: int, now: datetime) -> bool:
        """SENDING → DONE when everyone is planned and nobody is still in the outbox."""
        with self._db.write() as session:
            return session.execute(self._db.queries["finish"], {"id": broadcast_id,
                                                                "now": stored_time(now)}).fetchone() is not None

    # --- recipients ------------------------------------------------------------------------------------------------

    def add_recipients(self, recipients: Sequence[Recipient], now: datetime) -> None:
        """New rows; a person already planned for this broadcast keeps their row (a batch run again)."""
        if not recipients:
            return
        at = stored_time(now)
        params = [{"broadcast_id": r.broadcast_id, "psid": r.psid, "page_id": r.page_id, "name": r.name,
                   "state": r.state.value, "position": r.position, "reason_code": r.reason_code, "now": at}
                  for r in recipients]
        with self._db.write() as session:
            session.executemany(self._db.queries["insert_recipient"], params)

    def recipients_of(self, broadcast_id: int, psids: Iterable[str]) -> dict[str, Recipient]:
        wanted = sorted(set(psids))
        found: dict[str, Recipient] = {}
        for start in range(0, len(wanted), MAX_KEYS):
            rows = self._db.read("recipients_of", {"broadcast_id": broadcast_id,
                                                   "psids": _json(wanted[start:start + MAX_KEYS])})
            found.update((row["psid"], _recipient(row)) for row in rows)
        return found

    def set_outbox_ids(self, broadcast_id: int, ids: Sequence[tuple[str, int, Sequence[int]]], now: datetime) -> None:
        """(psid, attempt, outbox ids) of recipients just enqueued."""
        if not ids:
            return
        at = stored_time(now)
        with self._db.write() as session:
            session.executemany(self._db.queries["set_outbox_ids"], [
                {"broadcast_id": broadcast_id, "psid": psid, "attempt": attempt, "outbox_ids": _json(list(outbox)),
                 "now": at} for psid, attempt, outbox in ids])

    def to_refresh(self, broadcast_id: int, limit: int, before: datetime) -> builtins.list[Recipient]:
        """Recipients whose outcome or receipts may still change and that were last read at or before `before`,
        least recently read first."""
        return [_recipient(row) for row in self._db.read("to_refresh", {"broadcast_id": broadcast_id,
                                                                        "limit": limit,
                                                                        "before": stored_time(before)})]

    def set_outcomes(self, broadcast_id: int, outcomes: Sequence[Outcome], now: datetime) -> None:
        """Each recipient's outcome for the attempt it was read for (a retry since is left alone)."""
        if not outcomes:
            return
        at = stored_time(now)
        with self._db.write() as session:
            session.executemany(self._db.queries["set_outcome"], [
                {"broadcast_id": broadcast_id, "psid": o.psid, "attempt": o.attempt, "state": o.parts.state.value,
                 "reason_code": o.parts.reason_code, "error_code": o.parts.error_code,
                 "sent_at": _stored(o.parts.sent_at), "delivered_at": _stored(o.parts.delivered_at),
                 "read_at": _stored(o.parts.read_at), "sent_parts": _parts(o.parts.sent_parts), "now": at}
                for o in outcomes])

    def touch_refreshed(self, broadcast_id: int, psids: Sequence[str], now: datetime) -> None:
        """Recipients read with nothing new go to the back of `to_refresh`'s queue."""
        for start in range(0, len(psids), MAX_KEYS):
            self._db.run("touch_refreshed", {"broadcast_id": broadcast_id, "now": stored_time(now),
                                             "psids": _json(list(psids[start:start + MAX_KEYS]))})

    def requeue(self, broadcast_id: int, psids: Sequence[str], now: datetime) -> int:
        """Failed or blocked recipients queued again under their next attempt (new keys; the runner enqueues them,
        without the parts they already got), and a done broadcast sending again: one transaction, only while the
        broadcast is sending or done. How many were queued again."""
        at = stored_time(now)
        wanted = sorted(set(psids))
        with self._db.write() as session:
            held = session.execute(self._db.queries["hold_for_retry"], {"id": broadcast_id, "now": at}).fetchone()
            if held is None or not wanted:
                return 0
            requeued = 0
            for start in range(0, len(wanted), MAX_KEYS):
                requeued += int(session.execute(self._db.queries["requeue"], {
                    "broadcast_id": broadcast_id, "psids": _json(wanted[start:start + MAX_KEYS]),
                    "now": at}).rowcount)
            if requeued and held["status"] == BroadcastStatus.DONE.value:
                session.execute(self._db.queries["reopen"], {"id": broadcast_id, "now": at})
        return requeued

    def counts(self, broadcast_id: int) -> builtins.list[RecipientCount]:
        return [_count(row) for row in self._db.read("count_recipients", {"broadcast_id": broadcast_id})]

    def counts_of(self, broadcast_ids: Sequence[int]) -> dict[int, builtins.list[RecipientCount]]:
        """`counts` of several broadcasts in one grouped query (the reports); a broadcast without recipients is
        absent."""
        found: dict[int, builtins.list[RecipientCount]] = {}
        if not broadcast_ids:
            return found
        for row in self._db.read("count_recipients_of", {"ids": _json(sorted({int(i) for i in broadcast_ids}))}):
            found.setdefault(int(row["broadcast_id"]), []).append(_count(row))
        return found

    def started_between(self, page_id: str | None, since: datetime, until: datetime,
                        limit: int) -> builtins.list[Broadcast]:
        """The broadcasts that started in [`since`, `until`) (`page_id` None: every page), in start order, at most
        `limit` (read through the start-time index)."""
        rows = self._db.read("started_between", {"page_id": page_id, "since": stored_time(since),
                                                 "until": stored_time(until), "limit": limit})
        return [_broadcast(row) for row in rows]

    def recipients_in(self, broadcast_id: int, states: Iterable[RecipientState], after_psid: str = "",
                      limit: int = 1000) -> builtins.list[Recipient]:
        """Recipients in these states, by PSID, after `after_psid` (paging)."""
        return [_recipient(row) for row in self._db.read("recipients_in_state", {
            "broadcast_id": broadcast_id, "states": _json(sorted(state.value for state in states)),
            "after_psid": after_psid, "limit": limit})]

    @staticmethod
    def _draft_params(draft: BroadcastDraft) -> dict[str, Any]:
        return {"page_id": draft.page_id, "name": draft.name, "content_json": _json(draft.content.to_dict()),
                "audience_json": _json(draft.audience.to_dict()), "promotional": draft.promotional,
                "tag": draft.tag}


def open_broadcasts_store(url: Path | str) -> BroadcastStore:
    """The broadcasts store at `settings.store_url("broadcasts")`: `sqlite:///path` (or a path) or
    `postgresql://…` (schema: the URL's search_path, else "broadcasts")."""
    return BroadcastStore(url)
