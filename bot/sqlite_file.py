"""One SQLite file of the app: numbered migrations (`PRAGMA user_version`) and named queries from `bot/sql/<name>/`.

A single connection behind a lock, WAL, `BEGIN IMMEDIATE` for writes. Synchronous and thread-safe: async code
calls it through a thread. The SQL files follow the outbox's layout (`outbox.store.load_migrations`).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from outbox.store import load_migrations, load_queries, sqlite_statements

SQL_DIR = Path(__file__).parent / "sql"


class SchemaTooNew(RuntimeError):
    """The file was migrated by a newer version of the code."""


class SQLiteFile:
    def __init__(self, path: Path, backend: str, sql_dir: Path = SQL_DIR) -> None:
        self.path = path
        self.backend = backend
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=10)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA busy_timeout=10000")
        self.queries = load_queries(backend, sql_dir)
        self._migrate(sql_dir)

    def _migrate(self, sql_dir: Path) -> None:
        migrations = load_migrations(self.backend, sql_dir)
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
