"""The durable inbox of webhook events, written before the webhook answers 200: a SQLite file (`IngestStore`, the
embedded profile) or a PostgreSQL schema (`connectors.ingest_postgres.PostgresIngestStore`, the scale profile, shared
by the webhook process and every Rasa instance); `open_ingest_store(settings.ingest_store_url)` picks one. Both keep
the contract of `connectors.ingest_journal.IngestJournal` (one contract suite: tests/integration/ingest/).

Meta redelivers on slow answers and on restarts; the dedup key makes a redelivery a no-op.
Events recorded but not finished are picked up again after a restart. An event not for Rasa that
opens the 24-hour window (a reaction, a referral, a message in standby) is journaled with
`window_pending` in the same transaction, so the window is applied again after a crash. What a user
writes in standby (another app holds the thread) is journaled the same way with `notice_pending`: the
agents' live view gets it once the app confirms, even if the process dies or the app is down.

Retention (`prune`): finished events older than the retention are deleted; the dedup keys of those
still inside Meta's redelivery horizon move to `inbound_seen`, so a late redelivery stays a no-op.
Pending events and unapplied windows or notices are never deleted.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from connectors.handoff import NoticeRefused
from connectors.ingest_journal import (
    DEFAULT_DEDUP_HORIZON,
    DEFAULT_RETENTION,
    DONE,
    FAILED,
    IGNORED,
    JOURNAL_BATCH,
    PENDING,
    RECORDED,
    ROLE_ALL,
    ROLE_FEEDER,
    ROLE_WEBHOOK,
    ROLES,
    STALE_CLAIM,
    IngestJournal,
    PruneResult,
    StoredEvent,
    check_role,
    distinct,
    initial_status,
    iso,
    needs_live_view_notice,
    new_row,
    receipt_may_precede_its_send,
    utc_now_iso,
)
from core.sqlite import SQLiteFile, numbered
from meta.events import EventKind, InboundEvent
from outbox.model import MessageFilter, Status

if TYPE_CHECKING:
    from outbox.outbox import Outbox

__all__ = [
    "DEFAULT_DEDUP_HORIZON",
    "DEFAULT_RETENTION",
    "DONE",
    "FAILED",
    "IGNORED",
    "PENDING",
    "RECORDED",
    "STALE_CLAIM",
    "IngestJournal",
    "AppliedBatch",
    "IngestStore",
    "JournalApplier",
    "ROLES",
    "ROLE_ALL",
    "ROLE_FEEDER",
    "ROLE_WEBHOOK",
    "PruneResult",
    "StoredEvent",
    "initial_status",
    "needs_live_view_notice",
    "open_ingest_store",
    "tell_outbox",
    "utc_now_iso",
]

logger = logging.getLogger(__name__)

_MIGRATIONS = (
    """
    CREATE TABLE inbound_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        dedup_key TEXT NOT NULL UNIQUE,
        page_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        kind TEXT NOT NULL,
        status TEXT NOT NULL,
        event_json TEXT NOT NULL,
        received_at TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        finished_at TEXT
    );
    CREATE INDEX inbound_events_status ON inbound_events (status, id);
    CREATE INDEX inbound_events_conversation ON inbound_events (page_id, user_id, id);
    CREATE TABLE send_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        page_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        request_json TEXT NOT NULL,
        status TEXT NOT NULL,
        message_id TEXT,
        error_code INTEGER,
        error_message TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX send_log_conversation ON send_log (page_id, user_id, id);
    """,
    """
    ALTER TABLE inbound_events ADD COLUMN window_pending INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX inbound_events_window_pending ON inbound_events (id) WHERE window_pending = 1;
    CREATE INDEX inbound_events_received ON inbound_events (received_at);
    CREATE INDEX send_log_created ON send_log (created_at);
    CREATE TABLE inbound_seen (
        dedup_key TEXT PRIMARY KEY,
        received_at TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX inbound_seen_received ON inbound_seen (received_at);
    """,
    """
    ALTER TABLE inbound_events ADD COLUMN notice_pending INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX inbound_events_notice_pending ON inbound_events (id) WHERE notice_pending = 1;
    """,
    # Turns of the event undone after a failed action call (`UserUtteranceReverted`): the replies of each re-run
    # turn get their own outbox keys (connectors/messenger.py `reply_key_prefix`); `attempts` counts every failure.
    """
    ALTER TABLE inbound_events ADD COLUMN reverted_turns INTEGER NOT NULL DEFAULT 0;
    """,
    # Claims: several Rasa instances share one journal; a conversation is processed by one of them at a time, under
    # a lease (`claim_pending`). The key is computed (older code that inserts without it keeps working).
    """
    ALTER TABLE inbound_events ADD COLUMN conversation_key TEXT
        GENERATED ALWAYS AS (page_id || ':' || user_id) VIRTUAL;
    CREATE INDEX inbound_events_pending_conversation ON inbound_events (conversation_key, id)
        WHERE status = 'pending';
    CREATE TABLE ingest_claims (
        conversation_key TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        lease_until TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX ingest_claims_owner ON ingest_claims (owner, conversation_key);
    """,
)

_PRUNE_CHUNK = 5000

_INSERT_EVENT = (
    "INSERT OR IGNORE INTO inbound_events"
    " (dedup_key, page_id, user_id, kind, status, event_json, received_at, window_pending, notice_pending)"
    " SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM inbound_seen WHERE dedup_key = ?)"
)
# What may be deleted: finished, its window and notice applied, received before the cutoff.
_PRUNABLE = "status != 'pending' AND window_pending = 0 AND notice_pending = 0 AND received_at < ?"
_ROW = "id, event_json, status, attempts, window_pending, notice_pending"
# The first `limit` journaled rows above `after`: each flag's partial index gives its first `limit` ids, so a
# backlog is never read whole.
_JOURNALED = (
    "SELECT " + _ROW + " FROM inbound_events WHERE id IN ("
    "SELECT id FROM (SELECT id FROM inbound_events WHERE window_pending = 1 AND id > :after ORDER BY id LIMIT :limit)"
    " UNION SELECT id FROM (SELECT id FROM inbound_events WHERE notice_pending = 1 AND id > :after"
    " ORDER BY id LIMIT :limit)) ORDER BY id LIMIT :limit"
)
_KEEP_SEEN_KEYS = (
    "INSERT OR IGNORE INTO inbound_seen (dedup_key, received_at)"
    " SELECT dedup_key, received_at FROM inbound_events WHERE id IN ({ids}) AND received_at >= ?"
)


# Claims (`claim_pending`): the conversations whose pending events an owner may take, the one waiting longest first
# (by its oldest pending event): unclaimed, claimed by the owner, or claimed under a lease that ran out. One row per
# conversation, so `limit` candidates are `limit` conversations however long one user's backlog is.
_CLAIMABLE = (
    "SELECT e.conversation_key FROM inbound_events e WHERE e.status = 'pending' AND NOT EXISTS"
    " (SELECT 1 FROM ingest_claims c WHERE c.conversation_key = e.conversation_key AND c.owner != ?"
    " AND c.lease_until > ?) GROUP BY e.conversation_key ORDER BY min(e.id) LIMIT ?"
)
# The held conversations' pending events, taken round robin (each conversation's first pending event, then each
# one's second, ...) up to the limit, returned in id order: every held conversation gets its oldest event, and
# fewer than `limit` rows means every pending event of those conversations is there.
_PENDING_OF = (
    "SELECT " + _ROW + " FROM (SELECT " + _ROW + ", row_number() OVER"
    " (PARTITION BY conversation_key ORDER BY id) AS turn FROM inbound_events"
    " WHERE status = 'pending' AND conversation_key IN ({keys}) ORDER BY turn, id LIMIT ?) ORDER BY id"
)
# The conversations tried from a snapshot read (`:keys`, a JSON array), in one statement: each is claimed only if
# it still has a pending event (its partial index) and nobody else holds it under a live lease (re-checked on the
# row the upsert meets).
_TAKE_CLAIMS = (
    "INSERT INTO ingest_claims (conversation_key, owner, lease_until)"
    " SELECT k.value, :owner, :until FROM json_each(:keys) AS k WHERE EXISTS (SELECT 1 FROM inbound_events e"
    " WHERE e.conversation_key = k.value AND e.status = 'pending')"
    " ON CONFLICT (conversation_key) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until"
    " WHERE ingest_claims.owner = excluded.owner OR ingest_claims.lease_until <= :at"
)
_RENEW_CLAIMS = (
    "UPDATE ingest_claims SET lease_until = :until WHERE owner = :owner"
    " AND conversation_key IN (SELECT value FROM json_each(:keys))"
)
# Which of `:keys` the owner holds until `:until` (what the statement above just wrote).
_HELD = (
    "SELECT conversation_key FROM ingest_claims WHERE owner = :owner AND lease_until = :until"
    " AND conversation_key IN (SELECT value FROM json_each(:keys))"
)


# A window or notice that fails with one of these is this row's problem (its data): the row is retried, the batch
# goes on. Any other failure means the outbox (or the app, for a notice) cannot be reached now: what needs it waits.
ROW_ERRORS = (ValueError, TypeError, LookupError)
# The upkeep walks the journal this many pages (`JOURNAL_BATCH` rows each) per round at most, from where it stopped.
UPKEEP_PAGES = 20
# A receipt deferred (`IngestJournal.defer_window`) is not taken again by this process before this many seconds.
DEFERRED_RETRY_SECONDS = 5.0
EARLY_RECEIPT = "the receipt came before the outbox recorded its message as sent"


async def tell_outbox(outbox: Outbox, event: InboundEvent, user_time: datetime, now: datetime,
                      lease: timedelta) -> bool:
    """What the outbox must hear of a journaled event (`window_pending`; the Rasa channel's `record_window`): a user
    acting opens the window at `user_time` (and is their last message, counted); a delivery or read receipt marks
    what the page sent. False: the receipt marked nothing and may have come before the outbox recorded its message
    as sent (recent, `receipt_may_precede_its_send`, and a message to that person is being sent right now): worth
    one more try later (`JournalApplier`). True otherwise."""
    if event.opens_window:
        # A reaction or a referral counts, but says nothing: the last message's text stays.
        text = event.shown_text() if event.kind in (EventKind.MESSAGE, EventKind.POSTBACK) else None
        await outbox.record_user_message(event.page_id, event.user_id, user_time, text)
        return True
    if not event.is_receipt:
        return True
    changed = await outbox.record_receipt(event.page_id, event.user_id, event.kind.value, event.watermark(),
                                          event.mids)
    if changed or not receipt_may_precede_its_send(event, now, lease):
        return True
    sending = await outbox.find(MessageFilter(recipient_id=event.user_id, page_id=event.page_id,
                                              statuses=(Status.SENDING,), limit=1))
    return not sending


@dataclass
class AppliedBatch:
    """What one `JournalApplier.apply` met: the outbox or the app unreachable (the rows needing it were left journaled
    for a later round, untouched), rows applied, receipts deferred once, receipts dropped after their deferral,
    notices the app refused for good (dropped)."""

    outbox_unreachable: bool = False
    app_unreachable: bool = False
    applied: int = 0
    deferred: int = 0
    dropped: int = 0
    refused: int = 0  # notices the app refused for good (`NoticeRefused`): cleared, logged once each
    first_unreachable_id: int | None = None  # the row at which the first of them was found unreachable

    @property
    def stopped(self) -> bool:
        return self.outbox_unreachable or self.app_unreachable

    def blocks(self, stored: StoredEvent) -> bool:
        """Nothing the row needs can be applied now (what it needs was found unreachable): it is left as it is, no
        take and no restore. A row with one part that can go (a standby message's window while the app is down) is
        still taken: that part is applied, the other put back."""
        window_waits = not stored.window_pending or self.outbox_unreachable
        notice_waits = not stored.notice_pending or self.app_unreachable
        return window_waits and notice_waits

    def unreachable(self, stored: StoredEvent, outbox: bool) -> None:
        if outbox:
            self.outbox_unreachable = True
        else:
            self.app_unreachable = True
        if self.first_unreachable_id is None:
            self.first_unreachable_id = stored.id


class JournalApplier:
    """Applies what the ingest transaction journaled for events not for Rasa, after the webhook's 200: the window
    (`record_window`) and the live-view notice (`notify` → True once the app confirmed it). Each row's flags are
    taken atomically first (`take_journaled`), so of the webhook's task, the upkeep loop and every Rasa instance
    reading the same journaled row (each one's feeder reads `journaled()`), one applies it; a failure (or a
    cancellation) sets the flag back (`restore_journaled`) for the next round (the upkeep loop, the next start). A
    notice the app recorded but whose answer was lost is sent again (at least once); a process killed between the
    take and the apply loses that one window or notice (at most the rows it was applying).

    The first failure that means the outbox is unreachable (anything but `ROW_ERRORS`), or an unconfirmed notice (the
    app down, or answering "not now"), ends the batch for the rows that need it: they stay
    journaled, untouched, for a later round, instead of a take and a restore each (two writes per row of a backlog,
    on the file the webhook's commits need). `record_window` returning False
    means "too early" (a receipt that beat the outbox's commit of the send): the row is deferred once
    (`defer_window`), not taken again here for `retry_after_seconds`, and dropped if it is still too early then. A
    notice the app refused for good (`notify` raises `connectors.handoff.NoticeRefused`: a 4xx about its body) is
    cleared once, logged, and the batch goes on."""

    def __init__(
        self,
        store: IngestJournal,
        record_window: Callable[[InboundEvent], Awaitable[bool | None]],
        notify: Callable[[InboundEvent], Awaitable[bool]],
        *,
        retry_after_seconds: float = DEFERRED_RETRY_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.record_window = record_window
        self.notify = notify
        self.retry_after_seconds = retry_after_seconds
        self.clock = clock
        self._inflight: set[int] = set()
        self._not_before: dict[int, float] = {}  # deferred rows: not taken again here before then (bounded: swept)
        self._after = 0  # the upkeep's place in the journal (`apply_backlog`)

    async def apply(self, journaled: Iterable[StoredEvent], batch: AppliedBatch | None = None) -> AppliedBatch:
        """Apply the rows; `batch`: carry on one the caller began (what it found unreachable still holds)."""
        batch = AppliedBatch() if batch is None else batch
        now = self.clock()
        self._not_before = {event_id: at for event_id, at in self._not_before.items() if at > now}
        for stored in journaled:
            if stored.id in self._inflight or stored.id in self._not_before or batch.blocks(stored):
                continue
            self._inflight.add(stored.id)
            try:
                await self._apply_one(stored, batch)
            except Exception:  # the journal itself failed (the SQLite file locked, the disk): the flags stay set,
                # the next round retries this row; the rest of the batch is still applied
                logger.exception("applying a journaled event failed; retried later", extra={"event_id": stored.id})
            finally:
                self._inflight.discard(stored.id)
        return batch

    async def apply_backlog(self, pages: int = UPKEEP_PAGES, limit: int = JOURNAL_BATCH) -> None:
        """The upkeep's round: the journal read `limit` rows at a time from where the last round stopped, up to
        `pages` pages, ending at a page where nothing could be applied (the outbox or the app unreachable). At the
        end of the journal the walk starts again from the beginning (the rows left journaled behind it)."""
        batch = AppliedBatch()
        try:
            for _ in range(pages):
                rows = await self.store.run(self.store.journaled, self._after, limit)
                self._after = rows[-1].id if len(rows) >= limit else 0
                applied_before = batch.applied
                await self.apply(rows, batch)
                if self._after == 0 or (batch.stopped and batch.applied == applied_before):
                    return  # the end of the journal, or a page where nothing could be applied
        finally:
            if batch.first_unreachable_id is not None:
                # The next round starts right after the row that found the outbox or the app unreachable: each
                # round's first try is a row further on, so a row that is refused for good (taken for an outage)
                # never keeps the rows behind it from being tried.
                self._after = batch.first_unreachable_id

    async def _apply_one(self, stored: StoredEvent, batch: AppliedBatch) -> None:
        # Taken atomically: of the instances (and tasks) holding this row, one gets each flag and applies it.
        window, notice = await self.store.run(self.store.take_journaled, stored.id)
        window_failed, notice_failed = window, notice  # until applied (a cancellation puts them back too)
        try:
            if window and not batch.outbox_unreachable:
                try:
                    recorded = await self.record_window(stored.event)
                    window_failed = False
                    if recorded is False:
                        await self._defer(stored, batch)
                    else:
                        batch.applied += 1
                except ROW_ERRORS:  # put back below; logged and retried, never lost
                    logger.exception("recording the window failed; retried later", extra={"event_id": stored.id})
                except Exception:  # put back below; the rest of the batch waits for the outbox
                    batch.unreachable(stored, outbox=True)
                    logger.exception("the outbox did not take the window; retried later",
                                     extra={"event_id": stored.id})
            if notice and not batch.app_unreachable:
                try:
                    notice_failed = not await self.notify(stored.event)
                    if notice_failed:  # the handoff client logged why (the app is down or refused it)
                        batch.unreachable(stored, outbox=False)
                        logger.warning("the live-view notice was not confirmed; retried later",
                                       extra={"event_id": stored.id})
                    else:
                        batch.applied += 1
                except NoticeRefused as exc:  # the body itself is refused: sending it again changes nothing
                    notice_failed = False
                    batch.refused += 1
                    logger.error("the app refused a journaled notice for good; dropped",
                                 extra={"event_id": stored.id, "path": exc.path, "status": exc.status,
                                        "kind": stored.event.kind.value})
                except ROW_ERRORS:  # put back below; logged and retried, never lost
                    logger.exception("the live-view notice failed; retried later", extra={"event_id": stored.id})
                except Exception:  # put back below; the rest of the batch waits for the app
                    batch.unreachable(stored, outbox=False)
                    logger.exception("the live-view notice failed; retried later", extra={"event_id": stored.id})
        finally:
            if window_failed or notice_failed:
                await self._restore(stored.id, window_failed, notice_failed)

    async def _defer(self, stored: StoredEvent, batch: AppliedBatch) -> None:
        """Once: a later round (not before `retry_after_seconds` here) tries the receipt again; then it is dropped."""
        try:
            deferred = await self.store.run(self.store.defer_window, stored.id, EARLY_RECEIPT)
        except Exception:  # the journal failed: this receipt is not retried (it marks nothing, as before)
            logger.exception("deferring an early receipt failed: not retried", extra={"event_id": stored.id})
            return
        if deferred:
            batch.deferred += 1
            self._not_before[stored.id] = self.clock() + self.retry_after_seconds
        else:
            batch.dropped += 1
            logger.info("a receipt marked nothing after its retry; dropped",
                        extra={"event_id": stored.id, "kind": stored.event.kind.value})

    async def _restore(self, event_id: int, window: bool, notice: bool) -> None:
        try:
            await self.store.run(self.store.restore_journaled, event_id, window, notice)
        except Exception:  # the flags cannot be put back: this window / notice is not retried
            logger.exception("putting a journaled event back failed: not retried",
                             extra={"event_id": event_id, "window": window, "notice": notice})


# The webhook process checkpoints only past this much WAL (~40 MB: the feeder's side is down), so the commit a
# delivery waits for is not the one that copies 1000 pages back into the database file.
_WEBHOOK_AUTOCHECKPOINT = 10_000


class IngestStore(IngestJournal):
    """One SQLite file (`core.sqlite.SQLiteFile`); callers run it off the event loop (`run`). Writers queue on
    SQLite's lock, retried in short steps (`short_waits`): a delivery's transaction (`BEGIN IMMEDIATE`), so ids grow
    in commit order; the feeder's frequent writes are one statement each (`write_statement`: the lock is never held
    while its thread waits for Python's GIL).

    Two processes write the file at once: the webhook process (its deliveries) and Rasa's side (claims, verdicts,
    releases). What each commit costs depends on `role`:
    - a delivery (`record_many`) is always synchronous=FULL: on disk before the webhook answers 200;
    - `ROLE_FEEDER` (Rasa's side) runs its own writes (claims, `finish`, `release_claim`, the applied windows and
      notices, the send log, prunes) with synchronous=NORMAL in WAL: the commit returns without an fsync (the next
      FULL commit or checkpoint syncs it), so it holds the write lock microseconds, not a disk flush, and the
      webhook's commits rarely wait behind it. A process crash loses nothing (the WAL is written); a power cut or
      OS crash may lose the last of these writes (those before the next FULL commit of either process): an event
      then reads pending again and is replayed, as after a crash between a turn and its `finish` with FULL (its
      replies' outbox keys make the replay send nothing twice), a claim is taken again, a window or notice is
      applied again (at least once already). What must not be lost even then stays FULL: `note_attempt_failed` and
      `note_turn_reverted` (a reverted turn's replay needs its new outbox keys);
    - `ROLE_WEBHOOK` checkpoints only past ~40 MB of WAL (the feeder's side does it after its commits);
    - `ROLE_ALL` (the default): every commit FULL, SQLite's checkpoints."""

    def __init__(self, path: Path | str, role: str = ROLE_ALL) -> None:
        check_role(role)
        self.path = Path(path)
        self.role = role
        self._db = SQLiteFile(
            self.path,
            "ingest",
            numbered(_MIGRATIONS),
            synchronous="NORMAL" if role == ROLE_FEEDER else "FULL",
            busy_timeout_ms=5000,
            short_waits=True,
            wal_autocheckpoint=_WEBHOOK_AUTOCHECKPOINT if role == ROLE_WEBHOOK else None,
            foreign_keys=False,
            allow_newer=True,  # as it always has: an older Rasa keeps using a journal a newer one migrated
            row_factory=None,
        )
        super().__init__("ingest-store")

    def _close_database(self) -> None:
        self._db.close()

    def record_many(self, deliveries: list[tuple[list[InboundEvent], str]]) -> list[list[StoredEvent]]:
        now = utc_now_iso()
        results: list[list[StoredEvent]] = []
        with self._db.write(synchronous="FULL") as conn:  # durable before the 200, whatever the role
            for events, own_app_id in deliveries:
                fresh: list[StoredEvent] = []
                for event in events:
                    row = new_row(event, own_app_id)
                    cursor = conn.execute(
                        _INSERT_EVENT,
                        (
                            event.dedup_key,
                            event.page_id,
                            event.user_id,
                            event.kind.value,
                            row.status,
                            row.event_json,
                            now,
                            int(row.window_pending),
                            int(row.notice_pending),
                            event.dedup_key,
                        ),
                    )
                    if cursor.rowcount:
                        event_id = int(cursor.lastrowid or 0)
                        fresh.append(StoredEvent(event_id, event, row.status, 0, row.window_pending,
                                                 row.notice_pending))
                results.append(fresh)
        return results

    def pending(self) -> list[StoredEvent]:
        """Events recorded but not finished, oldest first (recovery after a restart)."""
        with self._db.connection() as conn:
            rows = conn.execute(
                f"SELECT {_ROW} FROM inbound_events WHERE status = ? ORDER BY id", (PENDING,)
            ).fetchall()
        return self._rebuild(rows)

    def pending_ids(self) -> list[int]:
        """The ids of the pending events, oldest first (a read: the feeder claims only when one is new to it)."""
        with self._db.connection() as conn:
            rows = conn.execute("SELECT id FROM inbound_events WHERE status = 'pending' ORDER BY id").fetchall()
        return [row[0] for row in rows]

    def windows_pending(self) -> list[StoredEvent]:
        """Events not for Rasa whose window was journaled but not yet applied, oldest first."""
        with self._db.connection() as conn:
            rows = conn.execute(
                f"SELECT {_ROW} FROM inbound_events WHERE window_pending = 1 ORDER BY id"
            ).fetchall()
        return self._rebuild(rows)

    def journaled(self, after: int = 0, limit: int = JOURNAL_BATCH) -> list[StoredEvent]:
        """Events whose window or live-view notice was journaled but not yet applied, oldest first: the first `limit`
        above `after` (each flag's partial index read up to `limit` entries; only those rows are parsed)."""
        if limit <= 0:
            return []
        with self._db.connection() as conn:
            rows = conn.execute(_JOURNALED, {"after": after, "limit": limit}).fetchall()
        return self._rebuild(rows)

    def window_applied(self, event_id: int) -> None:
        self._db.write_statement("UPDATE inbound_events SET window_pending = 0 WHERE id = ?", (event_id,))

    def journal_state(self, event_id: int) -> tuple[bool, bool]:
        """(window_pending, notice_pending) as committed now: a snapshot read earlier may be stale."""
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT window_pending, notice_pending FROM inbound_events WHERE id = ?", (event_id,)
            ).fetchone()
        return (bool(row[0]), bool(row[1])) if row else (False, False)

    def notice_applied(self, event_id: int) -> None:
        """The app confirmed the live-view notice: it is never sent again."""
        self._db.write_statement("UPDATE inbound_events SET notice_pending = 0 WHERE id = ?", (event_id,))

    def take_journaled(self, event_id: int) -> tuple[bool, bool]:
        with self._db.write() as conn:  # BEGIN IMMEDIATE: one taker at a time on this file
            row = conn.execute(
                "SELECT window_pending, notice_pending FROM inbound_events WHERE id = ?", (event_id,)
            ).fetchone()
            if row is None or not (row[0] or row[1]):
                return (False, False)
            conn.execute("UPDATE inbound_events SET window_pending = 0, notice_pending = 0 WHERE id = ?", (event_id,))
        return (bool(row[0]), bool(row[1]))

    def restore_journaled(self, event_id: int, window: bool, notice: bool) -> None:
        if not (window or notice):
            return
        with self._db.write(synchronous="FULL") as conn:  # lost, it would lose the window or the notice
            conn.execute(
                "UPDATE inbound_events SET window_pending = max(window_pending, ?),"
                " notice_pending = max(notice_pending, ?) WHERE id = ?",
                (int(window), int(notice), event_id),
            )

    def defer_window(self, event_id: int, error: str, max_deferrals: int = 1) -> bool:
        with self._db.write(synchronous="FULL") as conn:  # as `restore_journaled`: lost, the receipt would be
            return bool(conn.execute(
                "UPDATE inbound_events SET window_pending = 1, attempts = attempts + 1, last_error = ?"
                " WHERE id = ? AND attempts < ?",
                (error[:500], event_id, max_deferrals),
            ).rowcount)

    def _mark_unparseable(self, event_id: int, error: str) -> None:
        self._db.write_statement(
            "UPDATE inbound_events SET status = ?, window_pending = 0, notice_pending = 0, last_error = ?,"
            " finished_at = ? WHERE id = ?",
            (FAILED, error, utc_now_iso(), event_id),
        )

    def claim_pending(
        self, owner: str, now: datetime, lease: timedelta, limit: int = 200
    ) -> list[StoredEvent]:
        """Up to `limit` conversations that are unclaimed, claimed by `owner` or whose claim ran out, longest
        waiting first, are (re)claimed for `owner` until `now + lease`; their pending events, round robin up to
        `limit` events, are returned in id order, including those `owner` already has in flight (the caller skips
        its own).

        Only the claims hold the write lock: which conversations to try and their pending events are reads (WAL
        snapshots: they never wait nor make a writer wait). Under a backlog each read scans the pending events
        (~5 ms each at 1,500, more when Rasa is short of CPU), and the webhook's commits queued behind them when
        they were inside the transaction. The claims are one statement (`_TAKE_CLAIMS`, `write_statement`): each is
        taken only while nobody else holds it under a live lease and the conversation still has a pending event, as
        the read saw it. (Taken one by one in a transaction, two statements a conversation, the lock stayed held
        while this thread waited for the GIL between them: up to 170 ms with Rasa predicting, the webhook's commits
        waiting behind.) Which ones it got, and the events that are the owner's once it holds the claims, are read
        after the commit (nobody else may take them)."""
        if limit <= 0:
            return []
        at, until = iso(now), iso(now + lease)
        with self._db.connection() as conn:  # an idle poll takes no write lock
            keys = distinct(row[0] for row in conn.execute(_CLAIMABLE, (owner, at, limit)))
        if not keys:
            return []
        claim = {"owner": owner, "until": until, "at": at, "keys": json.dumps(keys)}
        if not self._db.write_statement(_TAKE_CLAIMS, claim):
            return []
        held = self._held(keys, claim)
        if not held:
            return []
        with self._db.connection() as conn:
            rows = conn.execute(_PENDING_OF.format(keys=",".join("?" * len(held))), (*held, limit)).fetchall()
        return self._rebuild(rows)

    def renew_claims(self, owner: str, conversation_keys: list[str], now: datetime, lease: timedelta) -> list[str]:
        """Extend `owner`'s claims until `now + lease`; the keys it still holds (a claim another owner took over
        after it ran out is not renewed)."""
        keys = distinct(conversation_keys)
        if not keys:
            return []
        renewal = {"owner": owner, "until": iso(now + lease), "keys": json.dumps(keys)}
        if not self._db.write_statement(_RENEW_CLAIMS, renewal):  # one statement: see `claim_pending`
            return []
        return self._held(keys, renewal)

    def _held(self, keys: list[str], claim: dict[str, str]) -> list[str]:
        """Which of `keys` the owner holds until `claim["until"]`, in their order: read right after the statement
        that wrote them (nobody else takes a claim under a live lease)."""
        with self._db.connection() as conn:
            held = {row[0] for row in conn.execute(_HELD, claim)}
        return [key for key in keys if key in held]

    def release_claim(self, owner: str, conversation_key: str) -> None:
        """`owner` drained its queue for the conversation: the claim goes, if `owner` still holds it."""
        self._db.write_statement(
            "DELETE FROM ingest_claims WHERE conversation_key = ? AND owner = ?", (conversation_key, owner)
        )

    def claims(self) -> dict[str, tuple[str, datetime]]:
        """conversation_key → (owner, lease_until) of every claim (tests, diagnostics)."""
        with self._db.connection() as conn:
            rows = conn.execute("SELECT conversation_key, owner, lease_until FROM ingest_claims").fetchall()
        return {key: (owner, datetime.fromisoformat(until)) for key, owner, until in rows}

    def prune(
        self,
        now: datetime,
        retention: timedelta = DEFAULT_RETENTION,
        dedup_horizon: timedelta = DEFAULT_DEDUP_HORIZON,
    ) -> PruneResult:
        """Delete finished events and send logs older than `retention`, keeping the dedup keys of
        deleted events younger than `dedup_horizon`. In chunks, so webhooks are not held up."""
        cutoff, horizon = iso(now - retention), iso(now - dedup_horizon)
        deleted = kept = 0
        while True:
            with self._db.write() as conn:
                ids = [
                    row[0]
                    for row in conn.execute(
                        f"SELECT id FROM inbound_events WHERE {_PRUNABLE} ORDER BY id LIMIT {_PRUNE_CHUNK}", (cutoff,)
                    )
                ]
                if ids:
                    marks = ",".join("?" * len(ids))
                    kept += conn.execute(_KEEP_SEEN_KEYS.format(ids=marks), (*ids, horizon)).rowcount
                    deleted += conn.execute(f"DELETE FROM inbound_events WHERE id IN ({marks})", ids).rowcount
            if len(ids) < _PRUNE_CHUNK:
                break
        with self._db.write() as conn:
            expired = conn.execute("DELETE FROM inbound_seen WHERE received_at < ?", (horizon,)).rowcount
            sends = conn.execute("DELETE FROM send_log WHERE created_at < ?", (cutoff,)).rowcount
            claims = conn.execute(
                "DELETE FROM ingest_claims WHERE lease_until < ?", (iso(now - STALE_CLAIM),)
            ).rowcount
        return PruneResult(deleted, kept, expired, sends, claims)

    def finish(self, event_id: int, status: str, error: str | None = None, *, counted: bool = False) -> None:
        """The event's verdict. The attempt that ends it is counted here, unless it was `counted` already (a give-up
        right after `note_attempt_failed` or `note_turn_reverted`, or attempts that ran out before a restart)."""
        self._db.write_statement(  # one statement: the lock is never held while this thread waits for the GIL
            "UPDATE inbound_events SET status = ?, last_error = ?, finished_at = ?, attempts = attempts + ?"
            " WHERE id = ?",
            (status, error, utc_now_iso(), 0 if counted else 1, event_id),
        )

    def note_attempt_failed(self, event_id: int, error: str) -> int:
        with self._db.write(synchronous="FULL") as conn:
            conn.execute(
                "UPDATE inbound_events SET attempts = attempts + 1, last_error = ? WHERE id = ?", (error, event_id)
            )
            row = conn.execute("SELECT attempts FROM inbound_events WHERE id = ?", (event_id,)).fetchone()
        return int(row[0]) if row else 0

    def reverted_turns(self, event_id: int) -> int:
        """How many turns of the event were undone after a failed action call (`note_turn_reverted`)."""
        with self._db.connection() as conn:
            row = conn.execute("SELECT reverted_turns FROM inbound_events WHERE id = ?", (event_id,)).fetchone()
        return int(row[0]) if row else 0

    def note_turn_reverted(self, event_id: int, error: str) -> tuple[int, int]:
        """A turn failed in an action call and is about to be undone: a failed attempt and a reverted turn, in one
        write, recorded BEFORE the revert (a crash in between replays under the new turn's keys, and the replay
        finishes the revert). Returns (attempts, reverted_turns)."""
        with self._db.write(synchronous="FULL") as conn:
            conn.execute(
                "UPDATE inbound_events SET attempts = attempts + 1, reverted_turns = reverted_turns + 1,"
                " last_error = ? WHERE id = ?",
                (error, event_id),
            )
            row = conn.execute(
                "SELECT attempts, reverted_turns FROM inbound_events WHERE id = ?", (event_id,)
            ).fetchone()
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def log_send(
        self,
        page_id: str,
        user_id: str,
        request: dict,
        status: str,
        message_id: str | None = None,
        error_code: int | None = None,
        error_message: str | None = None,
    ) -> None:
        self._db.write_statement(
            "INSERT INTO send_log (page_id, user_id, request_json, status, message_id, error_code, error_message,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                page_id,
                user_id,
                json.dumps(request, ensure_ascii=False),
                status,
                message_id,
                error_code,
                error_message,
                utc_now_iso(),
            ),
        )

    def counts_by_status(self) -> dict[str, int]:
        with self._db.connection() as conn:
            rows = conn.execute("SELECT status, COUNT(*) FROM inbound_events GROUP BY status").fetchall()
        return {row[0]: row[1] for row in rows}

    def events_for(self, page_id: str, user_id: str) -> list[tuple[str, str, str]]:
        """(kind, status, event_json) of one conversation, oldest first."""
        with self._db.connection() as conn:
            return conn.execute(
                "SELECT kind, status, event_json FROM inbound_events WHERE page_id = ? AND user_id = ? ORDER BY id",
                (page_id, user_id),
            ).fetchall()

    def send_failures(self) -> list[tuple[str, str, int | None, str | None]]:
        with self._db.connection() as conn:
            return conn.execute(
                "SELECT page_id, user_id, error_code, error_message FROM send_log WHERE status = 'failed' ORDER BY id"
            ).fetchall()

    def page_for_user(self, user_id: str) -> str | None:
        """The page a user last wrote to (PSIDs are page-scoped, so this is unambiguous)."""
        with self._db.connection() as conn:
            row = conn.execute(
                "SELECT page_id FROM inbound_events WHERE user_id = ? ORDER BY id DESC LIMIT 1", (user_id,)
            ).fetchone()
        return row[0] if row else None


def open_ingest_store(url_or_path: Path | str, role: str = ROLE_ALL) -> IngestJournal:
    """The journal at a path or a `sqlite:///` URL (SQLite: `IngestStore`), or at a `postgresql://…` URL
    (`PostgresIngestStore`; its schema is the URL's `search_path`, else `ingest`). `role`: who opens it
    (`ROLE_WEBHOOK`, `ROLE_FEEDER`, `ROLE_ALL`; see `IngestStore`)."""
    location = str(url_or_path)
    if location.startswith(("postgresql://", "postgres://")):
        from connectors.ingest_postgres import PostgresIngestStore  # psycopg2 only when PostgreSQL is used

        return PostgresIngestStore(location, role=role)
    if location.startswith("sqlite:///"):
        location = location[len("sqlite:///") :]
    if not location:
        raise ValueError("the ingest journal needs a path or a URL")
    return IngestStore(location, role=role)
