"""core.postgres's URL helpers (pure): the schema a URL picks, a URL for a schema, a URL without its password."""

from __future__ import annotations

import pytest

from core.postgres import check_schema_name, is_postgres_url, redacted, schema_in_url, with_schema


@pytest.mark.parametrize(("url", "schema"), [
    ("postgresql://u@h/db", None),
    ("postgresql://u@h/db?options=-csearch_path%3Dbot_handoff", "bot_handoff"),
    ("postgresql://u@h/db?options=-c%20search_path%3Done,two", "one"),
    ("postgresql://u@h/db?sslmode=require&options=-cstatement_timeout%3D5000%20-csearch_path%3Dx", "x"),
    ("postgresql://u@h/db?options=-cstatement_timeout%3D5000", None),
])
def test_schema_in_url(url: str, schema: str | None) -> None:
    assert schema_in_url(url) == schema


def test_with_schema_adds_or_replaces_the_search_path_and_keeps_the_rest() -> None:
    plain = with_schema("postgresql://u:p@h:5433/db", "bot_console")
    assert plain == "postgresql://u:p@h:5433/db?options=-csearch_path%3Dbot_console"
    assert schema_in_url(plain) == "bot_console"
    again = with_schema(plain, "bot_outbox")
    assert schema_in_url(again) == "bot_outbox" and again.count("search_path") == 1
    mixed = with_schema("postgresql://h/db?sslmode=require&options=-cstatement_timeout%3D5000", "s1")
    assert "sslmode=require" in mixed and "statement_timeout%3D5000" in mixed and schema_in_url(mixed) == "s1"


@pytest.mark.parametrize("name", ["", "Handoff", "a-b", "x" * 64, "1abc", 'a"; DROP'])
def test_schema_names_that_would_need_quoting_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="schema name"):
        check_schema_name(name)
    with pytest.raises(ValueError, match="schema name"):
        with_schema("postgresql://h/db", name)


def test_is_postgres_url() -> None:
    assert is_postgres_url("postgresql://h/db") and is_postgres_url("postgres://h/db")
    assert not is_postgres_url("sqlite:///var/x.sqlite3") and not is_postgres_url("/var/x.sqlite3")


def test_redacted_hides_the_password_only() -> None:
    assert redacted("postgresql://bot:s3cret@db.example:5432/app?sslmode=require") == \
        "postgresql://bot:***@db.example:5432/app?sslmode=require"
    assert redacted("postgresql://bot@db/app") == "postgresql://bot@db/app"
    assert "s3cret" not in redacted("postgresql://bot:s3cret@[::1]/app")
