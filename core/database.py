"""A store's database by URL: its SQLite file (`core.sqlite.SQLiteFile`) or its PostgreSQL schema
(`core.postgres.PostgresDatabase`), behind one small interface (`Database`) so a store's code runs on both.

A store keeps its SQL per dialect: `<sql_dir>/sqlite/` and `<sql_dir>/postgres/`, each with numbered migrations and
`queries.sql` (the same query names; parameters `:name` for SQLite, `%(name)s` for psycopg2). Times are written as
ISO 8601 UTC text on both (SQLite stores the text, PostgreSQL casts it to `timestamptz`) and read back with
`moment()`, which takes either.

Standard library only until a PostgreSQL URL is opened (psycopg2 then); Python 3.10 too.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar, Protocol

from core.postgres import PostgresDatabase, is_postgres_url
from core.sqlite import SQLiteFile

SQLITE_PREFIX = "sqlite:///"


class Session(Protocol):
    """One transaction: `execute(sql, params)` returns a cursor (`fetchone`, `fetchall`, `rowcount`)."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...


class Database(Protocol):
    """What a store needs of its database: named queries, a write transaction, the schema's version."""

    name: str
    queries: dict[str, str]

    def write(self) -> AbstractContextManager[Any]: ...
    def read(self, name: str, params: Mapping[str, Any]) -> list[Any]: ...
    def run(self, name: str, params: Mapping[str, Any]) -> int: ...
    @property
    def schema_version(self) -> int: ...
    def close(self) -> None: ...


def sqlite_path(target: Path | str) -> Path | str:
    """`sqlite:///relative`, `sqlite:////absolute`, a plain path or `:memory:` → what `SQLiteFile` opens."""
    if isinstance(target, str) and target.startswith(SQLITE_PREFIX):
        target = target[len(SQLITE_PREFIX):]
        if not target:
            raise ValueError("sqlite:/// needs a path")
    if isinstance(target, str) and "://" in target:
        raise ValueError(f"unsupported store URL scheme {target.split('://', 1)[0]!r}")
    return target if str(target) == ":memory:" else Path(target)


def open_database(target: Path | str, name: str, sql_dir: Path) -> Database:
    """The store `name`'s database: PostgreSQL for `postgresql://…` (its schema: the URL's search_path, else
    `name`), else the SQLite file at a path / `sqlite:///` URL (`:memory:` for tests). Migrated on open."""
    if isinstance(target, str) and is_postgres_url(target):
        return PostgresDatabase(target, name, sql_dir / "postgres")
    return SQLiteFile(sqlite_path(target), name, sql_dir / "sqlite")


class DatabaseStore:
    """The common part of a store over its `Database`: opened by URL (`open_database`), closed, asked its schema's
    version. A store names itself (`BACKEND`: also its PostgreSQL schema when the URL gives none) and its SQL folder
    (`SQL_DIR`, with `sqlite/` and `postgres/`)."""

    BACKEND: ClassVar[str]
    SQL_DIR: ClassVar[Path]

    def __init__(self, target: Path | str) -> None:
        self.path = target
        self._db: Database = open_database(target, self.BACKEND, self.SQL_DIR)

    @property
    def schema_version(self) -> int:
        return self._db.schema_version

    def close(self) -> None:
        self._db.close()


def stored_time(value: datetime) -> str:
    """A timezone-aware time as ISO 8601 UTC text of one fixed width (text order is time order in SQLite)."""
    if value.tzinfo is None:
        raise ValueError("naive datetime: the stores keep timezone-aware UTC times")
    return value.astimezone(timezone.utc).isoformat(timespec="microseconds")


def moment(value: str | datetime) -> datetime:
    """A stored time back: SQLite's text or PostgreSQL's `timestamptz`, as an aware UTC datetime."""
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed.astimezone(timezone.utc)
