"""`open_ingest_store`: which journal a setting opens, and a journal from before the claims (schema 4, a pending
event in it) migrated in place so that its events can be claimed."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from connectors.ingest import _MIGRATIONS, PENDING, IngestStore, open_ingest_store, utc_now_iso
from meta.events import parse_webhook
from tests.support import meta_payloads as meta


@pytest.mark.parametrize("form", ["path", "sqlite_url"])
def test_a_path_or_a_sqlite_url_opens_the_sqlite_journal(tmp_path: Path, form: str) -> None:
    path = tmp_path / "var" / "messenger.sqlite3"
    store = open_ingest_store(path if form == "path" else f"sqlite:///{path}")
    try:
        assert isinstance(store, IngestStore) and store.path == path and path.exists()
    finally:
        store.close()


@pytest.mark.parametrize("location", ["", "sqlite:///"])
def test_no_location_is_refused(location: str) -> None:
    with pytest.raises(ValueError, match="needs a path"):
        open_ingest_store(location)


def test_a_journal_from_before_the_claims_is_claimable_after_the_migration(tmp_path: Path) -> None:
    path = tmp_path / "messenger.sqlite3"
    event = parse_webhook(meta.webhook(meta.entry([meta.text_message(mid="m_old")])))[0]
    before = next(number for number, script in enumerate(_MIGRATIONS) if "ingest_claims" in script)
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for script in _MIGRATIONS[:before]:
            conn.executescript("BEGIN;" + script + "COMMIT;")
        conn.execute(f"PRAGMA user_version={before}")
        conn.execute(
            "INSERT INTO inbound_events (dedup_key, page_id, user_id, kind, status, event_json, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (event.dedup_key, event.page_id, event.user_id, event.kind.value, PENDING,
             json.dumps(event.to_dict()), utc_now_iso()),
        )
    store = IngestStore(path)
    try:
        now = datetime.now(timezone.utc)
        [claimed] = store.claim_pending("rasa", now, timedelta(seconds=30))
        assert claimed.event.mid == "m_old"
        assert list(store.claims()) == [event.conversation_key]
        assert store.claim_pending("rasa-2", now, timedelta(seconds=30)) == []
    finally:
        store.close()
