"""The inbox of every conversation (`/api/console/inbox`, `/console/inbox?estado=`) through the console as the app
mounts it, with the real console and contacts stores (SQLite files) and the handoff fake that passes the handoff's
contract suite: state filters (bot, paused, mine, unassigned, closed) joined with the contacts' filters, pages that
never repeat a row even when someone writes between two pages, unread until an agent opens the conversation and
again when the person writes after, editors refused, any query string a 4xx at worst (Hypothesis), and the page's
default still the paused list.

Would catch: a paused conversation listed under "bot", a closed one under "paused", a cursor that shows a person
twice after they wrote again, an unread mark the service token clears, a bad `state` or cursor answered with a 500."""

from __future__ import annotations

import asyncio
import base64
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contacts.store import ContactsStore
from core.settings import DEMO_SERVICE_TOKEN, SANDBOX_PAGE_ID
from handoff.model import PauseReason
from tests.unit.console.conftest import Clock, ConsoleApp

PAGE = SANDBOX_PAGE_ID
API = "/api/console/inbox"


def seed(console: ConsoleApp, contacts: ContactsStore, clock: Clock) -> None:
    """Five people, 1001 wrote last: 1001 and 1002 paused (1002 assigned to agente), 1003 paused and closed, 1004 and
    1005 only ever talked to the bot; 1005 tagged VIP, from an m.me link; 1004 wrote three days ago."""
    now = clock()
    for psid, hours_ago in (("1005", 5), ("1004", 72), ("1003", 3), ("1002", 2), ("1001", 1)):
        contacts.upsert_seen(PAGE, psid, now - timedelta(hours=hours_ago), campaign="menu" if psid == "1005" else None)
    contacts.record_profile(PAGE, "1001", "Andrés", "Pazmiño", None, "es_LA", "fetched", None, now)
    contacts.add_tags(PAGE, "1005", ["Cliente VIP"], now)
    handoff = console.handoff
    for psid in ("1001", "1002", "1003"):
        console.handoff.add_user_message(PAGE, psid, "hola")
    run(handoff.pause(PAGE, "1001", PauseReason.USER_ASKED, "bot"))
    run(handoff.pause(PAGE, "1002", PauseReason.BOT_FAILED, "bot"))
    run(handoff.assign(f"{PAGE}:1002", "agente"))
    run(handoff.pause(PAGE, "1003", PauseReason.USER_ASKED, "bot"))
    run(handoff.resume(f"{PAGE}:1003", "agente", "Consulta resuelta"))


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def ids(answer: Any) -> list[str]:
    assert answer.status_code == 200, answer.text
    return [row["user_id"] for row in answer.json()["conversations"]]


def test_state_filters_join_the_handoff_with_the_contacts(
        inbox_env: tuple[ConsoleApp, ContactsStore], clock: Clock) -> None:
    console, contacts = inbox_env
    seed(console, contacts, clock)
    agent = console.login("agente")
    assert ids(agent.get(API)) == ["1001", "1002", "1003", "1005", "1004"]  # newest last message first
    assert ids(agent.get(API, params={"state": "paused"})) == ["1001", "1002"]
    assert ids(agent.get(API, params={"state": "mine"})) == ["1002"]
    assert ids(agent.get(API, params={"state": "unassigned"})) == ["1001"]
    assert ids(agent.get(API, params={"state": "closed"})) == ["1003"]
    assert ids(agent.get(API, params={"state": "bot"})) == ["1003", "1005", "1004"]
    assert ids(console.login("maria").get(API, params={"state": "mine"})) == []
    assert ids(agent.get(API, params={"state": "bot", "tag": "cliente vip"})) == ["1005"]
    assert ids(agent.get(API, params={"campaign": "menu"})) == ["1005"]
    assert ids(agent.get(API, params={"q": "andres"})) == ["1001"]
    assert "1004" not in ids(agent.get(API, params={"window_open": "true"}))

    rows = {row["user_id"]: row for row in agent.get(API).json()["conversations"]}
    assert (rows["1001"]["state"], rows["1001"]["contact_name"]) == ("paused", "Andrés Pazmiño")
    assert rows["1001"]["paused_reason_es"] == "El cliente pidió hablar con una persona"
    assert (rows["1002"]["assigned_to"], rows["1003"]["closed"], rows["1003"]["state"]) == ("agente", True, "bot")
    assert rows["1005"]["state_es"] == "Atiende el chatbot" and rows["1005"]["tags"] == ["Cliente VIP"]
    assert rows["1001"]["url"] == f"/console/conversations/{PAGE}:1001"


