"""The handoff store on a real SQLite file: migrations, survival across a restart, concurrent writers."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from core.sqlite import SchemaTooNew
from handoff.model import ConversationState, PauseReason, conversation_id_of
from handoff.service import HandoffStore

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=timezone.utc)


def test_a_pause_survives_a_restart_of_the_app(tmp_path: Path) -> None:
    path = tmp_path / "handoff.sqlite3"
    store = HandoffStore(path)
    store.pause("111", "u1", PauseReason.LLM_DECLINED, "bot", NOW)
    store.record_user_message("111", "u1", "¿hola?", NOW + timedelta(minutes=1), NOW + timedelta(minutes=1))
    store.close()

    reopened = HandoffStore(path)
    [conversation] = reopened.paused()
    assert (conversation.id, conversation.state, conversation.paused_reason) == (
        conversation_id_of("111", "u1"), ConversationState.PAUSED, PauseReason.LLM_DECLINED,
    )
    assert [m.text for m in reopened.messages(conversation.id)] == ["¿hola?"]
    assert reopened.schema_version == 1
    reopened.close()


def test_a_file_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "handoff.sqlite3"
    HandoffStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version=99")
    with pytest.raises(SchemaTooNew, match="newer"):
        HandoffStore(path)


def test_concurrent_pauses_of_one_conversation_record_one_pause(tmp_path: Path) -> None:
    stores = [HandoffStore(tmp_path / "handoff.sqlite3") for _ in range(4)]  # as several processes would
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(
            lambda n: stores[n % 4].pause("111", "u1", PauseReason.USER_ASKED, f"agent{n}", NOW), range(16)
        ))
    assert sum(changed for _conversation, changed in results) == 1
    assert [entry.action for entry in stores[0].log(conversation_id_of("111", "u1"))] == ["paused"]
    for store in stores:
        store.close()
