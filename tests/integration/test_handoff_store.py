"""One contract suite for `HandoffStore` on its two databases: a real SQLite file and a PostgreSQL schema of the
test's own (`open_handoff_store(url)` picks by URL). Migrations, survival across a restart, every method the
service calls, concurrent writers as several processes would be. PostgreSQL missing → its half is skipped (failed
with REQUIRE_SERVICES=1)."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import psycopg2
import pytest

from core.postgres import PostgresDatabase
from core.sqlite import SchemaTooNew, SQLiteFile
from handoff.model import ConversationNotFound, ConversationState, PauseReason, conversation_id_of
from handoff.service import HandoffStore, open_handoff_store
from tests.support.postgres import store_fixture, url_fixture

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=timezone.utc)
CID = conversation_id_of("111", "u1")


url = url_fixture("handoff")
store = store_fixture(open_handoff_store)


def later(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


def test_the_url_picks_the_database(url: str, store: HandoffStore) -> None:
    expected = PostgresDatabase if url.startswith("postgresql://") else SQLiteFile
    assert isinstance(store._db, expected)


def test_a_pause_survives_a_restart_of_the_app(url: str, store: HandoffStore) -> None:
    store.pause("111", "u1", PauseReason.LLM_DECLINED, "bot", NOW)
    store.record_user_message("111", "u1", "¿hola?", later(1), later(1))
    store.close()

    reopened = open_handoff_store(url)
    [conversation] = reopened.paused()
    assert (conversation.id, conversation.state, conversation.paused_reason, conversation.paused_by) == (
        CID, ConversationState.PAUSED, PauseReason.LLM_DECLINED, "bot",
    )
    assert conversation.paused_at == NOW and conversation.last_user_message_at == later(1)
    assert conversation.paused_at.tzinfo is not None and conversation.paused_at.utcoffset() == timedelta(0)
    assert [m.text for m in reopened.messages(conversation.id)] == ["¿hola?"]
    assert reopened.schema_version == 3  # 003_episodes
    reopened.close()


def make_newer(url: str) -> None:
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute("PRAGMA user_version=99")
        return
    with psycopg2.connect(url) as conn, conn.cursor() as cursor:
        cursor.execute("INSERT INTO schema_migrations (store, version, name) VALUES ('handoff', 99, 'future')")
    conn.close()


def test_a_database_from_a_newer_version_is_refused(url: str) -> None:
    open_handoff_store(url).close()
    make_newer(url)
    with pytest.raises(SchemaTooNew, match="newer"):
        open_handoff_store(url)


def test_pause_resume_and_the_log(store: HandoffStore) -> None:
    conversation, changed = store.pause("111", "u1", PauseReason.USER_ASKED, "bot", NOW)
    assert changed and conversation.state is ConversationState.PAUSED
    again, changed = store.pause("111", "u1", PauseReason.AGENT_TOOK_OVER, "ana", later(1))
    assert not changed and again.paused_reason is PauseReason.USER_ASKED and again.paused_by == "bot"
    assigned = store.assign(CID, "ana", "admin", later(2))
    assert assigned.assigned_to == "ana" and assigned.last_activity_at == later(2)
    resumed, changed = store.resume(CID, "ana", "resuelto", later(3))
    assert changed and resumed.state is ConversationState.BOT
    assert (resumed.paused_reason, resumed.paused_by, resumed.paused_at, resumed.assigned_to) == (None,) * 4
    assert store.resume(CID, "ana", None, later(4))[1] is False
    log = store.log(CID)
    assert [(e.action, e.by, e.reason, e.closing_note) for e in log] == [
        ("paused", "bot", "user_asked", None), ("assigned", "admin", "ana", None), ("resumed", "ana", None, "resuelto")]
    assert [e.at for e in log] == [NOW, later(2), later(3)]


def test_unknown_conversations(store: HandoffStore) -> None:
    assert store.find(CID) is None
    with pytest.raises(ConversationNotFound):
        store.get(CID)
    with pytest.raises(ConversationNotFound):
        store.resume(CID, "ana", None, NOW)
    with pytest.raises(ConversationNotFound):
        store.assign(CID, "ana", "admin", NOW)
    with pytest.raises(ConversationNotFound):
        store.record_agent_message(CID, "ana", "hola", NOW)
    assert store.log(CID) == [] and store.messages(CID) == []


def test_a_message_from_an_unknown_conversation_records_it_as_paused_by_rasa(store: HandoffStore) -> None:
    conversation, created = store.record_user_message("111", "u1", "hola", NOW, later(1))
    assert created and conversation.state is ConversationState.PAUSED and conversation.paused_by == "rasa"
    assert (conversation.last_message_text, conversation.last_user_message_at) == ("hola", NOW)
    assert store.record_user_message("111", "u1", "sigo", later(2), later(2))[1] is False
    assert [(e.action, e.by) for e in store.log(CID)] == [("paused", "rasa")]


def test_agent_messages_and_a_reply_recorded_once(store: HandoffStore) -> None:
    store.pause("111", "u1", PauseReason.USER_ASKED, "bot", NOW)
    store.record_agent_message(CID, "ana", "te ayudo", later(1))
    conversation, written = store.record_agent_reply_once(CID, "ana", "listo", later(2), outbox_id=7)
    assert written and conversation.last_activity_at == later(2)
    assert store.record_agent_reply_once(CID, "ana", "listo", later(3), outbox_id=7)[1] is False
    items = store.messages(CID)
    assert [(i.author, i.text, i.data) for i in items] == [
        ("agent:ana", "te ayudo", None), ("agent:ana", "listo", {"outbox_id": 7})]
    assert [i.at for i in items] == [later(1), later(2)]


def test_messages_are_the_newest_limit_oldest_first(store: HandoffStore) -> None:
    for n in range(5):
        store.record_user_message("111", "u1", f"m{n}", later(n), later(n))
    assert [m.text for m in store.messages(CID, limit=3)] == ["m2", "m3", "m4"]


def test_paused_lists_the_latest_activity_first_and_idle_the_longest_idle_first(store: HandoffStore) -> None:
    store.pause("111", "a", PauseReason.USER_ASKED, "bot", NOW)
    store.pause("111", "b", PauseReason.USER_ASKED, "bot", later(10))
    store.pause("111", "c", PauseReason.USER_ASKED, "bot", later(20))
    store.resume(conversation_id_of("111", "c"), "ana", None, later(21))
    assert [c.user_id for c in store.paused()] == ["b", "a"]
    assert [c.user_id for c in store.idle_paused(later(11))] == ["a", "b"]
    assert [c.user_id for c in store.idle_paused(later(5))] == ["a"]
    assert store.idle_paused(NOW) == []


def test_concurrent_pauses_of_one_conversation_record_one_pause(url: str) -> None:
    stores = [open_handoff_store(url) for _ in range(4)]  # as several processes would
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(
            lambda n: stores[n % 4].pause("111", "u1", PauseReason.USER_ASKED, f"agent{n}", NOW), range(16)
        ))
    assert sum(changed for _conversation, changed in results) == 1
    assert [entry.action for entry in stores[0].log(CID)] == ["paused"]
    for opened in stores:
        opened.close()


def test_a_retried_reply_from_several_processes_is_written_once(url: str) -> None:
    stores = [open_handoff_store(url) for _ in range(4)]
    stores[0].pause("111", "u1", PauseReason.USER_ASKED, "bot", NOW)
    with ThreadPoolExecutor(max_workers=8) as pool:
        written = list(pool.map(
            lambda n: stores[n % 4].record_agent_reply_once(CID, "ana", "listo", later(1), outbox_id=42)[1], range(16)
        ))
    assert sum(written) == 1
    assert [m.text for m in stores[0].messages(CID)] == ["listo"]
    for opened in stores:
        opened.close()


def test_first_messages_from_several_processes_create_one_conversation(url: str) -> None:
    stores = [open_handoff_store(url) for _ in range(4)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        created = list(pool.map(
            lambda n: stores[n % 4].record_user_message("111", "u1", f"m{n}", later(n), later(n))[1], range(16)
        ))
    assert sum(created) == 1
    assert len(stores[0].messages(CID, limit=100)) == 16
    assert [(e.action, e.by) for e in stores[0].log(CID)] == [("paused", "rasa")]
    for opened in stores:
        opened.close()
