"""The conversation view names the contact: the handoff record has no name ("Sin nombre" before), the contact store
has Meta's profile; the view and the page show the contact's name and link to its record, and a conversation without
a contact record still shows (without the link).

Would catch: the console's "Sin nombre" kept when the profile is known, the view failing when the person has no
contact record, a link to a contact page that does not exist."""

from __future__ import annotations

import asyncio

from contacts.store import ContactsStore, open_contacts_store
from handoff.model import PauseReason
from tests.unit.console.conftest import PAGE, ConsoleApp


def seeded_store(console_env: ConsoleApp) -> ContactsStore:
    store = open_contacts_store(console_env.app.state.settings.store_url("contacts"))
    console_env.app.state.contacts = store
    return store


def test_the_conversation_shows_the_contacts_name(console_env: ConsoleApp) -> None:
    store = seeded_store(console_env)
    now = console_env.clock.now
    store.upsert_seen(PAGE, "4321", now)
    store.record_profile(PAGE, "4321", "Rosa", "Quishpe", None, "es_LA", "fetched", None, now)
    console_env.handoff.add_user_message(PAGE, "4321", "hola")
    asyncio.run(console_env.handoff.pause(PAGE, "4321", PauseReason.USER_ASKED, "bot"))
    agent = console_env.login("agente")

    view = agent.get(f"/api/console/conversations/{PAGE}:4321").json()["conversation"]
    assert view["contact_name"] == "Rosa Quishpe"
    assert view["contact"]["url"] == f"/console/contacts/{PAGE}/4321"
    page = agent.get(f"/console/conversations/{PAGE}:4321").text
    assert "Rosa Quishpe" in page and f'href="/console/contacts/{PAGE}/4321"' in page and "Sin nombre" not in page

    # A person without a profile (no permission) keeps "Sin nombre", with the link to the record that says why.
    store.upsert_seen(PAGE, "4322", now)
    console_env.handoff.add_user_message(PAGE, "4322", "hola")
    nameless = agent.get(f"/api/console/conversations/{PAGE}:4322").json()["conversation"]
    assert nameless["contact_name"] is None and nameless["contact"]["url"].endswith("/4322")
    store.close()


def test_a_conversation_without_a_contact_record_still_shows(console_env: ConsoleApp) -> None:
    seeded_store(console_env)
    console_env.handoff.add_user_message(PAGE, "9999", "hola")
    agent = console_env.login("agente")
    view = agent.get(f"/api/console/conversations/{PAGE}:9999").json()["conversation"]
    assert view["contact_name"] is None and view["contact"] is None
    page = agent.get(f"/console/conversations/{PAGE}:9999").text
    assert "Sin nombre" in page and "contact-link" not in page
    console_env.app.state.contacts.close()


def test_the_contact_page_shows_a_picture_from_metas_hosts_only(console_env: ConsoleApp) -> None:
    """Meta's profile picture is shown (its host is the only outside image host the CSP admits); any other URL —
    the sandbox's placeholder, a host that is not Meta's, plain http — is at most a link, never loaded."""
    store = seeded_store(console_env)
    now = console_env.clock.now
    meta_pic = "https://platform-lookaside.fbsbx.com/platform/profilepic/?psid=4321&width=1024&ext=1&hash=Ab"
    store.upsert_seen(PAGE, "4321", now)
    store.record_profile(PAGE, "4321", "Rosa", "Quishpe", meta_pic, "es_LA", "fetched", None, now)
    store.upsert_seen(PAGE, "4322", now)
    store.record_profile(PAGE, "4322", "Luis", None, "https://fotos.example.com/luis.jpg", None, "fetched", None, now)
    store.upsert_seen(PAGE, "4323", now)
    store.record_profile(PAGE, "4323", "Ana", None, "http://scontent.xx.fbcdn.net/a.jpg", None, "fetched", None, now)
    agent = console_env.login("agente")

    shown = agent.get(f"/api/console/contacts/{PAGE}/4321").json()["contact"]
    assert shown["picture_url"] == meta_pic and shown["profile_pic"] == meta_pic
    response = agent.get(f"/console/contacts/{PAGE}/4321")
    assert 'id="contact-picture"' in response.text
    assert 'src="https://platform-lookaside.fbsbx.com/platform/profilepic/?psid=4321&amp;width=1024' in response.text
    assert "img-src 'self' data: https://platform-lookaside.fbsbx.com" in response.headers["content-security-policy"]

    other = agent.get(f"/api/console/contacts/{PAGE}/4322").json()["contact"]
    assert other["picture_url"] is None
    page = agent.get(f"/console/contacts/{PAGE}/4322").text
    assert 'id="contact-picture"' not in page and 'href="https://fotos.example.com/luis.jpg"' in page
    plain_http = agent.get(f"/console/contacts/{PAGE}/4323").text
    assert 'id="contact-picture"' not in plain_http and 'href="http://scontent' not in plain_http
    store.close()
