"""PostgreSQL for the app's stores (`PostgresDatabase`), the counterpart of `core.sqlite.SQLiteFile`: one schema per
store, numbered migrations applied once under an advisory lock, a transaction context manager, named queries.

- **A URL and a schema.** A store opens `postgresql://…` (or `postgres://…`, any libpq URI). Its schema is the first
  entry of the URL's `search_path` (`?options=-csearch_path%3Dbot_handoff`, what `with_schema` writes and what the
  outbox store already reads), else the store's default (its name). The schema is created when missing, and the
  session's `search_path` is that schema alone, so the store's tables are created and found there whatever the
  user's default path is. Sessions run in UTC and READ COMMITTED.
- **Migrations.** `<sql_dir>/NNN_name.sql` (the loaders of `core.sqlite`), each run once, in order, in one
  transaction holding `pg_advisory_xact_lock` on the schema's name (the app, the Rasa instances and the workers may
  start together). `schema_migrations` (per schema) records (store, version); a schema another store migrated is
  refused (`SchemaInUse`: two stores' tables would mix), and one migrated further than this code knows is refused
  (`core.sqlite.SchemaTooNew`, the same exception as for a SQLite file).
- **Transactions.** `write()` (alias `transaction()`) yields a session whose `execute(sql, params)` returns the
  cursor (rows as dicts, `row["column"]`), so a store written against `SQLiteFile.write()` runs unchanged on both;
  COMMIT when the block ends, ROLLBACK when it raises. A lost connection (a server restart) is dropped, reopened on
  the next call, and raised as `DatabaseUnavailable` ("try again", not a bug).

One psycopg2 connection behind a lock, as `SQLiteFile`: synchronous and thread-safe; async code calls it off the
event loop (`core.offload.Offload`). Python 3.10 too (the ingest journal runs inside Rasa, whose environment has
psycopg2; the app's has psycopg2-binary); psycopg2 is imported when a database is opened.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from core.sqlite import Migration, SchemaTooNew, load_migrations, load_queries

POSTGRES_SCHEMES = ("postgresql", "postgres")
CONNECT_TIMEOUT_SECONDS = 5  # a server that is down answers at once; one that hangs must not block a store forever
BATCH_PAGE_SIZE = 500  # statements per round trip of `_Session.executemany`
SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")  # lower case: no quoting surprises between psql and the URL
_SEARCH_PATH = re.compile(r"(?:^|\s)-c\s*search_path\s*=\s*(\S+)")

__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "DatabaseUnavailable",
    "PostgresDatabase",
    "SchemaInUse",
    "SchemaTooNew",
    "check_schema_name",
    "create_schema_of",
    "is_postgres_url",
    "redacted",
    "schema_in_url",
    "with_schema",
]


class DatabaseUnavailable(RuntimeError):
    """PostgreSQL cannot be reached right now (restarting, failing over, network): worth retrying. The transaction
    was rolled back, unless the connection broke during COMMIT itself (then it may have committed)."""


class SchemaInUse(RuntimeError):
    """The schema holds another store's tables (two stores pointed at one schema)."""


# --- URLs ------------------------------------------------------------------------------------------------------


def is_postgres_url(url: str) -> bool:
    return urlsplit(url).scheme in POSTGRES_SCHEMES


def check_schema_name(schema: str) -> str:
    """A schema name this code writes into SQL: lower-case letters, digits and `_`, at most 63 characters."""
    if not SCHEMA_NAME.match(schema):
        raise ValueError(f"invalid schema name {schema!r}: use lower-case letters, digits and _ (at most 63)")
    return schema


def _options(url: str) -> str:
    return next((value for key, value in parse_qsl(urlsplit(url).query, keep_blank_values=True)
                 if key == "options"), "")


