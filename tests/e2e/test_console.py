"""The console in a real browser (Debian's Chromium) against the real stack.

An agent: a user asks for a person through a signed webhook; the conversation appears in the open inbox
without a reload; the agent replies (with a snippet); the reply reaches the Send API sandbox as a normal reply;
the user writes again and the bot stays silent while the message shows up live; the agent closes with a note;
the bot answers the next message. An editor: uploads a matrix with an error, sees the row, fixes it,
publishes, and the bot answers from the new version.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import expect

from bot.stack import Stack
from handoff.model import conversation_id_of
from tests.support.stack import PAGE_ID, Messenger

LIVE_TIMEOUT = 30_000


def login(page: Any, stack: Stack, username: str, password: str) -> None:
    page.goto(f"{stack.app_url}/console/login")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")


def requests_to(messenger: Messenger, user: str) -> list[dict[str, Any]]:
    return messenger.http.get(messenger.stack.app_url + "/sandbox/requests", params={"recipient_id": user}).json()


def test_an_agent_answers_a_customer_live_and_gives_the_conversation_back(page: Any, stack: Stack) -> None:
    messenger = Messenger(stack)
    user = f"e2e-{uuid.uuid4().hex[:10]}"
    conversation_id = conversation_id_of(PAGE_ID, user)
    try:
        # A snippet to use from the reply box.
        session = httpx.Client(base_url=stack.app_url)
        csrf = session.post("/api/console/login", json={"username": "agente", "password": "agente-demo"}).json()[
            "csrf_token"]
        session.put("/api/console/snippets/gracias-e2e", json={"text": "Gracias por su paciencia."},
                    headers={"X-CSRF-Token": csrf})
        session.close()

        login(page, stack, "agente", "agente-demo")
        expect(page).to_have_url(f"{stack.app_url}/console/inbox")
        expect(page.locator("#live-status")).to_have_text("En vivo", timeout=LIVE_TIMEOUT)
        page.evaluate("window.__noReload = true")

        # The user asks for a person: the row appears in the open inbox, no reload.
        assert messenger.say(user, "quiero hablar con una persona").status_code == 200
        row = page.locator(f'tr[data-conversation-id="{conversation_id}"]')
        expect(row).to_be_visible(timeout=LIVE_TIMEOUT)
        expect(row).to_contain_text("El cliente pidió hablar con una persona")
        assert page.evaluate("window.__noReload") is True

        row.get_by_role("link").click()
        expect(page.locator("#state-badge")).to_have_text("Chatbot en pausa")
        expect(page.locator("#window")).to_contain_text("RESPONSE")
        expect(page.locator("#live-status")).to_have_text("En vivo", timeout=LIVE_TIMEOUT)

        # A reply with a snippet: "/grac" opens the menu, Enter inserts, Enter sends.
        page.click("#assign-me")
        expect(page.locator("#assigned-to")).to_have_text("agente")
        box = page.locator("#reply-text")
        box.type("Hola. /grac")
        expect(page.locator("#snippet-menu li").first).to_contain_text("/gracias-e2e")
        box.press("Enter")
        expect(box).to_have_value("Hola. Gracias por su paciencia.")
        box.press("Enter")
        expect(box).to_have_value("")
        expect(page.locator(".msg.agent").last).to_contain_text("Hola. Gracias por su paciencia.")
        messenger.wait_for(lambda: "Hola. Gracias por su paciencia." in messenger.texts(user), 30, "the reply")
        sent = next(item["body"] for item in messenger.sent(user)
                    if item["body"].get("message", {}).get("text") == "Hola. Gracias por su paciencia.")
        assert sent["messaging_type"] == "RESPONSE" and "tag" not in sent

        # The user writes again: it shows up live, and the bot says nothing at all.
        before = len(requests_to(messenger, user))
        assert messenger.say(user, "¿me pueden enviar la factura?").status_code == 200
        expect(page.locator(".msg.user").last).to_contain_text("¿me pueden enviar la factura?", timeout=LIVE_TIMEOUT)
        time.sleep(3)
        assert len(requests_to(messenger, user)) == before

        # Close with a note: the bot is back and answers the next message.
        page.fill("#close-note", "Consulta resuelta")
        page.click("#close-button")
        expect(page.locator("#state-badge")).to_have_text("Atiende el chatbot")
        expect(page.locator("#pause-bot")).to_be_visible()
        texts_before = len(messenger.texts(user))
        assert messenger.say(user, "eres un bot?").status_code == 200
        # The close's satisfaction survey (csat/) may reach the customer before or after this answer.
        messenger.wait_for(lambda: "asistente virtual" in " ".join(messenger.texts(user)[texts_before:]).lower(),
                           60, "the bot's answer after the close")

        # "Pausar el Chatbot" on the same conversation hands it back to a person.
        page.click("#pause-bot")
        expect(page.locator("#state-badge")).to_have_text("Chatbot en pausa")
        expect(page.locator("#paused-reason")).to_have_text("Un agente pausó el chatbot")
        page.fill("#close-note", "Prueba")
        page.click("#close-button")
        expect(page.locator("#state-badge")).to_have_text("Atiende el chatbot")
    finally:
        messenger.http.close()


def test_an_editor_cannot_open_conversations(page: Any, stack: Stack) -> None:
    login(page, stack, "editor", "editor-demo")
    expect(page).to_have_url(f"{stack.app_url}/console/knowledge")
    expect(page.get_by_role("link", name="Conversaciones")).to_have_count(0)
    answer = page.goto(f"{stack.app_url}/console/inbox")
    assert answer is not None and answer.status == 403
    expect(page.locator(".alert.error")).to_have_text("Su rol (editor) no tiene permiso para esto.")


def test_wrong_password_is_said_in_spanish(page: Any, stack: Stack) -> None:
    login(page, stack, "agente", "no-es-la-clave")
    expect(page.locator("#login-error")).to_have_text("Usuario o contraseña incorrectos.")


def write_matrix(path: Path, answer: str) -> Path:
    path.write_text(
        "id,preguntas,respuesta\n"
        "horario_e2e,¿Cuál es el horario de atención de la tienda? | ¿A qué hora abren?,"
        "Abrimos de lunes a sábado de 9:00 a 19:00.\n"
        f'envio_galapagos,¿Hacen envíos a Galápagos? | ¿Envían a las islas Galápagos?,"{answer}"\n',
        encoding="utf-8",
    )
    return path


def test_an_editor_fixes_a_matrix_publishes_it_and_the_bot_answers_from_it(
    page: Any, stack: Stack, tmp_path: Path
) -> None:
    login(page, stack, "editor", "editor-demo")
    expect(page).to_have_url(f"{stack.app_url}/console/knowledge")

    # A row without an answer: the report names the row, and the draft cannot be published.
    page.set_input_files("#matrix-file", str(write_matrix(tmp_path / "matriz.csv", "")))
    page.click("#upload-button")
    expect(page.locator("#report-summary")).to_contain_text("1 error", timeout=120_000)
    expect(page.locator("#report-rows tr.error")).to_have_count(1)
    expect(page.locator("#report-rows tr.error")).to_contain_text("Fila 3")
    expect(page.locator("#report-rows tr.error")).to_contain_text("falta la respuesta")
    expect(page.locator("#publish-button")).to_be_disabled()

    # Fixed: valid, tried against the draft, published.
    answer = "Sí, enviamos a Galápagos por Servientrega; llega en 5 a 8 días hábiles."
    page.set_input_files("#matrix-file", str(write_matrix(tmp_path / "matriz.csv", answer)))
    page.click("#upload-button")
    expect(page.locator("#report-summary")).to_contain_text("es válida", timeout=120_000)
    page.fill("#try-question", "hacen envios a galapagos?")
    page.click("#try-form button")
    expect(page.locator("#try-draft")).to_contain_text("Servientrega", timeout=120_000)
    expect(page.locator("#try-live")).not_to_contain_text("Servientrega")
    # A customer's word the matrix does not use, read as the one it does (equivalent words): the editor sees it.
    page.fill("#try-question", "mandan a galapagos?")
    page.click("#try-form button")
    expect(page.locator("#try-draft")).to_contain_text("Leyó «mandan» como «envían».", timeout=120_000)
    expect(page.locator("#try-draft")).to_contain_text("escriba «mandan» en las palabras clave")
    expect(page.locator("#try-draft")).to_contain_text("Servientrega")
    page.click("#publish-button")
    expect(page.locator("#publish-button")).to_have_text("Publicada", timeout=300_000)

    expect(page.locator("#versions li").first).to_contain_text("(publicada)")
    expect(page.locator("#versions li").first).to_contain_text("editor")

    # The bot answers from the new version.
    messenger = Messenger(stack)
    try:
        user = f"e2e-{uuid.uuid4().hex[:10]}"
        assert messenger.say(user, "¿hacen envíos a Galápagos?").status_code == 200
        messenger.wait_for(lambda: any("Servientrega" in text for text in messenger.texts(user)), 90,
                           "the bot's answer from the published matrix")

        # Rolled back: the previous version answers again (and later tests get the demo matrix back).
        published = page.locator("#live-version").inner_text()
        page.click("#rollback-button")
        expect(page.locator("#live-version")).not_to_have_text(published, timeout=30_000)
        other = f"e2e-{uuid.uuid4().hex[:10]}"
        assert messenger.say(other, "¿hacen envíos a Galápagos?").status_code == 200
        messenger.wait_for(lambda: len(messenger.texts(other)) > 0, 90, "the bot's answer after the rollback")
        time.sleep(2)
        assert not any("Servientrega" in text for text in messenger.texts(other))
    finally:
        messenger.http.close()
