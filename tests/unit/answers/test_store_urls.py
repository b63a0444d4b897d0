"""The answers store's PostgreSQL URL gets a short statement timeout (review 14, finding 3); an operator's own stays."""

from __future__ import annotations

from pathlib import Path

import pytest

from answers.store import STATEMENT_TIMEOUT_MS, with_statement_timeout
from core.postgres import schema_in_url, with_schema


def test_a_postgresql_url_gets_the_timeout_and_keeps_its_schema_and_parameters() -> None:
    url = with_schema("postgresql://bot:pw@db.internal:5432/bot?sslmode=require", "bot_answers")
    timed = with_statement_timeout(url)
    assert f"statement_timeout%3D{STATEMENT_TIMEOUT_MS}" in timed
    assert "sslmode=require" in timed and schema_in_url(timed) == "bot_answers"


def test_an_operators_own_timeout_is_kept() -> None:
    url = "postgresql://h/db?options=-cstatement_timeout%3D20000"
    assert with_statement_timeout(url) == url


@pytest.mark.parametrize("target", ["sqlite:///data/answers.sqlite3", ":memory:", Path("answers.sqlite3")])
def test_sqlite_targets_are_unchanged(target: str | Path) -> None:
    assert with_statement_timeout(target) == target
