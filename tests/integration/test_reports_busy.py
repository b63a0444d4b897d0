"""A report whose SQLite store another connection holds locked past the busy timeout is a 503 with Retry-After and
Spanish words, over real HTTP (the app under uvicorn), and the same request answers once the lock is gone.

The store here is the answer journal's report reads over a real SQLite file in rollback-journal mode: what a store
runs in on a file system without WAL's shared memory (`SQLiteFile` then keeps the file's own mode), the case where a
writer's `BEGIN EXCLUSIVE` keeps readers out. On an ordinary disk the app's stores are WAL, where readers are never
kept out by a writer, so the journal is opened here with `sqlite3` and a 50 ms busy timeout rather than through
`AnswersStore` (which switches the file to WAL on open).

Would catch: «database is locked» answered as a 500, a 503 without Retry-After or in English, the failed build kept
in the report cache (the request after the lock still failing), or every OperationalError (a missing table: a bug)
hidden as a 503."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from answers.model import Handling, HandlingDay
from bot.app import create_app
from core.settings import Settings
from reports.model import Period
from reports.service import Reports
from tests.support.console_client import ConsoleSession
from tests.support.servers import serve_asgi

API = "/api/console/reports"
QUERY = {"desde": "2025-03-01", "hasta": "2025-03-03"}


class RollbackJournal:
    """The answer journal's report reads (`reports.service.AnswerCounters`) over a rollback-journal SQLite file."""

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(path, timeout=0.05, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()

    def _rows(self, sql: str) -> list[Any]:
        with self._lock:
            return self._conn.execute(sql).fetchall()

    def handling_hours(self, page_id: str | None, since: datetime, until: datetime) -> Sequence[Any]:
        return []

    def handling_days(self, page_id: str | None, since: datetime, until: datetime,
                      offset_seconds: int) -> Sequence[HandlingDay]:
        return [HandlingDay(date.fromisoformat(day), Handling(handling), n)
                for day, handling, n in self._rows("SELECT day, handling, n FROM handling_days")]

    def counts_by_handling(self, page_id: str | None, since: datetime, until: datetime) -> dict[str, int]:
        return dict(self._rows("SELECT handling, sum(n) FROM handling_days WHERE day < '2025-03-01' GROUP BY 1"))

    def entry_use(self, page_id: str | None, since: datetime, until: datetime) -> dict[str, int]:
        return dict(self._rows("SELECT entry_id, n FROM entry_use"))

    def open_groups_asked(self, page_id: str | None, since: datetime, until: datetime,
                          limit: int) -> Sequence[Any]:
        return []

    def close(self) -> None:
        self._conn.close()


def journal_file(path: Path) -> Path:
    with sqlite3.connect(path, isolation_level=None) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        conn.executescript("""
            CREATE TABLE handling_days (day TEXT, handling TEXT, n INTEGER);
            CREATE TABLE entry_use (entry_id TEXT, n INTEGER);
            INSERT INTO handling_days VALUES ('2025-03-01', 'matrix', 3), ('2025-03-02', 'handoff', 1);
            INSERT INTO entry_use VALUES ('horario', 3);
        """)
    conn.close()
    return path


@pytest.fixture
def app_url(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    settings = Settings(data_dir=tmp_path / "var", comments_poll_seconds=3600.0, handoff_idle_resume_minutes=0,
                        graph_api_base="http://127.0.0.1:9")
    path = journal_file(tmp_path / "journal.db")
    app = create_app(settings)
    with serve_asgi(app) as running:
        journal = RollbackJournal(path)
        app.state.reports = Reports(answers=journal)  # the app's own stores are WAL (see the module's docstring)
        yield running.base_url, path
        journal.close()


def test_a_locked_sqlite_store_is_a_503_with_retry_after_and_the_report_comes_once_it_is_free(
    app_url: tuple[str, Path],
) -> None:
    base_url, path = app_url
    session = ConsoleSession(base_url, "admin")
    locker = sqlite3.connect(path, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        busy = session.get(API, params=QUERY)
        locker.execute("COMMIT")
        free = session.get(API, params=QUERY)
    finally:
        locker.close()
        session.close()

    assert busy.status_code == 503, busy.text
    assert busy.headers["Retry-After"] == "5"
    error = busy.json()["error"]
    assert error["reason_code"] == "reports_unavailable"
    assert "ocupados por otra operación" in error["message"] and "intente de nuevo" in error["message"]
    assert free.status_code == 200, free.text
    body = free.json()
    assert body["headline"]["handled"] == 4
    assert {r["tipo"]: r["preguntas"] for r in body["tables"]["atencion"]["rows"]}["matrix"] == 3


async def test_another_sqlite_error_is_not_taken_for_a_busy_store(tmp_path: Path) -> None:
    sqlite3.connect(tmp_path / "empty.db").close()  # no tables: a bug, not a lock
    journal = RollbackJournal(tmp_path / "empty.db")
    period = Period.parse(QUERY["desde"], QUERY["hasta"], None, today=date(2025, 3, 10),
                          tz=ZoneInfo("America/Guayaquil"))
    try:
        with pytest.raises(sqlite3.OperationalError, match="no such table"):
            await Reports(answers=journal).build(period, "knowledge")
    finally:
        journal.close()
