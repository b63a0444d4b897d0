"""A reply with snippet variables through the real stack: the person writes to the page (a signed webhook), the
contacts' sync reads their profile from the Graph API sandbox, an agent sets a field and answers with a snippet
holding `{nombre}`, `{pagina}` (the page's name, asked of the Graph API) and `{campo.ciudad}`: the Send API sandbox
receives the words filled in, not the braces."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from bot.stack import Stack
from handoff.model import conversation_id_of
from sandbox.graph import sandbox_page_name, sandbox_profile
from tests.support.console_client import ConsoleSession
from tests.support.stack import PAGE_ID, Messenger


@pytest.fixture
def agent(stack: Stack) -> Iterator[ConsoleSession]:
    session = ConsoleSession(stack.app_url, "agente")
    yield session
    session.close()


def test_a_reply_with_variables_reaches_the_sandbox_filled(stack: Stack, agent: ConsoleSession) -> None:
    messenger = Messenger(stack)
    user = str(uuid.uuid4().int)[:16]
    conversation_id = conversation_id_of(PAGE_ID, user)
    first_name = sandbox_profile(user)["first_name"]
    try:
        assert messenger.say(user, "quiero hablar con una persona").status_code == 200
        contact_url = f"/api/console/contacts/{PAGE_ID}/{user}"
        messenger.wait_for(lambda: agent.get(contact_url).status_code == 200
                           and agent.get(contact_url).json()["contact"]["first_name"] == first_name,
                           30, "the contact's profile from the sandbox")
        assert agent.send("PATCH", contact_url + "/fields", json={"fields": {"ciudad": "Cuenca"}}).status_code == 200
        messenger.wait_for(lambda: any(c["id"] == conversation_id for c in agent.conversations()), 30, "the pause")
        assert agent.send("PUT", "/api/console/snippets/saludo-variables",
                          json={"text": "Hola {nombre}, soy {agente} de {pagina}. ¿Le enviamos a {campo.ciudad}?"}
                          ).status_code \
            == 200
        reply = agent.post(f"/api/console/conversations/{conversation_id}/reply", json={"text": "/saludo-variables"})
        assert reply.status_code == 201, reply.text
        expected = (f"Hola {first_name}, soy {agent.user['display_name']} de {sandbox_page_name(PAGE_ID)}. "
                    "¿Le enviamos a Cuenca?")
        assert reply.json()["text"] == expected
        messenger.wait_for(lambda: expected in messenger.texts(user), 30, "the filled reply at the sandbox")
        assert not any("{" in text for text in messenger.texts(user))
    finally:
        agent.post(f"/api/console/conversations/{conversation_id}/close", json={"note": "Consulta resuelta"})
        messenger.http.close()
