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
