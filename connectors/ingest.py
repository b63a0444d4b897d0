"""The durable inbox of webhook events (SQLite), written before the webhook answers 200.

Meta redelivers on slow answers and on restarts; the dedup key makes a redelivery a no-op.
Events recorded but not finished are picked up again after a restart.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from connectors.events import InboundEvent

T = TypeVar("T")

# Statuses: pending → done | failed; `recorded` for events kept but not for Rasa (receipts,
# standby, handover, unknown), `ignored` for our own echoes.
PENDING, DONE, FAILED, RECORDED, IGNORED = "pending", "done", "failed", "recorded", "ignored"

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
)


@dataclass(frozen=True)
class StoredEvent:
    id: int
    event: InboundEvent
    status: str
    attempts: int


def utc_now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def initial_status(event: InboundEvent, own_app_id: str) -> str:
    if event.is_own_echo(own_app_id):
        return IGNORED
    # An echo from the Page inbox or another app is a person writing: it pauses the bot, in order with the
    # user's own messages (so the bot cannot answer after the person), and is retried after a crash.
    return PENDING if event.is_user_input or event.is_person_echo(own_app_id) else RECORDED


class IngestStore:
    """A single SQLite connection guarded by a lock; callers run it off the event loop."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-store")
        self._waiting: list[tuple[list[InboundEvent], str, asyncio.Future[list[StoredEvent]]]] = []
        self._flushing = False
        self._migrate()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Call a method of this store off the event loop (commits wait for fsync)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _migrate(self) -> None:
        with self._lock:
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
                self._conn.executescript("BEGIN IMMEDIATE;" + script + f"PRAGMA user_version={number}; COMMIT;")

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        with self._lock:
            self._conn.close()

    def record(self, events: Iterable[InboundEvent], own_app_id: str = "") -> list[StoredEvent]:
        """Insert all events in one transaction; return the new ones (redeliveries are skipped)."""
        return self.record_many([(list(events), own_app_id)])[0]

    def record_many(self, deliveries: list[tuple[list[InboundEvent], str]]) -> list[list[StoredEvent]]:
        """Several webhook deliveries in one transaction (one fsync): the group commit behind
        `record_async`. Returns the new events of each delivery, in order."""
        now = utc_now_iso()
        results: list[list[StoredEvent]] = []
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                for events, own_app_id in deliveries:
                    fresh: list[StoredEvent] = []
                    for event in events:
                        status = initial_status(event, own_app_id)
                        cursor = self._conn.execute(
                            "INSERT OR IGNORE INTO inbound_events"
                            " (dedup_key, page_id, user_id, kind, status, event_json, received_at)"
                            " VALUES (?, ?, ?, ?, ?, ?, ?)",
                            (
                                event.dedup_key,
                                event.page_id,
                                event.user_id,
                                event.kind.value,
                                status,
                                json.dumps(event.to_dict(), ensure_ascii=False),
                                now,
                            ),
                        )
                        if cursor.rowcount:
                            fresh.append(StoredEvent(int(cursor.lastrowid or 0), event, status, 0))
                    results.append(fresh)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return results

    async def record_async(self, events: list[InboundEvent], own_app_id: str = "") -> list[StoredEvent]:
        """`record` off the event loop, with concurrent deliveries committed together: under a burst
        each webhook waits for one shared fsync instead of queueing behind everyone else's."""
        future: asyncio.Future[list[StoredEvent]] = asyncio.get_running_loop().create_future()
        self._waiting.append((events, own_app_id, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    results = await self.run(self.record_many, [(events, app_id) for events, app_id, _ in batch])
                except Exception as exc:  # every waiting webhook answers 500 and Meta redelivers
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, _, future), fresh in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(fresh)
        finally:
            self._flushing = False

    def pending(self) -> list[StoredEvent]:
        """Events recorded but not finished, oldest first (recovery after a restart)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, event_json, status, attempts FROM inbound_events WHERE status = ? ORDER BY id",
                (PENDING,),
            ).fetchall()
        return [StoredEvent(row[0], InboundEvent.from_dict(json.loads(row[1])), row[2], row[3]) for row in rows]

    def finish(self, event_id: int, status: str, error: str | None = None) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE inbound_events SET status = ?, last_error = ?, finished_at = ?, attempts = attempts + 1"
                " WHERE id = ?",
                (status, error, utc_now_iso(), event_id),
            )

    def note_attempt_failed(self, event_id: int, error: str) -> int:
        with self._lock:
            self._conn.execute(
                "UPDATE inbound_events SET attempts = attempts + 1, last_error = ? WHERE id = ?", (error, event_id)
            )
            row = self._conn.execute("SELECT attempts FROM inbound_events WHERE id = ?", (event_id,)).fetchone()
        return int(row[0]) if row else 0

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
        with self._lock:
            self._conn.execute(
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
        with self._lock:
            rows = self._conn.execute("SELECT status, COUNT(*) FROM inbound_events GROUP BY status").fetchall()
        return {row[0]: row[1] for row in rows}

    def events_for(self, page_id: str, user_id: str) -> list[tuple[str, str, str]]:
        """(kind, status, event_json) of one conversation, oldest first."""
        with self._lock:
            return self._conn.execute(
                "SELECT kind, status, event_json FROM inbound_events WHERE page_id = ? AND user_id = ? ORDER BY id",
                (page_id, user_id),
            ).fetchall()

    def send_failures(self) -> list[tuple[str, str, int | None, str | None]]:
        with self._lock:
            return self._conn.execute(
                "SELECT page_id, user_id, error_code, error_message FROM send_log WHERE status = 'failed' ORDER BY id"
            ).fetchall()

    def page_for_user(self, user_id: str) -> str | None:
        """The page a user last wrote to (PSIDs are page-scoped, so this is unambiguous)."""
        with self._lock:
            row = self._conn.execute(
                "SELECT page_id FROM inbound_events WHERE user_id = ? ORDER BY id DESC LIMIT 1", (user_id,)
            ).fetchone()
        return row[0] if row else None
