"""One contract suite for `ConsoleStore` on its two databases: a real SQLite file and a PostgreSQL schema of the
test's own (`open_console_store(url)` picks by URL). Users, sessions, failed logins and snippets as `console.auth`
and `console.snippets` use them; migrations and a newer schema refused. PostgreSQL missing → its half is skipped
(failed with REQUIRE_SERVICES=1)."""

from __future__ import annotations

import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import psycopg2
import pytest

from console.store import ConsoleStore, ConsoleStoreError, Snippet, UnknownUser, UserExists, open_console_store
from core.sqlite import SchemaTooNew
from tests.support.postgres import store_fixture, url_fixture

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA"


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


url = url_fixture("console")
store = store_fixture(open_console_store)


def test_users_are_added_once_read_and_listed(store: ConsoleStore) -> None:
    ana = store.add_user("ana", "Ana P.", "agent", HASH, NOW)
    assert (ana.username, ana.display_name, ana.role, ana.password_hash, ana.active) == (
        "ana", "Ana P.", "agent", HASH, True)
    assert ana.created_at == NOW and ana.created_at.utcoffset() == timedelta(0)
    with pytest.raises(UserExists):
        store.add_user("ana", "Otra", "admin", HASH, later(1))
    assert store.get_user("ana").display_name == "Ana P."  # the first one stays
    store.add_user("bea", "Bea", "admin", HASH, later(2))
    assert [user.username for user in store.users()] == ["ana", "bea"]
    assert store.find_user("nadie") is None
    with pytest.raises(UnknownUser):
        store.get_user("nadie")
    with pytest.raises(ConsoleStoreError, match="unknown role"):
        store.add_user("caro", "Caro", "owner", HASH, NOW)


def test_a_new_password_role_or_deactivation_changes_the_user(store: ConsoleStore) -> None:
    store.add_user("ana", "Ana", "agent", HASH, NOW)
    store.add_session("s1", "ana", "csrf1", NOW, later(3600))
    store.set_password_hash("ana", "$argon2id$new", later(1))
    assert store.get_user("ana").password_hash == "$argon2id$new"
    assert store.session("s1", later(2)) is None  # a new password logs the user out everywhere
    store.set_role("ana", "editor", later(3))
    assert store.get_user("ana").role == "editor"
    store.add_session("s2", "ana", "csrf2", later(4), later(3600))
    store.set_active("ana", False, later(5))
    assert store.get_user("ana").active is False and store.session("s2", later(6)) is None
    store.set_active("ana", True, later(7))
    assert store.get_user("ana").active is True
    for change in (lambda: store.set_password_hash("nadie", HASH, NOW), lambda: store.set_role("nadie", "agent", NOW),
                   lambda: store.set_active("nadie", True, NOW)):
        with pytest.raises(UnknownUser):
            change()
    with pytest.raises(ConsoleStoreError, match="unknown role"):
        store.set_role("ana", "owner", NOW)


def test_sessions_until_they_expire(store: ConsoleStore) -> None:
    store.add_user("ana", "Ana", "agent", HASH, NOW)
    store.add_session("s1", "ana", "csrf1", NOW, later(60))
    session = store.session("s1", later(10))
    assert session is not None
    assert (session.username, session.display_name, session.role, session.active, session.csrf_token) == (
        "ana", "Ana", "agent", True, "csrf1")
    assert (session.created_at, session.expires_at, session.last_seen_at) == (NOW, later(60), NOW)
    store.touch_session("s1", later(20))
    assert store.session("s1", later(21)).last_seen_at == later(20)  # type: ignore[union-attr]
    assert store.session("s1", later(60)) is None  # expired at expires_at
    store.add_session("s2", "ana", "csrf2", NOW, later(600))
    assert store.delete_expired_sessions(later(60)) == 1
    assert store.session("s2", later(61)) is not None
    store.delete_session("s2")
    assert store.session("s2", later(62)) is None


def test_failed_logins_are_counted_since_a_time_and_forgotten(store: ConsoleStore) -> None:
    for seconds in (0, 10, 20):
        store.add_login_failure("ana|127.0.0.1", later(seconds))
    store.add_login_failure("bea|127.0.0.1", later(5))
    assert store.login_failures_since("ana|127.0.0.1", later(5)) == [later(10), later(20)]
    assert store.forget_login_failures_before(later(10)) == 3
    assert store.login_failures_since("ana|127.0.0.1", NOW - timedelta(days=1)) == [later(20)]
    store.clear_login_failures("ana|127.0.0.1")
    assert store.login_failures_since("ana|127.0.0.1", NOW - timedelta(days=1)) == []


def test_snippets_are_saved_replaced_listed_and_deleted(store: ConsoleStore) -> None:
    assert store.save_snippet("horario", "De 8 a 18", "ana", NOW) == Snippet("horario", "De 8 a 18", "ana", NOW)
    store.save_snippet("gracias", "¡Gracias!", "bea", later(1))
    store.save_snippet("horario", "De 9 a 17", "bea", later(2))
    assert store.snippets() == [Snippet("gracias", "¡Gracias!", "bea", later(1)),
                                Snippet("horario", "De 9 a 17", "bea", later(2))]
    assert store.delete_snippet("horario") is True and store.delete_snippet("horario") is False
    assert [snippet.name for snippet in store.snippets()] == ["gracias"]


def test_users_survive_a_reopen_at_the_newest_schema(url: str, store: ConsoleStore) -> None:
    store.add_user("ana", "Ana", "admin", HASH, NOW)
    store.close()
    reopened = open_console_store(url)
    assert reopened.get_user("ana").role == "admin" and reopened.schema_version == 3  # 003_read_message_count
    reopened.close()


def test_a_newer_schema_is_refused(url: str, store: ConsoleStore) -> None:
    store.close()
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            conn.execute("PRAGMA user_version=7")
    else:
        with psycopg2.connect(url) as conn, conn.cursor() as cursor:
            cursor.execute("INSERT INTO schema_migrations (store, version, name) VALUES ('console', 7, 'future')")
        conn.close()
    with pytest.raises(SchemaTooNew):
        open_console_store(url)


def test_one_username_added_from_several_processes_at_once_exists_once(url: str) -> None:
    stores = [open_console_store(url) for _ in range(4)]

    def add(n: int) -> bool:
        try:
            stores[n % 4].add_user("ana", f"Ana {n}", "agent", HASH, NOW)
        except UserExists:
            return False
        return True

    with ThreadPoolExecutor(max_workers=8) as pool:
        added = list(pool.map(add, range(12)))
    assert sum(added) == 1 and len(stores[0].users()) == 1
    for opened in stores:
        opened.close()