def schema_in_url(url: str) -> str | None:
    """The first schema of the URL's `search_path` (`?options=-csearch_path%3Da,b` → "a"), or None."""
    match = _SEARCH_PATH.search(_options(url))
    if match is None:
        return None
    first = match.group(1).split(",")[0].strip().strip('"')
    return first or None


def with_schema(url: str, schema: str) -> str:
    """The URL with `search_path` set to `schema` in its libpq `options` (other options and parameters kept; a
    search_path already there is replaced)."""
    check_schema_name(schema)
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    options = _SEARCH_PATH.sub("", _options(url)).strip()
    options = f"{options} -csearch_path={schema}".strip()
    query = [(key, value) for key, value in query if key != "options"] + [("options", options)]
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


def redacted(url: str) -> str:
    """The URL without its password (for messages and logs)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = unquote(parts.username or "")
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{quote(user)}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def first_line(error: BaseException) -> str:
    """A driver error's first line (libpq adds context lines; none of them carries the password)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def create_schema_of(url: str, connect_timeout: float = CONNECT_TIMEOUT_SECONDS) -> bool:
    """Create the schema the URL's search_path names if it is missing (True when created), for a store that creates
    its tables in the search_path without creating the schema itself (the outbox's). Nothing to do (False) when
    the URL names no schema; a server that cannot be reached is left for the store to report."""
    import psycopg2

    schema = schema_in_url(url)
    if schema is None:
        return False
    check_schema_name(schema)
    try:
        conn = psycopg2.connect(url, connect_timeout=max(1, int(connect_timeout)))
    except psycopg2.OperationalError:
        return False
    try:
        with conn, conn.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"schema_migrations:{schema}",))
            cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
            if cursor.fetchone() is not None:
                return False
            cursor.execute(f'CREATE SCHEMA "{schema}"')
            return True
    finally:
        conn.close()


# --- one database schema ---------------------------------------------------------------------------------------


class _Session:
    """What `write()` yields: `execute(sql, params)` returns the cursor (as `sqlite3.Connection.execute` does)."""

    def __init__(self, cursor: Any) -> None:
        self.cursor = cursor

    def execute(self, sql: str, params: Mapping[str, Any] | Sequence[Any] | None = None, /) -> Any:
        self.cursor.execute(sql, params)
        return self.cursor

    def executemany(self, sql: str, params: Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]], /) -> Any:
        """The statement once per parameter set, sent in pages of BATCH_PAGE_SIZE statements (one round trip per
        page, not per row; `psycopg2.extras.execute_batch`). `rowcount` is the last page's."""
        from psycopg2.extras import execute_batch

        execute_batch(self.cursor, sql, params, page_size=BATCH_PAGE_SIZE)
        return self.cursor


