"""The ingest journal's backends for the contract suite: a SQLite file under tmp_path, and PostgreSQL in a fresh
schema per test (picked with search_path in the URL, dropped afterwards, so parallel runs never meet:
tests/support/postgres.py); PostgreSQL unreachable → skipped (fails with REQUIRE_SERVICES=1)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from connectors.ingest import IngestJournal, open_ingest_store
from tests.support.postgres import schema_url


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A journal URL whose search_path is a fresh schema (the store creates it), dropped afterwards."""
    with schema_url("ingest_test") as url:
        yield url


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
