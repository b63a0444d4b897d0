"""Every SQLite file of the app (`SQLiteFile`): connection settings, WAL, numbered migrations (`PRAGMA user_version`),
the write transaction (`BEGIN IMMEDIATE`) and named queries from a folder of `.sql` files (`handoff/sql/`,
`console/sql/`, `outbox/sql/sqlite/`; the PostgreSQL outbox reads its folder with the same loaders). What differs
between the files (the outbox's, the ingest journal's, the handoff's, the console's) is an option.

A single connection behind a lock. Synchronous and thread-safe: async code calls it off the event loop.
Standard library only, and Python 3.10 (the ingest journal runs inside Rasa).
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

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


_FIRST_PAUSE, _LAST_PAUSE = 0.0002, 0.001  # `short_waits`: between two tries of the write lock
_SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


def _synchronous(value: str) -> str:
    """A `PRAGMA synchronous` level, checked (it is written into the statement)."""
    level = str(value).upper()
    if level and level not in _SYNCHRONOUS:
        raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS)}, not {value!r}")
    return level


def is_busy(exc: sqlite3.OperationalError) -> bool:
    """Another connection holds the lock (SQLITE_BUSY: "database is locked")."""
    return str(exc).startswith("database is locked")


class SchemaTooNew(RuntimeError):
    """The file was migrated by a newer version of the code."""


class WALUnavailable(RuntimeError):
    """SQLite could not switch the file to WAL (a file system without shared memory, a network share)."""


def numbered(scripts: Sequence[str]) -> list[Migration]:
    """Migrations written in the code, numbered 1, 2, 3… in order."""
    return [Migration(version, f"migration_{version}", script) for version, script in enumerate(scripts, start=1)]


class SQLiteFile:
    """One SQLite file: a single connection behind a lock (autocommit; `write()` for transactions), WAL, migrated on
    open. What differs between the app's files is an option:

    - `migrations`: a folder of `NNN_name.sql` files or a list (`numbered(...)`); `queries`: the folder holding
      `queries.sql` (named queries for `read` and `run`), by default the migrations folder when it has one.
    - `synchronous`: `"FULL"` (a commit is on disk when it returns) or None (SQLite's default); one transaction may
      ask for another (`write(synchronous=…)`). `busy_timeout_ms`: how long a write waits for another connection's
      lock; `foreign_keys` (on by default).
    - `short_waits`: `write()` waits for another connection's write lock in short steps (`BEGIN IMMEDIATE` retried
      every 0.2–1 ms, up to `busy_timeout_ms`) instead of SQLite's busy handler, which sleeps 1, 2, 5, 10, 15, 20,
      25, 25, 25, 50, 50, 100 ms between tries: a commit meeting a lock held 3 ms waits 8 ms there, one meeting a
      lock held 40 ms up to 100 ms more. For a file two processes write at once (the ingest journal: the webhook
      process's commits against the Rasa side's). Reads and `connection()` keep the busy handler.
    - `wal_autocheckpoint`: pages of WAL after which a commit of this connection checkpoints (SQLite's default
      1000); 0: never (another connection of the file checkpoints).
    - `require_wal`: refuse a file that cannot switch to WAL (`WALUnavailable`) instead of running in its old mode.
    - `allow_newer`: open a file a newer version of the code migrated further (else `SchemaTooNew`).
    - `row_factory`: `sqlite3.Row` (by name and index) or None (plain tuples).

    `":memory:"` is a private in-memory database (no folder, no WAL). Synchronous and thread-safe: async code calls
    it off the event loop (`core.offload.Offload`).
    """

    def __init__(
        self,
        path: Path | str,
        name: str,
        migrations: Path | Sequence[Migration],
        *,
        queries: Path | None = None,
        synchronous: str | None = None,
        busy_timeout_ms: int = 10_000,
        short_waits: bool = False,
        wal_autocheckpoint: int | None = None,
        foreign_keys: bool = True,
        require_wal: bool = False,
        allow_newer: bool = False,
        row_factory: Any = sqlite3.Row,
    ) -> None:
        self.path = Path(path)
        self.name = name
        in_memory = str(path) == ":memory:"
        if not in_memory:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        if queries is None and isinstance(migrations, Path) and (migrations / "queries.sql").exists():
            queries = migrations
        self.queries = load_queries(queries) if queries is not None else {}
        self._lock = threading.Lock()
        self.busy_timeout_ms = int(busy_timeout_ms)
        self.short_waits = short_waits
        self.synchronous = synchronous
        self._conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        try:
            self._conn.row_factory = row_factory
            self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            journal_mode = self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if require_wal and not in_memory and str(journal_mode).lower() != "wal":
                raise WALUnavailable(f"{path}: SQLite could not switch to WAL (journal_mode={journal_mode})")
            if synchronous is not None:
                self._conn.execute(f"PRAGMA synchronous={_synchronous(synchronous)}")
            if wal_autocheckpoint is not None:
                self._conn.execute(f"PRAGMA wal_autocheckpoint={int(wal_autocheckpoint)}")
            if foreign_keys:
                self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate(load_migrations(migrations) if isinstance(migrations, Path) else list(migrations),
                          allow_newer)
        except BaseException:
            self._conn.close()
            raise

    def _migrate(self, migrations: list[Migration], allow_newer: bool) -> None:
        """Every migration past the file's `user_version`, in order, in one write transaction."""
        with self.write() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > len(migrations) and not allow_newer:
                raise SchemaTooNew(f"{self.path} has {self.name} schema {version}, newer than this code knows")
            for migration in migrations[version:]:
                for statement in sqlite_statements(migration.script):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={migration.version}")

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def write(self, synchronous: str | None = None) -> Iterator[sqlite3.Connection]:
        """One transaction holding SQLite's write lock from its first statement (`BEGIN IMMEDIATE` waits up to the
        busy timeout for it, in short steps with `short_waits`): COMMIT when the block ends, ROLLBACK when it
        raises. `synchronous`: this transaction's commit, when it differs from the connection's (e.g. `"FULL"` on
        a connection that runs `"NORMAL"`)."""
        switch = synchronous is not None and _synchronous(synchronous) != _synchronous(self.synchronous or "")
        with self._lock:
            if switch:
                self._conn.execute(f"PRAGMA synchronous={_synchronous(synchronous or '')}")
            try:
                self._begin()
                try:
                    yield self._conn
                    self._conn.execute("COMMIT")
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise
            finally:
                if switch:
                    self._conn.execute(f"PRAGMA synchronous={_synchronous(self.synchronous or 'FULL')}")

    def write_statement(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> int:
        """One statement as its own transaction (autocommit), for a write that needs no other: its row count.

        SQLite takes the write lock and lets go of it inside one call, which runs without Python's GIL. In `write()`
        the lock is held from BEGIN to COMMIT, across every statement between: a thread that must wait for the GIL
        there (a process whose event loop keeps it busy, as Rasa's does while it predicts) holds every other
        connection's commit behind it, for tens of milliseconds. Waits for another connection's lock as `write()`
        does (in short steps with `short_waits`, else SQLite's busy handler; up to `busy_timeout_ms`): a statement
        that met the lock did nothing and is run again. No RETURNING: SQLite commits such a statement only when
        Python resets it, after taking the GIL back."""
        with self._lock:
            if not self.short_waits:
                return int(self._conn.execute(sql, params).rowcount)
            return int(self._in_short_steps(lambda: self._conn.execute(sql, params)).rowcount)

    def _begin(self) -> None:
        if not self.short_waits:
            self._conn.execute("BEGIN IMMEDIATE")
            return
        self._in_short_steps(lambda: self._conn.execute("BEGIN IMMEDIATE"))

    def _in_short_steps(self, attempt: Callable[[], T]) -> T:
        """`attempt` (a statement that takes the write lock), tried again every 0.2–1 ms while another connection
        holds the lock, up to `busy_timeout_ms` (`short_waits`). The caller holds `self._lock`."""
        deadline = time.monotonic() + self.busy_timeout_ms / 1000
        pause = _FIRST_PAUSE
        self._conn.execute("PRAGMA busy_timeout=0")  # BUSY at once: the retries below are the waiting
        try:
            while True:
                try:
                    return attempt()
                except sqlite3.OperationalError as exc:
                    if not is_busy(exc) or time.monotonic() >= deadline:
                        raise
                time.sleep(pause)
                pause = min(pause * 2, _LAST_PAUSE)
        finally:
            self._conn.execute(f"PRAGMA busy_timeout={self.busy_timeout_ms}")

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """The connection to this thread alone, in autocommit: reads, and writes of one statement each."""
        with self._lock:
            yield self._conn

    def read(self, name: str, params: Mapping[str, Any]) -> list[Any]:
        """The rows of a named query."""
        with self._lock:
            return self._conn.execute(self.queries[name], params).fetchall()

    def run(self, name: str, params: Mapping[str, Any]) -> int:
        """A named query in its own write transaction; how many rows it changed."""
        with self.write() as conn:
            return conn.execute(self.queries[name], params).rowcount

    def close(self) -> None:
        with self._lock:
            self._conn.close()