class PostgresDatabase:
    """One store's schema on PostgreSQL. `name` is the store (it names the schema by default and its rows in
    `schema_migrations`); `migrations` a folder of `NNN_name.sql` files (holding `queries.sql` too, by default) or a
    list (`core.sqlite.numbered`); `schema` overrides the URL's; `allow_newer` opens a schema migrated further."""

    def __init__(
        self,
        url: str,
        name: str,
        migrations: Path | Sequence[Migration],
        *,
        schema: str | None = None,
        queries: Path | None = None,
        allow_newer: bool = False,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    ) -> None:
        import psycopg2  # only a PostgreSQL store needs it
        import psycopg2.extras

        if not is_postgres_url(url):
            raise ValueError(f"not a PostgreSQL URL: {redacted(url)}")
        self._psycopg2 = psycopg2
        self._dict_cursor = psycopg2.extras.RealDictCursor
        self.url = url
        self.name = name
        self.schema = check_schema_name(schema or schema_in_url(url) or name)
        self._connect_timeout = connect_timeout
        if queries is None and isinstance(migrations, Path) and (migrations / "queries.sql").exists():
            queries = migrations
        self.queries = load_queries(queries) if queries is not None else {}
        self._lock = threading.Lock()
        self._conn: Any = None
        try:
            self._migrate(load_migrations(migrations) if isinstance(migrations, Path) else list(migrations),
                          allow_newer)
        except BaseException:
            self.close()
            raise

    # Connection.

    def _connection(self) -> Any:
        if self._conn is not None and not self._conn.closed:
            return self._conn
        self._conn = None
        try:
            conn = self._psycopg2.connect(self.url, connect_timeout=max(1, int(self._connect_timeout)))
        except self._psycopg2.OperationalError as exc:
            raise DatabaseUnavailable(f"PostgreSQL is not reachable ({redacted(self.url)}): {first_line(exc)}") \
                from exc
        try:
            conn.autocommit = True  # the session settings below must outlive any rolled-back transaction
            with conn.cursor() as cursor:
                cursor.execute(f'SET search_path TO "{self.schema}"')
                cursor.execute("SET TIME ZONE 'UTC'")
            conn.set_session(isolation_level="READ COMMITTED", autocommit=False)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    @contextmanager
    def write(self) -> Iterator[_Session]:
        """One transaction: COMMIT when the block ends, ROLLBACK when it raises."""
        with self._lock:
            conn = self._connection()
            try:
                with conn.cursor(cursor_factory=self._dict_cursor) as cursor:
                    yield _Session(cursor)
                conn.commit()
            except (self._psycopg2.OperationalError, self._psycopg2.InterfaceError) as exc:
                self._roll_back(conn)
                raise DatabaseUnavailable(f"PostgreSQL connection lost: {first_line(exc)}") from exc
            except BaseException:
                self._roll_back(conn)
                raise

    transaction = write

    def _roll_back(self, conn: Any) -> None:
        if conn.closed:
            self._conn = None
            return
        try:
            conn.rollback()
        except self._psycopg2.Error:  # the connection is broken: drop it, the next call reconnects
            conn.close()
            self._conn = None

    # Migrations.

    def _migrate(self, migrations: list[Migration], allow_newer: bool) -> None:
        with self.write() as session:
            session.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"schema_migrations:{self.schema}",))
            exists = session.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,)).fetchone()
            if exists is None:  # checked first: CREATE SCHEMA IF NOT EXISTS needs CREATE on the database even then
                session.execute(f'CREATE SCHEMA "{self.schema}"')
            session.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " store text NOT NULL, version integer NOT NULL, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (store, version))"
            )
            others = [row["store"] for row in session.execute(
                "SELECT DISTINCT store FROM schema_migrations WHERE store <> %s ORDER BY store", (self.name,)
            ).fetchall()]
            if others:
                raise SchemaInUse(f"schema {self.schema!r} holds the {', '.join(others)} tables, not the "
                                  f"{self.name}'s: give each store its own schema")
            version = self._version(session)
            if version > len(migrations) and not allow_newer:
                raise SchemaTooNew(f"schema {self.schema!r} has {self.name} schema {version}, newer than this code "
                                   "knows")
            for migration in migrations[version:]:
                session.execute(migration.script)
                session.execute("INSERT INTO schema_migrations (store, version, name) VALUES (%s, %s, %s)",
                                (self.name, migration.version, migration.name))

    def _version(self, session: _Session) -> int:
        row = session.execute("SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations WHERE store = %s",
                              (self.name,)).fetchone()
        return int(row["version"])

    @property
    def schema_version(self) -> int:
        with self.write() as session:
            return self._version(session)

    # Named queries.

    def read(self, name: str, params: Mapping[str, Any]) -> list[Any]:
        """The rows of a named query (dicts)."""
        with self.write() as session:
            return list(session.execute(self.queries[name], params).fetchall())

    def run(self, name: str, params: Mapping[str, Any]) -> int:
        """A named query in its own transaction; how many rows it changed."""
        with self.write() as session:
            return int(session.execute(self.queries[name], params).rowcount)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and not self._conn.closed:
                self._conn.close()
            self._conn = None
