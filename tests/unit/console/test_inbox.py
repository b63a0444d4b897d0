"""Unread counts and the last message in the inbox (`GET /api/console/inbox`, `/console/inbox?estado=`), through the
console as the app mounts it with real console and contacts stores (SQLite files): each row's `unread_count` (all of
them when never opened, the ones since the last look, 0 once read, 1 for a look from before the counter), the
filter's `unread_conversations` over every page (not this page's), the last message's text shown and searched, and
the contacts' tags and last message in the API and its OpenAPI schema.

Would catch: an unread count that ignores the look's count, `unread_conversations` counted on one page of rows, a
look by the service token that clears the count, a row without the last text, a page that hides the count."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from console.inbox import unread_count
from contacts.model import Contact
from contacts.store import ContactsStore
from core.settings import DEMO_SERVICE_TOKEN, SANDBOX_PAGE_ID
from tests.unit.console.conftest import Clock, ConsoleApp

PAGE = SANDBOX_PAGE_ID
API = "/api/console/inbox"
T0 = datetime(2026, 11, 30, 15, 0, tzinfo=timezone.utc)


def write(console: ConsoleApp, contacts: ContactsStore, psid: str, at: datetime, text: str | None,
          count: int) -> None:
    """What the contacts' sync does when the outbox has recorded the person's `count`-th message (and the
    conversation's transcript, for the agent to open it)."""
    contacts.upsert_seen(PAGE, psid, at, None, text, count)
    console.handoff.add_user_message(PAGE, psid, text or "(foto)")


def test_unread_count_is_the_messages_since_the_last_look() -> None:
    at = T0

    def unread(last: datetime | None, count: int, read_at: datetime | None = None,
               read_count: int | None = None) -> int:
        contact = Contact(page_id=PAGE, psid="1001", first_seen_at=T0, last_user_message_at=last, message_count=count,
                          read_at=read_at, read_message_count=read_count)
        assert contact.is_unread == (unread_count(contact) > 0)
        return unread_count(contact)

    assert unread(None, 0) == 0  # never wrote
    assert unread(at, 3) == 3  # never opened: all of them
    assert unread(at, 0) == 1  # a contact from before the counter
    assert unread(at, 5, at + timedelta(seconds=1), 2) == 0  # read after the last one
    assert unread(at, 5, at, 5) == 0  # read at the very time of it
    assert unread(at, 5, at - timedelta(seconds=1), 2) == 3
    assert unread(at, 5, at - timedelta(seconds=1), None) == 1  # a look from before the counter
    assert unread(at, 5, at - timedelta(seconds=1), 5) == 1  # the counter lagged the look


def test_rows_count_unread_messages_and_the_filter_counts_unread_conversations(
        inbox_env: tuple[ConsoleApp, ContactsStore], clock: Clock) -> None:
    console, contacts = inbox_env
    now = clock()
    write(console, contacts, "1001", now - timedelta(minutes=9), "¿Tienen mesas para el sábado?", 3)
    write(console, contacts, "1002", now - timedelta(minutes=8), "hola", 1)
    write(console, contacts, "1003", now - timedelta(minutes=7), "quiero el menú", 2)
    contacts.add_tags(PAGE, "1003", ["VIP"], now)
    agent = console.login("agente")

    def rows(**params: object) -> tuple[dict[str, dict[str, object]], dict[str, object]]:
        answer = agent.get(API, params=params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        return {row["user_id"]: row for row in body["conversations"]}, body

    found, body = rows()
    assert {psid: row["unread_count"] for psid, row in found.items()} == {"1001": 3, "1002": 1, "1003": 2}
    assert found["1001"]["last_message_text"] == "¿Tienen mesas para el sábado?"
    assert found["1001"]["message_count"] == 3
    assert body["unread_conversations"] == 3

    clock.advance(seconds=5)
    assert agent.get(f"/api/console/conversations/{PAGE}:1001").status_code == 200
    service = console.anonymous()
    assert service.get(f"/api/console/conversations/{PAGE}:1002",
                       headers={"Authorization": f"Bearer {DEMO_SERVICE_TOKEN}"}).status_code == 200  # not a look
    found, body = rows()
    assert {psid: row["unread_count"] for psid, row in found.items()} == {"1001": 0, "1002": 1, "1003": 2}
    assert body["unread_conversations"] == 2

    clock.advance(seconds=5)
    write(console, contacts, "1001", clock(), "¿y para 6 personas?", 4)
    write(console, contacts, "1001", clock() + timedelta(seconds=1), "gracias", 5)
    found, body = rows()
    assert found["1001"]["unread_count"] == 2 and found["1001"]["last_message_text"] == "gracias"
    assert body["unread_conversations"] == 3

    _, paged = rows(limit=1)  # over every page, not the rows shown
    assert len(paged["conversations"]) == 1 and paged["unread_conversations"] == 3 and paged["unread"] == 1
    assert rows(tag="vip")[1]["unread_conversations"] == 1
    assert list(rows(q="MESAS para el SABADO")[0]) == []  # the search follows the newest text
    assert list(rows(q="gracias")[0]) == ["1001"]
    assert list(rows(q="menu")[0]) == ["1003"]
    assert rows(state="paused")[1]["unread_conversations"] == 0  # nobody paused: an empty filter


def test_the_page_shows_the_unread_count_and_the_last_message(
        inbox_env: tuple[ConsoleApp, ContactsStore], clock: Clock) -> None:
    console, contacts = inbox_env
    write(console, contacts, "1001", clock() - timedelta(minutes=1), "Quiero reservar <b>mesa</b>", 4)
    page = console.login("agente").get("/console/inbox", params={"estado": "all"})
    assert page.status_code == 200, page.text
    html = page.text
    assert "Quiero reservar &lt;b&gt;mesa&lt;/b&gt;" in html  # escaped
    assert "4 sin leer" in html
    assert "1 conversación con mensajes sin leer" in html


def test_contacts_show_their_tags_and_last_message_in_the_api_and_its_schema(
        inbox_env: tuple[ConsoleApp, ContactsStore], clock: Clock) -> None:
    console, contacts = inbox_env
    write(console, contacts, "1001", clock(), "hola", 2)
    contacts.add_tags(PAGE, "1001", ["Cliente VIP"], clock())
    agent = console.login("agente")
    contact = agent.get(f"/api/console/contacts/{PAGE}/1001").json()["contact"]
    assert (contact["tags"], contact["last_text"], contact["message_count"]) == (["Cliente VIP"], "hola", 2)
    assert agent.get("/api/console/tags").json() == {"tags": [{"tag": "Cliente VIP", "count": 1}]}
    page = agent.get(f"/console/contacts/{PAGE}/1001")
    assert page.status_code == 200 and "«hola»" in page.text and 'id="contact-message-count">2<' in page.text
    listed = agent.get("/console/contacts", params={"q": "HOLA"})
    assert listed.status_code == 200 and 'class="muted last-message">hola<' in listed.text
    schema = console.app.openapi()
    assert "get" in schema["paths"]["/api/console/tags"]
    for path in ("/api/console/contacts/{page_id}/{psid}/tags", "/api/console/contacts/{page_id}/{psid}/tags/remove"):
        assert "post" in schema["paths"][path]
    models = schema["components"]["schemas"]
    assert {"tag", "count"} <= set(models["TagCountOut"]["properties"])
    assert {"tags", "last_text", "message_count"} <= set(models["ContactOut"]["properties"])
    assert {"unread_count", "last_message_text"} <= set(models["InboxRow"]["properties"])
    assert "unread_conversations" in models["InboxOut"]["properties"]
