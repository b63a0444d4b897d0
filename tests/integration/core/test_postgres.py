"""core.postgres.PostgresDatabase on this machine's PostgreSQL: a schema per store (created when missing), numbered
migrations applied once (several processes opening together), a newer schema and another store's schema refused,
transactions that commit or roll back, named queries, a reconnect after the server dropped the connection.

Each test has schemas of its own (dropped afterwards); no PostgreSQL → skipped (failed with REQUIRE_SERVICES=1)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import psycopg2
import pytest

from core.postgres import DatabaseUnavailable, PostgresDatabase, SchemaInUse, with_schema
from core.sqlite import SchemaTooNew, numbered
from tests.support.postgres import POSTGRES_URL, fresh_schemas

SCRIPTS = (
    "CREATE TABLE items (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text NOT NULL UNIQUE);",
    "ALTER TABLE items ADD COLUMN note text NOT NULL DEFAULT '';\nCREATE INDEX items_note ON items (note);",
)
QUERIES = """-- name: add_item
INSERT INTO items (name) VALUES (%(name)s) ON CONFLICT (name) DO NOTHING;

-- name: items
SELECT name, note FROM items ORDER BY id;
"""


@pytest.fixture
def prefix() -> Iterator[str]:
    with fresh_schemas("core_pg") as unique:
        yield unique


def sql_folder(tmp_path: Path, scripts: tuple[str, ...] = SCRIPTS) -> Path:
    folder = tmp_path / "sql"
    folder.mkdir(exist_ok=True)
    for number, script in enumerate(scripts, start=1):
        (folder / f"{number:03d}_step.sql").write_text(script + "\n", encoding="utf-8")
    (folder / "queries.sql").write_text(QUERIES, encoding="utf-8")
    return folder


def tables_in(schema: str) -> set[str]:
    with psycopg2.connect(POSTGRES_URL) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))
        rows = {row[0] for row in cursor.fetchall()}
    conn.close()
    return rows


def test_the_schema_of_the_url_is_created_and_migrated_there(prefix: str, tmp_path: Path) -> None:
    schema = f"{prefix}_items"
    db = PostgresDatabase(with_schema(POSTGRES_URL, schema), "items", sql_folder(tmp_path))
    try:
        assert db.schema == schema and db.schema_version == 2
        assert tables_in(schema) == {"items", "schema_migrations"}
        assert tables_in("public").isdisjoint({"items"})  # nothing leaked into the default schema
        assert db.run("add_item", {"name": "a"}) == 1
        assert db.run("add_item", {"name": "a"}) == 0
        assert [dict(row) for row in db.read("items", {})] == [{"name": "a", "note": ""}]
    finally:
        db.close()


def test_without_a_search_path_the_store_uses_its_schema_argument_or_its_name(prefix: str, tmp_path: Path) -> None:
    db = PostgresDatabase(POSTGRES_URL, "items", sql_folder(tmp_path), schema=f"{prefix}_named")
    db.close()
    assert "items" in tables_in(f"{prefix}_named")


def test_migrations_run_once_and_new_ones_are_applied_on_the_next_open(prefix: str, tmp_path: Path) -> None:
    url = with_schema(POSTGRES_URL, f"{prefix}_grow")
    PostgresDatabase(url, "items", numbered(SCRIPTS[:1])).close()
    db = PostgresDatabase(url, "items", numbered(SCRIPTS))
    assert db.schema_version == 2
    with db.write() as session:
        rows = session.execute("SELECT store, version, name FROM schema_migrations ORDER BY version").fetchall()
    assert [(row["store"], row["version"]) for row in rows] == [("items", 1), ("items", 2)]
    db.close()
    PostgresDatabase(url, "items", numbered(SCRIPTS)).close()  # nothing left to apply: no error, no second row
    with psycopg2.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM schema_migrations")
        assert cursor.fetchone()[0] == 2
    conn.close()


def test_processes_opening_together_migrate_once(prefix: str, tmp_path: Path) -> None:
    url = with_schema(POSTGRES_URL, f"{prefix}_race")
    folder = sql_folder(tmp_path)
    errors: list[BaseException] = []
    opened: list[PostgresDatabase] = []
    start = threading.Barrier(6)

    def open_one() -> None:
        start.wait()
        try:
            opened.append(PostgresDatabase(url, "items", folder))
        except BaseException as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(opened) == 6
    assert {db.schema_version for db in opened} == {2}
    for db in opened:
        db.close()


def test_a_schema_newer_than_the_code_is_refused_unless_allowed(prefix: str) -> None:
    url = with_schema(POSTGRES_URL, f"{prefix}_new")
    PostgresDatabase(url, "items", numbered(SCRIPTS)).close()
    with pytest.raises(SchemaTooNew, match="newer than this code"):
        PostgresDatabase(url, "items", numbered(SCRIPTS[:1]))
    old = PostgresDatabase(url, "items", numbered(SCRIPTS[:1]), allow_newer=True)
    assert old.schema_version == 2
    old.close()


def test_a_schema_migrated_by_another_store_is_refused(prefix: str) -> None:
    url = with_schema(POSTGRES_URL, f"{prefix}_shared")
    PostgresDatabase(url, "handoff", numbered(SCRIPTS)).close()
    with pytest.raises(SchemaInUse, match="handoff"):
        PostgresDatabase(url, "console", numbered(SCRIPTS))


def test_a_transaction_commits_at_the_end_and_rolls_back_on_error(prefix: str) -> None:
    db = PostgresDatabase(with_schema(POSTGRES_URL, f"{prefix}_tx"), "items", numbered(SCRIPTS))
    try:
        with db.transaction() as session:
            session.execute("INSERT INTO items (name) VALUES (%(name)s)", {"name": "kept"})
        with pytest.raises(RuntimeError, match="boom"), db.transaction() as session:
            session.execute("INSERT INTO items (name) VALUES (%(name)s)", {"name": "dropped"})
            raise RuntimeError("boom")
        with pytest.raises(psycopg2.errors.UniqueViolation), db.transaction() as session:
            session.execute("INSERT INTO items (name) VALUES ('kept')")
        with db.write() as session:  # the connection is usable after both rollbacks
            names = [row["name"] for row in session.execute("SELECT name FROM items ORDER BY id").fetchall()]
        assert names == ["kept"]
    finally:
        db.close()


def test_times_come_back_in_utc(prefix: str) -> None:
    db = PostgresDatabase(with_schema(POSTGRES_URL, f"{prefix}_tz"), "items", numbered(SCRIPTS))
    try:
        with db.write() as session:
            moment = session.execute("SELECT '2026-03-02T10:00:00-05:00'::timestamptz AS at").fetchone()["at"]
        assert moment.utcoffset().total_seconds() == 0 and moment.hour == 15
    finally:
        db.close()


def test_a_dropped_connection_is_unavailable_once_then_reopened(prefix: str) -> None:
    db = PostgresDatabase(with_schema(POSTGRES_URL, f"{prefix}_drop"), "items", numbered(SCRIPTS))
    try:
        with db.write() as session:
            pid = session.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
        with psycopg2.connect(POSTGRES_URL) as admin, admin.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", (pid,))
        admin.close()
        with pytest.raises(DatabaseUnavailable), db.write() as session:
            session.execute("SELECT 1")
        with db.write() as session:  # a new connection, with the store's search_path again
            session.execute("INSERT INTO items (name) VALUES ('after')")
            assert session.execute("SELECT current_schema() AS s").fetchone()["s"] == db.schema
    finally:
        db.close()


def test_an_unreachable_server_is_unavailable_and_names_no_password() -> None:
    url = "postgresql://bot:s3cret@127.0.0.1:1/none?options=-csearch_path%3Dx"
    with pytest.raises(DatabaseUnavailable) as caught:
        PostgresDatabase(url, "items", numbered(SCRIPTS), connect_timeout=1)
    assert "s3cret" not in str(caught.value)


def test_create_schema_of_creates_the_urls_schema_once(prefix: str) -> None:
    from core.postgres import create_schema_of
    from outbox.store import open_store

    url = with_schema(POSTGRES_URL, f"{prefix}_outbox")
    assert create_schema_of(url) is True
    assert create_schema_of(url) is False
    assert create_schema_of(POSTGRES_URL) is False  # no search_path: nothing to create
    store = open_store(with_schema(POSTGRES_URL, f"{prefix}_outbox2"))  # the outbox's store opens a missing schema
    try:
        assert "messages" in tables_in(f"{prefix}_outbox2")
    finally:
        store.close()
