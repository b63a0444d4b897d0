"""The ingest journal's backends for the contract suite: a SQLite file under tmp_path, and PostgreSQL in a fresh
schema per test (picked with search_path in the URL, dropped afterwards, so parallel runs never meet); PostgreSQL
unreachable → skipped (fails with REQUIRE_SERVICES=1)."""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from connectors.ingest import IngestJournal, open_ingest_store
from tests.conftest import require_or_skip

POSTGRES_DSN = os.environ.get("INGEST_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@functools.lru_cache(maxsize=1)
def postgres_available() -> bool:
    import psycopg2

    try:
        psycopg2.connect(POSTGRES_DSN, connect_timeout=3).close()
    except psycopg2.OperationalError:
        return False
    return True


def with_search_path(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A journal URL whose search_path is a fresh schema, dropped afterwards."""
    require_or_skip(postgres_available(), "PostgreSQL")
    import psycopg2

    schema = f"ingest_test_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(POSTGRES_DSN)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA {schema}")
        try:
            yield with_search_path(POSTGRES_DSN, schema)
        finally:
            with admin.cursor() as cursor:
                cursor.execute(f"DROP SCHEMA {schema} CASCADE")
    finally:
        admin.close()


@pytest.fixture(params=["sqlite", "postgres"])
def journal_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a journal lives: a path for SQLite (as the settings give it), a URL for PostgreSQL."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return str(tmp_path / "var" / "messenger.sqlite3")


@pytest.fixture
def open_store(journal_url: str) -> Iterator[Callable[[], IngestJournal]]:
    """Opens the test's journal (again: a restart, a second process); every store opened is closed at the end."""
    opened: list[IngestJournal] = []

    def opener() -> IngestJournal:
        opened.append(open_ingest_store(journal_url))
        return opened[-1]

    yield opener
    for store in opened:
        store.close()


@pytest.fixture
def store(open_store: Callable[[], IngestJournal]) -> IngestJournal:
    return open_store()
