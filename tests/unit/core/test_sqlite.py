"""core.sqlite.SQLiteFile: the one helper behind every SQLite file (outbox, ingest journal, handoff, console).

Real SQLite files in tmp_path; the options each store uses are checked as the file reports them (PRAGMAs)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from core.sqlite import (
    Migration,
    SchemaTooNew,
    SQLFileError,
    SQLiteFile,
    load_migrations,
    load_queries,
    numbered,
    sqlite_statements,
)

SCRIPTS = (
    "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);",
    "ALTER TABLE items ADD COLUMN note TEXT NOT NULL DEFAULT '';\nCREATE INDEX items_note ON items (note);",
)


def sql_folder(tmp_path: Path, files: dict[str, str]) -> Path:
    folder = tmp_path / "sql"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


FOLDER_FILES = {
    "001_items.sql": "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);\n",
    "002_parts.sql": (
        "-- a part belongs to an item\n"
        "CREATE TABLE parts (id INTEGER PRIMARY KEY, item_id INTEGER NOT NULL REFERENCES items (id));\n"
        "CREATE TRIGGER parts_named AFTER INSERT ON parts BEGIN\n"
        "  UPDATE items SET name = name || ';' WHERE id = NEW.item_id;\n"
        "END;\n"
    ),
    "queries.sql": (
        "-- name: add_item\nINSERT INTO items (name) VALUES (:name);\n\n"
        "-- name: item_names\nSELECT name FROM items ORDER BY id;\n\n"
        "-- name: add_part\nINSERT INTO parts (item_id) VALUES (:item_id);\n"
    ),
}


def pragma(path: Path, name: str) -> object:
    """What a fresh connection reads from the file (journal mode and user_version live in the file)."""
    with sqlite3.connect(path) as conn:
        return conn.execute(f"PRAGMA {name}").fetchone()[0]


def test_options_become_the_connection_pragmas(tmp_path: Path) -> None:
    db = SQLiteFile(tmp_path / "a" / "full.sqlite3", "test", numbered(SCRIPTS), synchronous="FULL",
                    busy_timeout_ms=4321, foreign_keys=True)
    with db.connection() as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 4321
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    db.close()
    assert pragma(tmp_path / "a" / "full.sqlite3", "journal_mode") == "wal"  # the folder was made, WAL stays

    plain = SQLiteFile(tmp_path / "plain.sqlite3", "test", numbered(SCRIPTS), synchronous="NORMAL", foreign_keys=False)
    with plain.connection() as conn:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 0
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
    plain.close()


def test_rows_by_name_or_plain_tuples(tmp_path: Path) -> None:
    named = SQLiteFile(tmp_path / "named.sqlite3", "test", numbered(SCRIPTS))
    with named.write() as conn:
        conn.execute("INSERT INTO items (name) VALUES ('a')")
    with named.connection() as conn:
        row = conn.execute("SELECT id, name FROM items").fetchone()
    assert (row["name"], row[0]) == ("a", 1)
    named.close()
    plain = SQLiteFile(tmp_path / "named.sqlite3", "test", numbered(SCRIPTS), row_factory=None)
    with plain.connection() as conn:
        assert conn.execute("SELECT id, name FROM items").fetchall() == [(1, "a")]
    plain.close()


def test_migrations_run_in_order_once_and_only_the_new_ones(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    first = SQLiteFile(path, "test", numbered(SCRIPTS[:1]))
    assert first.schema_version == 1
    with first.write() as conn:
        conn.execute("INSERT INTO items (name) VALUES ('kept')")
    first.close()

    again = SQLiteFile(path, "test", numbered(SCRIPTS))  # migration 1 would fail if run twice (table exists)
    assert again.schema_version == 2
    with again.connection() as conn:
        assert [tuple(row) for row in conn.execute("SELECT name, note FROM items")] == [("kept", "")]
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'items_note'").fetchone() is not None
    again.close()
    SQLiteFile(path, "test", numbered(SCRIPTS)).close()  # nothing left to run
    assert pragma(path, "user_version") == 2


def test_a_failed_migration_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "broken.sqlite3"
    SQLiteFile(path, "test", numbered(SCRIPTS[:1])).close()
    with pytest.raises(sqlite3.OperationalError):
        SQLiteFile(path, "test", numbered((*SCRIPTS, "CREATE TABLE extra (x);\nSELECT * FROM missing;")))
    assert pragma(path, "user_version") == 1  # 2 and 3 rolled back together
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name IN ('extra', 'items_note')").fetchall() == []


def test_a_newer_schema_is_refused_unless_allowed(tmp_path: Path) -> None:
    path = tmp_path / "newer.sqlite3"
    SQLiteFile(path, "test", numbered(SCRIPTS)).close()
    with pytest.raises(SchemaTooNew, match="has test schema 2, newer"):
        SQLiteFile(path, "test", numbered(SCRIPTS[:1]))
    older = SQLiteFile(path, "test", numbered(SCRIPTS[:1]), allow_newer=True)
    assert older.schema_version == 2
    older.close()


def test_migrations_and_named_queries_from_a_folder(tmp_path: Path) -> None:
    folder = sql_folder(tmp_path, FOLDER_FILES)
    db = SQLiteFile(tmp_path / "f.sqlite3", "test", folder)  # queries.sql from the same folder; foreign keys on
    assert db.schema_version == 2
    assert db.run("add_item", {"name": "wheel"}) == 1
    db.run("add_part", {"item_id": 1})  # the trigger from a multi-statement migration file ran
    assert [row["name"] for row in db.read("item_names", {})] == ["wheel;"]
    with pytest.raises(sqlite3.IntegrityError):  # foreign keys are on
        db.run("add_part", {"item_id": 99})
    db.close()


def test_write_commits_or_rolls_back_everything(tmp_path: Path) -> None:
    db = SQLiteFile(tmp_path / "w.sqlite3", "test", numbered(SCRIPTS))
    with db.write() as conn:
        conn.execute("INSERT INTO items (name) VALUES ('one')")
    with pytest.raises(RuntimeError, match="midway"), db.write() as conn:
        conn.execute("INSERT INTO items (name) VALUES ('two')")
        raise RuntimeError("midway")
    with pytest.raises(sqlite3.IntegrityError), db.write() as conn:
        conn.execute("INSERT INTO items (name) VALUES ('three')")
        conn.execute("INSERT INTO items (name) VALUES ('one')")  # UNIQUE
    with db.connection() as conn:
        assert not conn.in_transaction
        assert [row[0] for row in conn.execute("SELECT name FROM items")] == ["one"]
    db.close()


def test_write_takes_the_file_lock_at_begin(tmp_path: Path) -> None:
    """BEGIN IMMEDIATE: a second connection cannot write until the transaction ends (it waits its busy timeout)."""
    path = tmp_path / "lock.sqlite3"
    db = SQLiteFile(path, "test", numbered(SCRIPTS))
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    with db.write(), pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("BEGIN IMMEDIATE")
    other.execute("BEGIN IMMEDIATE")
    other.execute("COMMIT")
    other.close()
    db.close()


def test_short_waits_take_the_lock_once_the_other_connection_lets_go(tmp_path: Path) -> None:
    """`short_waits`: BEGIN IMMEDIATE retried in short steps while another connection holds the lock; the busy
    timeout is the connection's again afterwards (reads keep SQLite's busy handler)."""
    path = tmp_path / "spin.sqlite3"
    db = SQLiteFile(path, "test", numbered(SCRIPTS), busy_timeout_ms=10_000, short_waits=True)
    other = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO items (name) VALUES ('theirs')")
    tried = threading.Event()
    original_sleep = time.sleep

    def sleep(seconds: float) -> None:  # the first short pause: the writer met the lock; let it go
        assert seconds <= 0.001
        if not tried.is_set():
            tried.set()
            other.execute("COMMIT")
        original_sleep(seconds)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("core.sqlite.time.sleep", sleep)
        with db.write() as conn:
            conn.execute("INSERT INTO items (name) VALUES ('ours')")
    assert tried.is_set()
    with db.connection() as conn:
        assert [row[0] for row in conn.execute("SELECT name FROM items ORDER BY id")] == ["theirs", "ours"]
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
    other.close()
    db.close()


def insert_in_a_transaction(db: SQLiteFile) -> None:
    with db.write() as conn:
        conn.execute("INSERT INTO items (name) VALUES ('never')")


def insert_as_one_statement(db: SQLiteFile) -> None:
    db.write_statement("INSERT INTO items (name) VALUES ('never')")


@pytest.mark.parametrize("insert", [insert_in_a_transaction, insert_as_one_statement])
def test_short_waits_give_up_after_the_busy_timeout(tmp_path: Path, insert: Callable[[SQLiteFile], None]) -> None:
    """`write()` and `write_statement` alike: the lock never came, the write is refused and nothing is left open."""
    path = tmp_path / "spin.sqlite3"
    db = SQLiteFile(path, "test", numbered(SCRIPTS), busy_timeout_ms=20, short_waits=True)
    other = sqlite3.connect(path, timeout=0, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        insert(db)
    other.execute("COMMIT")
    with db.connection() as conn:
        assert conn.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 0
        assert not conn.in_transaction
    other.close()
    db.close()


@pytest.mark.parametrize("short_waits", [True, False])
def test_write_statement_is_its_own_transaction_and_waits_for_the_lock(tmp_path: Path, short_waits: bool) -> None:
    """One statement, no BEGIN (the lock lives inside one SQLite call); it meets another connection's lock, waits
    (in short steps with `short_waits`, else SQLite's busy handler) and runs once the lock is let go."""
    path = tmp_path / "one.sqlite3"
    db = SQLiteFile(path, "test", numbered(SCRIPTS), busy_timeout_ms=10_000, short_waits=short_waits)
    statements: list[str] = []
    db._conn.set_trace_callback(statements.append)
    other = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    other.execute("INSERT INTO items (name) VALUES ('theirs')")
    releaser = threading.Timer(0.05, lambda: other.execute("COMMIT"))
    releaser.start()
    assert db.write_statement("INSERT INTO items (name) VALUES (?)", ("ours",)) == 1
    releaser.join()
    assert not any(s.strip().upper().startswith("BEGIN") for s in statements), statements
    assert db.write_statement("UPDATE items SET note = 'x' WHERE name = :name", {"name": "nobody"}) == 0
    with db.connection() as conn:
        assert [row[0] for row in conn.execute("SELECT name FROM items ORDER BY id")] == ["theirs", "ours"]
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
    other.close()
    db.close()


def test_one_transaction_may_commit_with_another_synchronous(tmp_path: Path) -> None:
    db = SQLiteFile(tmp_path / "s.sqlite3", "test", numbered(SCRIPTS), synchronous="NORMAL", wal_autocheckpoint=0)
    seen = []
    with db.write(synchronous="FULL") as conn:
        seen.append(conn.execute("PRAGMA synchronous").fetchone()[0])
        conn.execute("INSERT INTO items (name) VALUES ('durable')")
    with pytest.raises(RuntimeError), db.write(synchronous="FULL") as conn:
        raise RuntimeError("rolled back")
    with db.connection() as conn:
        assert seen == [2]  # FULL inside
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL again, after a commit or a rollback
        assert conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    with pytest.raises(ValueError, match="synchronous"), db.write(synchronous="FULL; DROP TABLE items"):
        pass
    db.close()


def test_threads_share_one_file_safely(tmp_path: Path) -> None:
    db = SQLiteFile(tmp_path / "t.sqlite3", "test", numbered(SCRIPTS))

    def add(start: int) -> None:
        for n in range(start, start + 50):
            with db.write() as conn:
                conn.execute("INSERT INTO items (name) VALUES (?)", (f"n{n}",))

    threads = [threading.Thread(target=add, args=(k * 50,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with db.connection() as conn:
        assert conn.execute("SELECT COUNT(*) FROM items").fetchone()[0] == 200
    db.close()


def test_in_memory_needs_no_folder(tmp_path: Path) -> None:
    db = SQLiteFile(":memory:", "test", numbered(SCRIPTS), require_wal=True)
    assert db.schema_version == 2
    db.close()


def test_a_bad_migration_folder_is_refused_before_opening(tmp_path: Path) -> None:
    gap = sql_folder(tmp_path, {"001_a.sql": "SELECT 1;", "003_c.sql": "SELECT 1;"})
    with pytest.raises(SQLFileError, match="without gaps"):
        load_migrations(gap)
    with pytest.raises(SQLFileError, match="without gaps"):
        SQLiteFile(tmp_path / "gap.sqlite3", "test", gap)
    ordered = sql_folder(tmp_path, {"003_c.sql": "SELECT 3;", "002_b.sql": "SELECT 2;"})  # with 001_a from above
    assert [(m.version, m.name) for m in load_migrations(ordered)] == [(1, "a"), (2, "b"), (3, "c")]
    assert load_migrations(ordered)[0] == Migration(1, "a", "SELECT 1;")


def test_statements_split_on_complete_sql_only() -> None:
    script = "CREATE TABLE a (x TEXT DEFAULT 'a;b');\n-- a comment; not a statement\nINSERT INTO a VALUES ('c;d');\n"
    assert list(sqlite_statements(script)) == [
        "CREATE TABLE a (x TEXT DEFAULT 'a;b');",
        "-- a comment; not a statement\nINSERT INTO a VALUES ('c;d');",
    ]
    with pytest.raises(SQLFileError, match="unterminated"):
        list(sqlite_statements("SELECT 1;\nSELECT 2\n"))


def test_a_query_named_twice_is_refused(tmp_path: Path) -> None:
    folder = sql_folder(tmp_path, {"queries.sql": "-- name: q\nSELECT 1;\n-- name: q\nSELECT 2;\n"})
    with pytest.raises(SQLFileError, match="defined twice"):
        load_queries(folder)
    assert load_queries(sql_folder(tmp_path, FOLDER_FILES))["item_names"] == "SELECT name FROM items ORDER BY id"