def test_pages_never_repeat_a_row_even_when_someone_writes_between_them(
        inbox_env: tuple[ConsoleApp, ContactsStore], clock: Clock) -> None:
    console, contacts = inbox_env
    seed(console, contacts, clock)
    agent = console.login("agente")
    first = agent.get(API, params={"limit": 2}).json()
    assert [r["user_id"] for r in first["conversations"]] == ["1001", "1002"] and first["total"] == 5
    contacts.upsert_seen(PAGE, "1004", clock() + timedelta(minutes=1))  # an unseen row moves above the first page
    contacts.upsert_seen(PAGE, "1002", clock() + timedelta(minutes=2))  # a seen one too
    seen = [r["user_id"] for r in first["conversations"]]
    cursor = first["next_cursor"]
    while cursor:
        page = agent.get(API, params={"limit": 2, "cursor": cursor}).json()
        seen += [r["user_id"] for r in page["conversations"]]
        cursor = page["next_cursor"]
    assert seen == ["1001", "1002", "1003", "1005"]  # 1004 is back on top of the first page, none twice
    assert ids(agent.get(API, params={"limit": 2}))[:2] == ["1002", "1004"]


def test_unread_until_an_agent_opens_it_and_again_when_the_person_writes(
        inbox_env: tuple[ConsoleApp, ContactsStore], clock: Clock) -> None:
    console, contacts = inbox_env
    seed(console, contacts, clock)
    agent = console.login("agente")

    def unread() -> dict[str, bool]:
        answer = agent.get(API, params={"state": "paused"}).json()
        assert answer["unread"] == sum(r["unread"] for r in answer["conversations"])
        return {r["user_id"]: r["unread"] for r in answer["conversations"]}

    assert unread() == {"1001": True, "1002": True}
    service = console.anonymous()
    assert service.get(f"/api/console/conversations/{PAGE}:1001",
                       headers={"Authorization": f"Bearer {DEMO_SERVICE_TOKEN}"}).status_code == 200
    assert unread()["1001"] is True  # a program reading it is not an agent reading it
    clock.advance(seconds=5)
    assert agent.get(f"/api/console/conversations/{PAGE}:1001").status_code == 200
    assert unread() == {"1001": False, "1002": True}
    clock.advance(seconds=5)
    assert console.login("maria").get(f"/console/conversations/{PAGE}:1002").status_code == 200  # any agent's look
    assert unread() == {"1001": False, "1002": False}
    contacts.upsert_seen(PAGE, "1001", clock() + timedelta(seconds=1))
    assert unread()["1001"] is True


def test_the_page_keeps_the_paused_list_by_default_and_filters_on_request(
        inbox_env: tuple[ConsoleApp, ContactsStore], clock: Clock) -> None:
    console, contacts = inbox_env
    seed(console, contacts, clock)
    agent = console.login("agente")
    default = agent.get("/console/inbox")
    assert default.status_code == 200
    assert 'id="inbox-rows"' in default.text and 'id="inbox-all-rows"' not in default.text
    everyone = agent.get("/console/inbox", params={"estado": "bot", "q": "1005"})
    assert everyone.status_code == 200 and 'id="inbox-all-rows"' in everyone.text
    assert f'data-conversation-id="{PAGE}:1005"' in everyone.text
    assert f'data-conversation-id="{PAGE}:1001"' not in everyone.text
    bad = agent.get("/console/inbox", params={"estado": "nada"})
    assert bad.status_code == 422 and "filtro de estado" in bad.text


