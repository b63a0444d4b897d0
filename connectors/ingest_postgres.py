"""The ingest journal on PostgreSQL (`PostgresIngestStore`), for the scale profile: the webhook process and every
Rasa instance share it. The same contract as the SQLite journal (`connectors.ingest.IngestJournal`; one contract
suite, tests/integration/ingest/), its SQL in `connectors/sql/ingest/postgres/` (numbered migrations, named
queries), opened through `core.postgres.PostgresDatabase` (its schema: the URL's `search_path`, else `ingest`).

- **Order.** A group commit is one statement whose ids follow the order of arrival; writers take one advisory lock
  per transaction (`serialize_writers`), so ids are taken in commit order as on SQLite: a claimer never sees a
  user's later message while an earlier one is still being committed.
- **Dedup.** `ON CONFLICT (dedup_key) DO NOTHING` (two webhook processes recording one redelivery at once: the
  second waits for the first and inserts nothing) and the pruned keys in `inbound_seen`.
- **Claims.** Candidates (`claimable_conversations`), then one upsert that takes a conversation only if it is
  unclaimed, the owner's own or run out, re-checked on the row it meets (`take_claims`), then, in a new statement
  whose snapshot follows those claims, the claimed conversations' pending events (`pending_of_conversations`).

Python 3.10 and 3.11 (the Rasa instances run it); psycopg2 is imported when a journal is opened.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from connectors.ingest_journal import (
    DEFAULT_DEDUP_HORIZON,
    DEFAULT_RETENTION,
    JOURNAL_BATCH,
    ROLE_ALL,
    STALE_CLAIM,
    IngestJournal,
    PruneResult,
    StoredEvent,
    check_role,
    distinct,
    new_row,
)
from core.postgres import PostgresDatabase
from meta.events import InboundEvent

SQL_DIR = Path(__file__).parent / "sql" / "ingest" / "postgres"
PRUNE_CHUNK = 5000


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def event_rows(rows: list[Any]) -> list[tuple[int, str, str, int, bool, bool]]:
    return [
        (row["id"], row["event_json"], row["status"], row["attempts"], row["window_pending"], row["notice_pending"])
        for row in rows
    ]


class PostgresIngestStore(IngestJournal):
    """One PostgreSQL schema (`core.postgres.PostgresDatabase`: one connection behind a lock, READ COMMITTED, a lost
    connection raised as `DatabaseUnavailable` and reopened on the next call); callers run it off the event loop
    (`run`). A commit is durable when it returns (the server's `synchronous_commit`)."""

    def __init__(self, url: str, role: str = ROLE_ALL) -> None:
        self.url = url
        # Every commit is durable here, whoever writes it: no file lock for the webhook's commits to meet.
        self.role = check_role(role)
        self._db = PostgresDatabase(url, "ingest", SQL_DIR)
        self._q = self._db.queries
        super().__init__("ingest-store")

    def _close_database(self) -> None:
        self._db.close()

    def _rows(self, name: str, **params: Any) -> list[Any]:
        return self._db.read(name, params)

    def _write(self, name: str, **params: Any) -> int:
        return self._db.run(name, params)

    def record_many(self, deliveries: list[tuple[list[InboundEvent], str]]) -> list[list[StoredEvent]]:
        batch = [(index, new_row(event, own_app_id)) for index, (events, own_app_id) in enumerate(deliveries)
                 for event in events]
        if not batch:
            return [[] for _ in deliveries]
        with self._db.write() as session:
            session.execute(self._q["serialize_writers"])
            inserted = session.execute(
                self._q["insert_events"],
                {
                    "received_at": utc_now(),
                    "dedup_keys": [row.event.dedup_key for _, row in batch],
                    "page_ids": [row.event.page_id for _, row in batch],
                    "user_ids": [row.event.user_id for _, row in batch],
                    "kinds": [row.event.kind.value for _, row in batch],
                    "statuses": [row.status for _, row in batch],
                    "event_jsons": [row.event_json for _, row in batch],
                    "window_pendings": [row.window_pending for _, row in batch],
                    "notice_pendings": [row.notice_pending for _, row in batch],
                },
            ).fetchall()
        ids = {row["dedup_key"]: int(row["id"]) for row in inserted}
        results: list[list[StoredEvent]] = [[] for _ in deliveries]
        for index, row in batch:  # a key repeated in the batch is new once: at its first occurrence
            event_id = ids.pop(row.event.dedup_key, None)
            if event_id is not None:
                results[index].append(
                    StoredEvent(event_id, row.event, row.status, 0, row.window_pending, row.notice_pending)
                )
        return results

    def _mark_unparseable(self, event_id: int, error: str) -> None:
        self._write("mark_unparseable", id=event_id, error=error, now=utc_now())

    def pending(self) -> list[StoredEvent]:
        return self._rebuild(event_rows(self._rows("pending")))

    def pending_ids(self) -> list[int]:
        """The ids of the pending events, oldest first (a read: the feeder claims only when one is new to it)."""
        return [int(row["id"]) for row in self._rows("pending_ids")]

    def windows_pending(self) -> list[StoredEvent]:
        return self._rebuild(event_rows(self._rows("windows_pending")))

    def journaled(self, after: int = 0, limit: int = JOURNAL_BATCH) -> list[StoredEvent]:
        if limit <= 0:
            return []
        return self._rebuild(event_rows(self._rows("journaled", after=after, limit=limit)))

    def window_applied(self, event_id: int) -> None:
        self._write("window_applied", id=event_id)

    def journal_state(self, event_id: int) -> tuple[bool, bool]:
        rows = self._rows("journal_state", id=event_id)
        return (bool(rows[0]["window_pending"]), bool(rows[0]["notice_pending"])) if rows else (False, False)

    def notice_applied(self, event_id: int) -> None:
        self._write("notice_applied", id=event_id)

    def take_journaled(self, event_id: int) -> tuple[bool, bool]:
        rows = self._rows("take_journaled", id=event_id)  # the row locked: a second taker reads it cleared
        return (bool(rows[0]["window_pending"]), bool(rows[0]["notice_pending"])) if rows else (False, False)

    def restore_journaled(self, event_id: int, window: bool, notice: bool) -> None:
        if window or notice:
            self._write("restore_journaled", id=event_id, window=window, notice=notice)

    def defer_window(self, event_id: int, error: str, max_deferrals: int = 1) -> bool:
        return bool(self._write("defer_window", id=event_id, error=error[:500], max_deferrals=max_deferrals))

    # Claims.

    def claim_pending(self, owner: str, now: datetime, lease: timedelta, limit: int = 200) -> list[StoredEvent]:
        if limit <= 0:
            return []
        with self._db.write() as session:
            keys = distinct(
                row["conversation_key"]
                for row in session.execute(
                    self._q["claimable_conversations"], {"owner": owner, "now": now, "limit": limit}
                ).fetchall()
            )
            if not keys:
                return []
            held = [
                row["conversation_key"]
                for row in session.execute(
                    self._q["take_claims"], {"owner": owner, "until": now + lease, "now": now, "keys": keys}
                ).fetchall()
            ]
            if not held:
                return []
            rows = session.execute(
                self._q["pending_of_conversations"], {"keys": held, "limit": limit}
            ).fetchall()
        return self._rebuild(event_rows(rows))

    def renew_claims(self, owner: str, conversation_keys: list[str], now: datetime, lease: timedelta) -> list[str]:
        keys = distinct(conversation_keys)
        if not keys:
            return []
        with self._db.write() as session:
            renewed = {
                row["conversation_key"]
                for row in session.execute(
                    self._q["renew_claims"], {"owner": owner, "until": now + lease, "keys": keys}
                ).fetchall()
            }
        return [key for key in keys if key in renewed]

    def release_claim(self, owner: str, conversation_key: str) -> None:
        self._write("release_claim", owner=owner, key=conversation_key)

    def claims(self) -> dict[str, tuple[str, datetime]]:
        return {row["conversation_key"]: (row["owner"], row["lease_until"]) for row in self._rows("claims")}

    # Retention.

    def prune(
        self,
        now: datetime,
        retention: timedelta = DEFAULT_RETENTION,
        dedup_horizon: timedelta = DEFAULT_DEDUP_HORIZON,
    ) -> PruneResult:
        cutoff, horizon = now - retention, now - dedup_horizon
        deleted = kept = 0
        while True:
            with self._db.write() as session:
                ids = [
                    row["id"]
                    for row in session.execute(
                        self._q["prunable_events"], {"cutoff": cutoff, "chunk": PRUNE_CHUNK}
                    ).fetchall()
                ]
                if ids:
                    kept += session.execute(self._q["keep_seen_keys"], {"ids": ids, "horizon": horizon}).rowcount
                    deleted += session.execute(self._q["delete_events"], {"ids": ids}).rowcount
            if len(ids) < PRUNE_CHUNK:
                break
        with self._db.write() as session:
            expired = session.execute(self._q["expire_seen_keys"], {"horizon": horizon}).rowcount
            sends = session.execute(self._q["delete_old_sends"], {"cutoff": cutoff}).rowcount
            claims = session.execute(self._q["delete_stale_claims"], {"before": now - STALE_CLAIM}).rowcount
        return PruneResult(deleted, kept, expired, sends, claims)

    # Attempts and verdicts.

    def finish(self, event_id: int, status: str, error: str | None = None, *, counted: bool = False) -> None:
        self._write("finish", id=event_id, status=status, error=error, now=utc_now(), counted=0 if counted else 1)

    def note_attempt_failed(self, event_id: int, error: str) -> int:
        rows = self._rows("note_attempt_failed", id=event_id, error=error)
        return int(rows[0]["attempts"]) if rows else 0

    def reverted_turns(self, event_id: int) -> int:
        rows = self._rows("reverted_turns", id=event_id)
        return int(rows[0]["reverted_turns"]) if rows else 0

    def note_turn_reverted(self, event_id: int, error: str) -> tuple[int, int]:
        rows = self._rows("note_turn_reverted", id=event_id, error=error)
        return (int(rows[0]["attempts"]), int(rows[0]["reverted_turns"])) if rows else (0, 0)

    # The send log and lookups.

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
        self._write(
            "log_send",
            page_id=page_id,
            user_id=user_id,
            request_json=json.dumps(request, ensure_ascii=False),
            status=status,
            message_id=message_id,
            error_code=error_code,
            error_message=error_message,
            now=utc_now(),
        )

    def counts_by_status(self) -> dict[str, int]:
        return {row["status"]: int(row["n"]) for row in self._rows("counts_by_status")}

    def events_for(self, page_id: str, user_id: str) -> list[tuple[str, str, str]]:
        return [
            (row["kind"], row["status"], row["event_json"])
            for row in self._rows("events_for", page_id=page_id, user_id=user_id)
        ]

    def send_failures(self) -> list[tuple[str, str, int | None, str | None]]:
        return [
            (row["page_id"], row["user_id"], row["error_code"], row["error_message"])
            for row in self._rows("send_failures")
        ]

    def page_for_user(self, user_id: str) -> str | None:
        rows = self._rows("page_for_user", user_id=user_id)
        return str(rows[0]["page_id"]) if rows else None
