"""Snippet variables through the console's API (in process, the contacts store on SQLite): a reply's `{nombre}` and
`{campo.<clave>}` are filled with the conversation's contact, the preview warns before sending, and a snippet with
an unknown variable is not saved.

Would catch: a reply sent with `{nombre}` as typed or blank without a word to the agent, a snippet saved with a typo
that every later reply would carry, the contact read on every reply (the store away fails only replies that need
it)."""

from __future__ import annotations

import asyncio

from contacts.store import open_contacts_store
from core.postgres import DatabaseUnavailable
from handoff.model import PauseReason
from tests.unit.console.conftest import PAGE, ConsoleApp

PSID = "5555"
CONVERSATION = f"{PAGE}:{PSID}"


def paused_with_contact(env: ConsoleApp, first_name: str | None = "Ánge") -> None:
    store = open_contacts_store(env.app.state.settings.store_url("contacts"))
    env.app.state.contacts = store
    now = env.clock.now
    store.upsert_seen(PAGE, PSID, now)
    store.record_profile(PAGE, PSID, first_name, "Ñúñez", None, "es_LA", "fetched", None, now)
    store.set_fields(PAGE, PSID, {"ciudad": "Loja"}, now)
    env.handoff.add_user_message(PAGE, PSID, "quiero hablar con una persona", at=now)
    asyncio.run(env.handoff.pause(PAGE, PSID, PauseReason.USER_ASKED, "bot"))


def test_a_reply_goes_out_with_the_contacts_values(console_env: ConsoleApp) -> None:
    paused_with_contact(console_env)
    agent = console_env.login("maria")
    assert agent.send("PUT", "/api/console/snippets/saludo",
                      json={"text": "Hola {nombre}, soy {agente}. ¿Sigue en {campo.ciudad|su ciudad}?"}).status_code \
        == 200
    answer = agent.post(f"/api/console/conversations/{CONVERSATION}/reply", json={"text": "/saludo {hola}"})
    assert answer.status_code == 201, answer.text
    assert answer.json()["text"] == "Hola Ánge, soy maria. ¿Sigue en Loja? {hola}"
    assert answer.json()["variables"]["unknown"] == ["hola"]
    assert [sent["text"] for sent in console_env.handoff.sent] == ["Hola Ánge, soy maria. ¿Sigue en Loja? {hola}"]


def test_the_preview_warns_in_spanish_and_sends_nothing(console_env: ConsoleApp) -> None:
    paused_with_contact(console_env, first_name=None)
    agent = console_env.login("maria")
    preview = agent.post(f"/api/console/conversations/{CONVERSATION}/reply/preview",
                         json={"text": "Hola {nombre}, {saludo}"})
    assert preview.status_code == 200
    body = preview.json()
    assert body["text"] == "Hola , {saludo}" and body["empty"] == ["nombre"] and body["unknown"] == ["saludo"]
    assert "«{saludo}» no es una variable" in body["warning_es"] and "«{nombre}» quedó vacía" in body["warning_es"]
    assert console_env.handoff.sent == []
    plain = agent.post(f"/api/console/conversations/{CONVERSATION}/reply/preview", json={"text": "Hola"}).json()
    assert plain["warning_es"] is None and plain["text"] == "Hola"


def test_a_snippet_with_an_unknown_variable_is_refused_by_name(console_env: ConsoleApp) -> None:
    agent = console_env.login("agente")
    refused = agent.send("PUT", "/api/console/snippets/envio",
                         json={"text": "Su pedido a {ciudad} sale hoy, {Nombre}."})
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["reason_code"] == "invalid_snippet" and error["unknown_variables"] == ["ciudad"]
    assert error["message"].startswith("Variables desconocidas: «{ciudad}» (¿quiso decir «{campo.ciudad}»?)")
    assert agent.get("/api/console/snippets").json()["snippets"] == []
    assert agent.send("PUT", "/api/console/snippets/envio",
                      json={"text": "Su pedido a {campo.ciudad} sale hoy, {Nombre}."}).status_code == 200


def test_the_snippets_page_preview_uses_a_sample_contact(console_env: ConsoleApp) -> None:
    agent = console_env.login("maria")
    preview = agent.post("/api/console/snippets/preview", json={"text": "Hola {nombre} {apellido} de {campo.ciudad}, "
                                                                        "le atiende {agente}"}).json()
    assert preview["text"] == "Hola María José Ñáñez de Cuenca, le atiende maria" and preview["warning_es"] is None
    assert preview["sample"]["campos"] == {"ciudad": "Cuenca", "pedido": "A-1024"}
    page = agent.get("/console/snippets").text
    assert "{campo.&lt;clave&gt;}" in page or "{campo.<clave>}" in page


def test_the_contact_is_read_only_when_a_reply_needs_it(console_env: ConsoleApp) -> None:
    class DownStore:
        def get(self, page_id: str, psid: str) -> None:
            raise DatabaseUnavailable("contacts down")

    paused_with_contact(console_env)
    console_env.app.state.contacts = DownStore()
    agent = console_env.login("maria")
    assert agent.post(f"/api/console/conversations/{CONVERSATION}/reply", json={"text": "Hola"}).status_code == 201
    down = agent.post(f"/api/console/conversations/{CONVERSATION}/reply", json={"text": "Hola {nombre}"})
    assert down.status_code == 503 and down.json()["error"]["reason_code"] == "contacts_unavailable"
    assert [sent["text"] for sent in console_env.handoff.sent] == ["Hola"]
