"""The handoff's half of the satisfaction rule on both databases (a real SQLite file and a PostgreSQL schema of the
test's own): who of the team last wrote to the person between the pause and the close (`agent_of_close`), and the
closes by people, the idle auto-resume known by its reason (`closes_since`). PostgreSQL missing → its half is
skipped (failed with REQUIRE_SERVICES=1)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from handoff.model import Close, PauseReason
from handoff.service import AUTO_RESUME_BY, AUTO_RESUME_REASON, HandoffStore, open_handoff_store
from tests.support.postgres import store_fixture, url_fixture

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)
PAGE, USER, OTHER = "100000000000001", "2000000000000001", "2000000000000002"
CONVERSATION = f"{PAGE}:{USER}"


def later(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


url = url_fixture("handoff")
store = store_fixture(open_handoff_store)


def test_the_agent_of_a_close_is_the_last_one_who_wrote_since_the_pause(store: HandoffStore) -> None:
    store.pause(PAGE, USER, PauseReason.USER_ASKED, "bot", NOW)
    store.record_user_message(PAGE, USER, "ayuda", later(1), later(1))
    assert store.agent_of_close(CONVERSATION, later(2)) is None  # only the person wrote
    store.record_agent_message(CONVERSATION, "ana", "Hola", later(3))
    store.record_agent_message(CONVERSATION, "luis", "Ya está", later(4))
    store.resume(CONVERSATION, "admin", "Resuelto", later(5))
    assert store.agent_of_close(CONVERSATION, later(5)) == "luis"
    assert store.agent_of_close(CONVERSATION, later(3.5)) == "ana"
    # The next pause: nobody of the team wrote in it, and what was written before it does not count.
    store.pause(PAGE, USER, PauseReason.USER_ASKED, "bot", later(10))
    store.resume(CONVERSATION, "admin", None, later(12))
    assert store.agent_of_close(CONVERSATION, later(12)) is None
    store.record_agent_message(CONVERSATION, "ana", "¿Sigue ahí?", later(13))  # after the close
    assert store.agent_of_close(CONVERSATION, later(12)) is None


def test_closes_by_people_not_the_idle_auto_resume(store: HandoffStore) -> None:
    for user in (USER, OTHER):
        store.pause(PAGE, user, PauseReason.USER_ASKED, "bot", NOW)
    store.resume(CONVERSATION, "system", "Atendido", later(5))  # a person, whatever the name
    store.resume(f"{PAGE}:{OTHER}", AUTO_RESUME_BY, "Reanudado", later(6), AUTO_RESUME_REASON)
    assert store.closes_since(NOW) == [Close(CONVERSATION, PAGE, USER, "system", later(5))]
    [*_, idle] = store.log(f"{PAGE}:{OTHER}")
    assert (idle.action, idle.reason) == ("resumed", AUTO_RESUME_REASON)
