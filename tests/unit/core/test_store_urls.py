"""Where each store lives (core/settings.py): BOT_DATABASE_URL gives every store a schema of its own on one
PostgreSQL database, a store's own URL wins, and without either the SQLite files under BOT_DATA_DIR stay as they
were. Bad values stop the start with a SettingsError naming the variable and never echoing the URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.postgres import schema_in_url
from core.settings import STORES, SettingsError, load_settings

DATABASE = "postgresql://bot:s3cret@db.internal:5432/ecuabots"


def test_without_a_database_every_store_is_its_sqlite_file_as_before(tmp_path: Path) -> None:
    settings = load_settings({"BOT_DATA_DIR": str(tmp_path)})
    assert settings.ingest_store_url == f"sqlite:///{tmp_path / 'messenger.sqlite3'}"
    assert settings.handoff_store_url == f"sqlite:///{tmp_path / 'handoff.sqlite3'}"
    assert settings.console_store_url == f"sqlite:///{tmp_path / 'console.sqlite3'}"
    assert settings.outbox_store_url == f"sqlite:///{tmp_path / 'outbox.sqlite3'}"
    assert settings.ingest_store_url.removeprefix("sqlite:///") == str(settings.ingest_db_path)


def test_bot_database_url_gives_each_store_its_own_schema() -> None:
    settings = load_settings({"BOT_DATABASE_URL": DATABASE})
    urls = {store: settings.store_url(store) for store in STORES}
    assert {store: schema_in_url(url) for store, url in urls.items()} == {
        "ingest": "bot_ingest", "handoff": "bot_handoff", "console": "bot_console", "outbox": "bot_outbox",
        "comment_journal": "bot_comment_journal", "comments": "bot_comments", "links": "bot_links",
        "page_profile": "bot_page_profile", "contacts": "bot_contacts",
        "broadcasts": "bot_broadcasts", "csat": "bot_csat", "answers": "bot_answers",
        "paraphrases": "bot_paraphrases"}
    assert all(url.startswith(DATABASE + "?options=") for url in urls.values())
    assert urls["handoff"] == settings.handoff_store_url and urls["outbox"] == settings.outbox_store_url


def test_the_schema_prefix_separates_deployments_on_one_database() -> None:
    settings = load_settings({"BOT_DATABASE_URL": DATABASE, "BOT_DATABASE_SCHEMA_PREFIX": "acme_"})
    assert schema_in_url(settings.console_store_url) == "acme_console"


def test_a_stores_own_url_wins() -> None:
    settings = load_settings({
        "BOT_DATABASE_URL": DATABASE,
        "OUTBOX_URL": "postgresql://other/outbox?options=-csearch_path%3Dsends",
        "HANDOFF_DB_URL": "sqlite:////srv/bot/handoff.sqlite3",
        "INGEST_DB_URL": "postgres://journal-host/journal",
    })
    assert settings.outbox_store_url == "postgresql://other/outbox?options=-csearch_path%3Dsends"
    assert settings.handoff_store_url == "sqlite:////srv/bot/handoff.sqlite3"
    assert settings.ingest_store_url == "postgres://journal-host/journal"
    assert schema_in_url(settings.console_store_url) == "bot_console"  # the others still follow BOT_DATABASE_URL


def test_urls_with_passwords_stay_out_of_the_settings_repr() -> None:
    settings = load_settings({"BOT_DATABASE_URL": DATABASE, "CONSOLE_DB_URL": DATABASE, "HANDOFF_DB_URL": DATABASE,
                              "INGEST_DB_URL": DATABASE})
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(("variable", "value", "message"), [
    ("BOT_DATABASE_URL", "mysql://bot:s3cret@db/x", "BOT_DATABASE_URL must start with postgresql://"),
    ("BOT_DATABASE_URL", "sqlite:///var/all.sqlite3", "BOT_DATABASE_URL must start with postgresql://"),
    ("BOT_DATABASE_URL", DATABASE + "?options=-csearch_path%3Dmine", "BOT_DATABASE_URL must not set a search_path"),
    ("BOT_DATABASE_URL", "postgresql://bot:s3cret@db:99999/x", "BOT_DATABASE_URL is not a valid URL"),
    ("BOT_DATABASE_SCHEMA_PREFIX", "Acme-", "BOT_DATABASE_SCHEMA_PREFIX must be"),
    ("INGEST_DB_URL", "memory://", "INGEST_DB_URL must start with sqlite:// or postgresql://"),
    ("HANDOFF_DB_URL", "/srv/handoff.sqlite3", "HANDOFF_DB_URL must start with"),
    ("CONSOLE_DB_URL", "sqlite://relative.sqlite3", "CONSOLE_DB_URL must be sqlite:///relative/path"),
    ("CONSOLE_DB_URL", "sqlite:///", "CONSOLE_DB_URL must be sqlite:///relative/path"),
    ("OUTBOX_URL", "redis://bot:s3cret@cache", "OUTBOX_URL must start with"),
    ("HANDOFF_DB_URL", "postgresql://bot:s3cret@db/x?options=-csearch_path%3DBad-Name",
     "HANDOFF_DB_URL: the search_path's schema"),
])
def test_a_bad_store_url_stops_the_start_naming_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message) as caught:
        load_settings({variable: value})
    assert "s3cret" not in str(caught.value)


def test_the_outbox_alone_may_live_in_memory() -> None:
    assert load_settings({"OUTBOX_URL": "memory://"}).outbox_store_url == "memory://"
