"""Handoff episodes (issue 14, reports): one row per pause, kept by `HandoffStore` in the transactions of the pause,
an agent's first message (the console's reply or a person writing from the Page inbox), the assignment and the
resume; and the history written before the table existed, backfilled by migration 003. On a real SQLite file and
a PostgreSQL schema of the test's own (PostgreSQL missing → skipped, failed with REQUIRE_SERVICES=1)."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg2
import pytest

from core.postgres import schema_in_url
from core.sqlite import load_migrations
from handoff.model import Episode, PauseReason, conversation_id_of
from handoff.rasa_api import InMemoryRasaTrackers
from handoff.service import SQL_DIR, Handoff, HandoffStore, open_handoff_store
from meta.graph import GraphClient
from outbox.outbox import Outbox
from outbox.policy_file import load_policy
from outbox.store import InMemoryOutboxStore
from sandbox.graph import GraphSandbox
from tests.support.graph_sandbox_transport import SandboxTransport
from tests.support.postgres import store_fixture, store_url, url_fixture

NOW = datetime(2026, 11, 25, 15, 0, tzinfo=timezone.utc)
PAGE, OTHER_PAGE = "111", "222"
CID = conversation_id_of(PAGE, "u1")
DAY = timedelta(days=1)

url = url_fixture("handoff")
store = store_fixture(open_handoff_store)


def later(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


def test_a_pause_its_first_reply_assignment_and_resume_make_one_episode(store: HandoffStore) -> None:
    store.pause(PAGE, "u1", PauseReason.USER_ASKED, "bot", NOW)
    store.pause(PAGE, "u1", PauseReason.AGENT_TOOK_OVER, "ana", later(1))  # already paused: no second episode
    store.assign(CID, "luis", "admin", later(2))
    store.record_user_message(PAGE, "u1", "¿hola?", later(3), later(3))
    store.record_agent_reply_once(CID, "ana", "Buenas tardes", later(5), outbox_id=7)
    store.record_agent_message(CID, "luis", "Le ayudo", later(6))  # a second reply leaves the first as it was
    [episode] = store.episodes(None, NOW - DAY, NOW + DAY)
    assert episode == Episode(CID, PAGE, "u1", NOW, "user_asked", "bot", later(5), "ana", None, None, "luis")
    assert episode.wait_for_reply == timedelta(minutes=5) and episode.wait_for_close is None

    store.resume(CID, "ana", "resuelto", later(30))
    store.assign(CID, "maria", "admin", later(31))  # after the close: the closed episode keeps its assignment
    [closed] = store.episodes(PAGE, NOW - DAY, NOW + DAY)
    assert (closed.resumed_at, closed.closed_by, closed.assigned_to) == (later(30), "ana", "luis")
    assert closed.wait_for_close == timedelta(minutes=30)


def test_a_person_writing_from_the_page_inbox_is_the_first_reply(store: HandoffStore) -> None:
    """The connector pauses on an echo and keeps its text as the agent's message: the episode's wait is zero."""
    store.pause(PAGE, "u1", PauseReason.AGENT_WROTE_OUTSIDE, "page_inbox", NOW)
    store.record_agent_message(CID, "page_inbox", "Hola, le escribo desde la bandeja", NOW)
    [episode] = store.episodes(None, NOW, NOW + DAY)
    assert (episode.reason, episode.first_reply_at, episode.first_reply_by) == ("agent_wrote_outside", NOW,
                                                                              "page_inbox")
    assert episode.wait_for_reply == timedelta(0)


def test_a_pause_rasa_made_alone_is_an_episode_without_reason_and_an_idle_close_is_the_systems(
        store: HandoffStore) -> None:
    store.record_user_message(PAGE, "u2", "¿hay alguien?", NOW, NOW)
    store.record_user_message(PAGE, "u2", "¿hola?", later(1), later(1))  # known now: no second episode
    store.resume(conversation_id_of(PAGE, "u2"), "system", "Reanudado automáticamente", later(240), "idle")
    [episode] = store.episodes(None, NOW, NOW + DAY)
    assert (episode.reason, episode.paused_by, episode.first_reply_at) == (None, "rasa", None)
    assert (episode.resumed_at, episode.closed_by) == (later(240), "system")


def test_episodes_are_read_by_their_pause_time_and_page(store: HandoffStore) -> None:
    store.pause(PAGE, "u1", PauseReason.USER_ASKED, "bot", NOW)
    store.resume(CID, "ana", "", later(10))
    store.pause(PAGE, "u1", PauseReason.BOT_FAILED, "bot", later(60))  # the same conversation again: a new episode
    store.record_agent_message(CID, "ana", "De nuevo por aquí", later(61))
    store.pause(OTHER_PAGE, "u9", PauseReason.LLM_DECLINED, "bot", later(120))
    everything = store.episodes(None, NOW - DAY, NOW + DAY)
    assert [(e.page_id, e.paused_at, e.first_reply_at) for e in everything] == [
        (PAGE, NOW, None), (PAGE, later(60), later(61)), (OTHER_PAGE, later(120), None)]
    assert [e.paused_at for e in store.episodes(PAGE, NOW - DAY, NOW + DAY)] == [NOW, later(60)]
    assert [e.paused_at for e in store.episodes(None, NOW, later(60))] == [NOW], "since inclusive, until not"
    assert store.episodes(OTHER_PAGE, NOW - DAY, later(120)) == []
    assert all(e.paused_at.utcoffset() == timedelta(0) for e in everything)


def test_the_reads_use_the_pause_time_index(url: str, store: HandoffStore) -> None:
    if not url.startswith("sqlite:///"):
        pytest.skip("SQLite's plan (PostgreSQL plans by its statistics)")
    with store._db.write() as conn:
        for page_id in ("111", None):
            plan = conn.execute("EXPLAIN QUERY PLAN " + store._db.queries["episodes"],
                                {"page_id": page_id, "since": "2026", "until": "2027"}).fetchall()
            assert any("handoff_episodes_" in str(tuple(row)) for row in plan), [tuple(row) for row in plan]


async def test_the_service_reads_the_episodes(store: HandoffStore) -> None:
    tokens = {PAGE: "token"}
    outbox = Outbox(InMemoryOutboxStore(), GraphClient(tokens, transport=SandboxTransport(GraphSandbox(tokens))),
                    load_policy(), clock=lambda: NOW)
    handoff = Handoff(store, InMemoryRasaTrackers(), outbox, page_tokens=tokens, clock=lambda: NOW)
    await handoff.pause(PAGE, "u1", PauseReason.USER_ASKED, "bot")
    [episode] = await handoff.episodes(PAGE, NOW, NOW + DAY)
    assert (episode.conversation_id, episode.reason) == (CID, "user_asked")


# --- the history from before migration 003 ----------------------------------------------------------------------

# What the store wrote before the episodes existed: two episodes of one conversation (the first answered by ana,
# assigned to luis then to ana, closed by ana; the second open, assigned, unanswered), one unanswered closed by the
# idle auto-resume, one by a Page inbox echo that is its own first reply, and one Rasa paused alone.
HISTORY_LOG = [
    (f"{PAGE}:u1", "paused", "bot", "user_asked", 0),
    (f"{PAGE}:u1", "assigned", "admin", "luis", 1),
    (f"{PAGE}:u1", "assigned", "admin", "ana", 2),
    (f"{PAGE}:u1", "resumed", "ana", None, 30),
    (f"{PAGE}:u1", "assigned", "admin", "maria", 31),
    (f"{PAGE}:u1", "paused", "bot", "bot_failed", 60),
    (f"{PAGE}:u1", "assigned", "admin", "pedro", 61),
    (f"{PAGE}:u2", "paused", "bot", "llm_declined", 5),
    (f"{PAGE}:u2", "resumed", "system", "idle", 245),
    (f"{OTHER_PAGE}:u3", "paused", "page_inbox", "agent_wrote_outside", 10),
    (f"{OTHER_PAGE}:u3", "resumed", "luis", None, 20),
    (f"{OTHER_PAGE}:u4", "paused", "rasa", None, 15),
]
HISTORY_MESSAGES = [
    (f"{PAGE}:u1", "user", 1),
    (f"{PAGE}:u1", "agent:ana", 4),
    (f"{PAGE}:u1", "agent:luis", 5),
    (f"{PAGE}:u1", "agent:ana", 29),
    (f"{PAGE}:u1", "user", 62),
    (f"{OTHER_PAGE}:u3", "agent:page_inbox", 10),
]
CONVERSATIONS = [  # id, state, assigned_to
    (f"{PAGE}:u1", "paused", "pedro"),
    (f"{PAGE}:u2", "bot", None),
    (f"{OTHER_PAGE}:u3", "bot", None),
    (f"{OTHER_PAGE}:u4", "paused", None),
]
EXPECTED = [
    Episode(f"{PAGE}:u1", PAGE, "u1", NOW, "user_asked", "bot", later(4), "ana", later(30), "ana", "ana"),
    Episode(f"{PAGE}:u2", PAGE, "u2", later(5), "llm_declined", "bot", None, None, later(245), "system", None),
    Episode(f"{OTHER_PAGE}:u3", OTHER_PAGE, "u3", later(10), "agent_wrote_outside", "page_inbox", later(10),
            "page_inbox", later(20), "luis", None),
    Episode(f"{OTHER_PAGE}:u4", OTHER_PAGE, "u4", later(15), None, "rasa", None, None, None, None, None),
    Episode(f"{PAGE}:u1", PAGE, "u1", later(60), "bot_failed", "bot", None, None, None, None, "pedro"),
]


def write_history(url: str) -> None:
    """The history through the store's own tables at schema 2 (its first two migrations, as the old code ran)."""
    def at(minutes: float) -> str:
        return later(minutes).isoformat(timespec="microseconds")

    if url.startswith("sqlite:///"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        mark = "?"
        for migration in load_migrations(SQL_DIR / "sqlite")[:2]:
            conn.executescript(migration.script)
        conn.execute("PRAGMA user_version=2")
    else:
        conn = psycopg2.connect(url)
        mark = "%s"
        with conn.cursor() as cursor:
            schema = schema_in_url(url)
            cursor.execute(f'CREATE SCHEMA "{schema}"')
            cursor.execute(f'SET search_path TO "{schema}"')
            cursor.execute("CREATE TABLE schema_migrations (store text NOT NULL, version integer NOT NULL, name text "
                           "NOT NULL, applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (store, version))")
            for migration in load_migrations(SQL_DIR / "postgres")[:2]:
                cursor.execute(migration.script)
                cursor.execute("INSERT INTO schema_migrations (store, version, name) VALUES (%s, %s, %s)",
                               ("handoff", migration.version, migration.name))
    with conn:
        cursor = conn.cursor()
        for conversation_id, state, assigned_to in CONVERSATIONS:
            page_id, user_id = conversation_id.split(":")
            cursor.execute(f"INSERT INTO conversations (id, page_id, user_id, state, assigned_to) VALUES "
                           f"({mark}, {mark}, {mark}, {mark}, {mark})",
                           (conversation_id, page_id, user_id, state, assigned_to))
        for conversation_id, action, actor, reason, minutes in HISTORY_LOG:
            cursor.execute(f"INSERT INTO handoff_log (conversation_id, action, actor, reason, at) VALUES "
                           f"({mark}, {mark}, {mark}, {mark}, {mark})",
                           (conversation_id, action, actor, reason, at(minutes)))
        for conversation_id, author, minutes in HISTORY_MESSAGES:
            cursor.execute(f"INSERT INTO messages (conversation_id, author, text, at) VALUES "
                           f"({mark}, {mark}, 'texto', {mark})", (conversation_id, author, at(minutes)))
    conn.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_003_backfills_the_episodes_of_the_existing_history(backend: str, tmp_path: Path) -> None:
    with store_url(backend, tmp_path, "handoff") as history_url:
        write_history(history_url)
        migrated = open_handoff_store(history_url)
        try:
            assert migrated.schema_version == 3
            assert migrated.episodes(None, NOW - DAY, NOW + DAY) == EXPECTED
            # The open episodes go on being kept after the migration.
            migrated.record_agent_message(f"{PAGE}:u1", "pedro", "Ya le atiendo", later(70))
            migrated.resume(f"{OTHER_PAGE}:u4", "ana", "", later(80))
            _, _, _, open_u4, open_u1 = migrated.episodes(None, NOW - DAY, NOW + DAY)
            assert (open_u1.first_reply_at, open_u1.first_reply_by) == (later(70), "pedro")
            assert (open_u4.resumed_at, open_u4.closed_by) == (later(80), "ana")
        finally:
            migrated.close()