def test_roles_editors_are_refused_and_the_service_token_reads(inbox_env: tuple[ConsoleApp, ContactsStore]) -> None:
    console, _ = inbox_env
    assert console.login("editor").get(API).status_code == 403
    assert console.anonymous().get(API).status_code == 401
    service = console.anonymous().get(API, headers={"Authorization": f"Bearer {DEMO_SERVICE_TOKEN}"})
    assert service.status_code == 200 and service.json()["conversations"] == []


@pytest.mark.parametrize("at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-11-30T15:00:00"])
def test_a_forged_cursor_with_a_date_out_of_range_is_a_spanish_422(inbox_env: tuple[ConsoleApp, ContactsStore],
                                                                   at: str) -> None:
    console, _ = inbox_env
    cursor = base64.urlsafe_b64encode(f"i1:{at}|5".encode()).decode("ascii").rstrip("=")
    for url, params in ((API, {"cursor": cursor}), ("/console/inbox", {"estado": "all", "cursor": cursor})):
        answer = console.login("agente").get(url, params=params)
        assert answer.status_code == 422, (url, answer.status_code, answer.text[:300])
        assert "cursor" in answer.text and "no es válido" in answer.text


def test_the_console_stores_old_read_marks_are_copied_to_the_contacts_once(
        inbox_env: tuple[ConsoleApp, ContactsStore], clock: Clock) -> None:
    """Looks saved in the console store before they lived on the contacts still count after the upgrade; a newer
    look on the contact is never replaced by an older copied one, and the copy runs once."""
    console, contacts = inbox_env
    seed(console, contacts, clock)
    store = console.app.state.console_auth.store
    store.mark_read(f"{PAGE}:1001", "agente", clock(), 1)  # after 1001's last message: read
    store.mark_read(f"{PAGE}:1002", "agente", clock() - timedelta(hours=3), 1)  # before 1002's: still unread
    store.mark_read(f"{PAGE}:1005", "agente", clock() - timedelta(days=9), 1)  # older than the contact's own look
    store.mark_read("no-es-una-conversacion", "agente", clock(), 1)
    contacts.mark_read(PAGE, "1005", clock(), 1)
    agent = console.login("agente")
    body = agent.get(API).json()
    assert {r["user_id"]: r["unread"] for r in body["conversations"]} == {
        "1001": False, "1002": True, "1003": True, "1005": False, "1004": True}
    assert body["unread_conversations"] == 3
    assert contacts.require(PAGE, "1005").read_at == clock()
    store.mark_read(f"{PAGE}:1002", "agente", clock(), 1)  # the console store is no longer read
    console.app.state.inbox_reads_copied = False  # a new process: the contacts store says it is done
    assert agent.get(API).json()["unread_conversations"] == 3


QUERY_VALUES = st.one_of(st.text(max_size=60), st.sampled_from(["", "all", "bot", "paused", "mine", "closed", "0",
                                                                 "-1", "201", "true", "zz==", "\x00", "\ud800"]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(params=st.dictionaries(st.sampled_from(["state", "q", "tag", "campaign", "window_open", "page_id", "limit",
                                               "cursor", "estado", "ventana"]), QUERY_VALUES, max_size=5))
def test_any_query_string_is_answered_never_a_500(inbox_env: tuple[ConsoleApp, ContactsStore],
                                                   params: dict[str, str]) -> None:
    console, _ = inbox_env
    agent = console.login("agente")
    clean = {k: v.encode("utf-8", "replace").decode("utf-8") for k, v in params.items()}
    for url in (API, "/console/inbox"):
        answer = agent.get(url, params=clean)
        assert answer.status_code in (200, 422), (url, clean, answer.status_code, answer.text[:300])
        if answer.status_code == 422 and url == API:
            assert answer.json()["error"]["message"]
