"""One SQLite file of the app: numbered migrations (`PRAGMA user_version`) and named queries from a folder of `.sql`
files (`handoff/sql/`, `console/sql/`; the outbox's stores read theirs with the same loaders).

A single connection behind a lock, WAL, `BEGIN IMMEDIATE` for writes. Synchronous and thread-safe: async code
calls it through a thread.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_MIGRATION_FILE = re.compile(r"^(\d{3})_(\w+)\.sql$")
_QUERY_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


class SQLFileError(RuntimeError):
    """The `.sql` files shipped with the code are malformed (a gap in the migrations, a query named twice)."""


# --- the SQL files ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    script: str


def load_migrations(sql_dir: Path) -> list[Migration]:
    """`<sql_dir>/NNN_name.sql`, numbered 1, 2, 3… without gaps."""
    migrations = []
    for path in sorted(sql_dir.glob("*.sql")):
        match = _MIGRATION_FILE.match(path.name)
        if match:
            migrations.append(Migration(int(match.group(1)), match.group(2), path.read_text(encoding="utf-8")))
    if [migration.version for migration in migrations] != list(range(1, len(migrations) + 1)):
        raise SQLFileError(f"the {sql_dir.name} migrations must be numbered 001, 002, … without gaps")
    return migrations


def load_queries(sql_dir: Path) -> dict[str, str]:
    """`<sql_dir>/queries.sql`: each statement follows a `-- name: <name>` line."""
    text = (sql_dir / "queries.sql").read_text(encoding="utf-8")
    parts = _QUERY_NAME.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise SQLFileError(f"query {name!r} is defined twice in {sql_dir.name}/queries.sql")
        queries[name] = body.strip().rstrip(";")
    return queries


def sqlite_statements(script: str) -> Iterator[str]:
    """Split a SQLite script into statements (sqlite3.complete_statement knows strings and triggers)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    leftover = [line for line in pending.splitlines() if line.strip() and not line.strip().startswith("--")]
    if leftover:
        raise SQLFileError(f"unterminated SQL statement: {leftover[0][:80]!r}")


# --- one SQLite file -------------------------------------------------------------------------


class SchemaTooNew(RuntimeError):
    """The file was migrated by a newer version of the code."""


class SQLiteFile:
    def __init__(self, path: Path, backend: str, sql_dir: Path) -> None:
        self.path = path
        self.backend = backend
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA busy_timeout=10000")
        self.queries = load_queries(sql_dir)
        self._migrate(sql_dir)

    def _migrate(self, sql_dir: Path) -> None:
        migrations = load_migrations(sql_dir)
        with self.write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(migrations):
                raise SchemaTooNew(f"{self.path} has {self.backend} schema {version}, newer than this code knows")
            for migration in migrations[version:]:
                for statement in sqlite_statements(migration.script):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={migration.version}")

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One transaction holding SQLite's write lock from its first statement."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def read(self, name: str, params: Mapping[str, Any]) -> list[sqlite3.Row]:
        with self._lock:
            return self._conn.execute(self.queries[name], params).fetchall()

    def run(self, name: str, params: Mapping[str, Any]) -> int:
        with self.write() as conn:
            return conn.execute(self.queries[name], params).rowcount

    def close(self) -> None:
        with self._lock:
            self._conn.close()
