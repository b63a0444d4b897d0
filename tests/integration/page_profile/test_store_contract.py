"""One contract suite for `PageProfileStore` on its two databases: a real SQLite file and a PostgreSQL schema of the
test's own (`open_page_profile_store(url)` picks by URL). PostgreSQL missing → its half is skipped (failed with
REQUIRE_SERVICES=1).

Would catch: an edit that forgets what was applied, a failure recorded as applied, a success that keeps the old
error, times coming back naive or shifted, JSON (accents, emoji, placeholders) changed on the way, and one page's
profile leaking into another's."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from page_profile.store import PageProfileStore, UnknownProfile, open_page_profile_store
from tests.support.postgres import store_fixture, url_fixture

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
PAGE = "100000000000001"
OTHER = "200000000000002"
PROFILE = {"get_started": {"payload": "/greet"},
           "greeting": [{"locale": "default", "text": "¡Hola {{user_first_name}}! 👋 Ñandú"}]}
CHANGED = {"get_started": {"payload": '/ask_knowledge{"entry_id":"menú"}'}}


def later(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


url = url_fixture("page_profile")
store = store_fixture(open_page_profile_store)


def test_a_saved_profile_reads_back_as_it_was_given(store: PageProfileStore) -> None:
    assert store.get(PAGE) is None and store.profiles() == []
    saved = store.save(PAGE, PROFILE, "admin", NOW)
    assert (saved.page_id, saved.profile, saved.updated_by, saved.updated_at) == (PAGE, PROFILE, "admin", NOW)
    assert saved.updated_at.utcoffset() == timedelta(0)
    assert (saved.applied, saved.applied_at, saved.last_ok, saved.last_answer) == (None, None, None, None)
    assert saved.has_unapplied_changes
    assert store.get(PAGE) == saved
    store.save(OTHER, {}, "ana", later(1))
    assert [p.page_id for p in store.profiles()] == [PAGE, OTHER]
    assert store.get(OTHER).profile == {}  # type: ignore[union-attr]


def test_applying_then_editing_keeps_what_was_applied(store: PageProfileStore) -> None:
    store.save(PAGE, PROFILE, "admin", NOW)
    answer = {"calls": [{"method": "POST", "fields": ["get_started", "greeting"], "answer": {"result": "success"}}]}
    applied = store.record_success(PAGE, PROFILE, answer, "admin", later(5))
    assert (applied.applied, applied.applied_by, applied.applied_at) == (PROFILE, "admin", later(5))
    assert (applied.last_ok, applied.last_answer, applied.last_attempt_at) == (True, answer, later(5))
    assert not applied.has_unapplied_changes

    edited = store.save(PAGE, CHANGED, "ana", later(10))
    assert (edited.profile, edited.updated_by, edited.updated_at) == (CHANGED, "ana", later(10))
    assert (edited.applied, edited.applied_at, edited.last_ok) == (PROFILE, later(5), True)
    assert edited.has_unapplied_changes


def test_a_failure_keeps_the_applied_profile_and_a_later_success_clears_the_error(store: PageProfileStore) -> None:
    store.save(PAGE, PROFILE, "admin", NOW)
    store.record_success(PAGE, PROFILE, {"calls": []}, "admin", later(1))
    store.save(PAGE, CHANGED, "ana", later(2))
    error = {"calls": [], "error": {"code": 4, "message": "(#4) Application request limit reached", "status": 403}}
    failed = store.record_failure(PAGE, error, "ana", later(3))
    assert (failed.applied, failed.applied_by, failed.applied_at) == (PROFILE, "admin", later(1))
    assert (failed.last_ok, failed.last_answer, failed.last_attempt_by, failed.last_attempt_at) == (
        False, error, "ana", later(3))
    fixed = store.record_success(PAGE, CHANGED, {"calls": []}, "ana", later(4))
    assert (fixed.applied, fixed.last_ok, fixed.last_answer) == (CHANGED, True, {"calls": []})
    assert fixed.to_dict()["has_unapplied_changes"] is False
    assert fixed.to_dict()["applied_at"] == later(4).isoformat()


def test_an_attempt_on_a_page_never_saved_is_refused(store: PageProfileStore) -> None:
    with pytest.raises(UnknownProfile):
        store.record_success(PAGE, PROFILE, {}, "admin", NOW)
    with pytest.raises(UnknownProfile):
        store.record_failure(PAGE, {}, "admin", NOW)
    assert store.get(PAGE) is None


def test_the_schema_is_migrated_once(store: PageProfileStore) -> None:
    assert store.schema_version == 1
