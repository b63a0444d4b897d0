"""PostgreSQL for the tests: is it here, and a fresh schema per test (dropped afterwards) so parallel runs never meet.

`TEST_POSTGRES_URL` (or the outbox's `OUTBOX_TEST_POSTGRES_DSN`) names the server; by default this machine's `test`
database. Unavailable → skipped, or failed with REQUIRE_SERVICES=1 (`tests.conftest.require_or_skip`).
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, TypeVar

import psycopg2
import pytest

from core.postgres import with_schema
from tests.conftest import require_or_skip

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL") or os.environ.get(
    "OUTBOX_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test")


@functools.lru_cache(maxsize=1)
def postgres_available() -> bool:
    try:
        psycopg2.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg2.OperationalError:
        return False
    return True


def require_postgres() -> None:
    require_or_skip(postgres_available(), "PostgreSQL")


def unique_name(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def drop_schemas(*schemas: str) -> None:
    admin = psycopg2.connect(POSTGRES_URL)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            for schema in schemas:
                cursor.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        admin.close()


@contextmanager
def fresh_schemas(prefix: str) -> Iterator[str]:
    """A prefix of schema names unique to this test; every schema that starts with it is dropped afterwards."""
    require_postgres()
    unique = unique_name(prefix)
    try:
        yield unique
    finally:
        admin = psycopg2.connect(POSTGRES_URL)
        try:
            with admin.cursor() as cursor:
                cursor.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", (unique,))
                schemas = [row[0] for row in cursor.fetchall()]
        finally:
            admin.close()
        drop_schemas(*schemas)


@contextmanager
def schema_url(prefix: str = "test") -> Iterator[str]:
    """A store URL whose search_path is a schema of its own (not created: the store creates it), dropped after."""
    with fresh_schemas(prefix) as schema:
        yield with_schema(POSTGRES_URL, schema)


STORE_BACKENDS = ("sqlite", "postgres")


@contextmanager
def store_url(backend: str, tmp_path: Path, store: str) -> Iterator[str]:
    """A store's URL on `backend`: a SQLite file in tmp_path, or a PostgreSQL schema of this test's own (named
    `<store>_<unique>`, created by the store, dropped afterwards)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / f'{store}.sqlite3'}"
        return
    with fresh_schemas(store) as schema:
        yield with_schema(POSTGRES_URL, schema)


class Closable(Protocol):
    def close(self) -> None: ...


StoreT = TypeVar("StoreT", bound=Closable)


def url_fixture(store: str) -> Any:
    """A contract module's `url = url_fixture("links")`: each test runs once per STORE_BACKENDS with the URL of a
    store of its own (`store_url`; PostgreSQL missing → skipped, failed with REQUIRE_SERVICES=1)."""

    @pytest.fixture(params=STORE_BACKENDS)
    def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
        with store_url(request.param, tmp_path, store) as opened:
            yield opened

    return url


def store_fixture(opener: Callable[[str], StoreT]) -> Any:
    """A contract module's `store = store_fixture(open_links_store)` (any fixture name): the store `opener` opens at
    the module's `url` (`url_fixture`), closed after the test."""

    @pytest.fixture
    def store(url: str) -> Iterator[StoreT]:
        opened = opener(url)
        yield opened
        opened.close()

    return store
