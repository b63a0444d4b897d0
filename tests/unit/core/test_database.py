"""core.database: a store's target picks its database (SQLite here; PostgreSQL in tests/integration), and times
go in as fixed-width UTC text and come back aware UTC from either database's representation."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from core.database import moment, open_database, sqlite_path, stored_time
from core.sqlite import SQLiteFile

SQL_DIR = Path(__file__).resolve().parents[3] / "handoff" / "sql"


@pytest.mark.parametrize(("target", "expected"), [
    ("sqlite:///var/handoff.sqlite3", Path("var/handoff.sqlite3")),
    ("sqlite:////srv/bot/handoff.sqlite3", Path("/srv/bot/handoff.sqlite3")),
    ("/srv/bot/handoff.sqlite3", Path("/srv/bot/handoff.sqlite3")),
    (Path("x.sqlite3"), Path("x.sqlite3")),
    (":memory:", ":memory:"),
])
def test_sqlite_targets(target: Path | str, expected: Path | str) -> None:
    assert sqlite_path(target) == expected


@pytest.mark.parametrize("target", ["sqlite:///", "mysql://db/x", "memory://"])
def test_targets_no_store_opens(target: str) -> None:
    with pytest.raises(ValueError):
        sqlite_path(target)


def test_a_sqlite_url_opens_the_dialects_sqlite_folder(tmp_path: Path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'h.sqlite3'}", "handoff", SQL_DIR)
    try:
        migrations = sorted((SQL_DIR / "sqlite").glob("[0-9]*.sql"))  # every numbered migration of the folder
        assert isinstance(db, SQLiteFile) and db.schema_version == len(migrations) == int(migrations[-1].name[:3])
        assert "lock_conversation" in db.queries
    finally:
        db.close()
    assert (tmp_path / "h.sqlite3").exists()


def test_times_round_trip_from_text_and_from_a_driver_datetime() -> None:
    at = datetime(2026, 3, 2, 10, 0, 0, 123, tzinfo=timezone(timedelta(hours=-5)))
    text = stored_time(at)
    assert text == "2026-03-02T15:00:00.000123+00:00"
    assert moment(text) == at and moment(text).utcoffset() == timedelta(0)
    assert moment(at) == at and moment(at).utcoffset() == timedelta(0)
    with pytest.raises(ValueError, match="naive"):
        stored_time(datetime(2026, 3, 2, 10, 0))
