"""Learning from use in a real browser (Debian's Chromium), without Rasa: the console under uvicorn with the real
answer journal (SQLite), knowledge editor and live matrix (the hashing embedder), and the console's handoff fake.
An agent answers a handed-over customer with «Responder con una entrada» (search, pick, send); an editor finds the
customer's question in «Sugerencias», accepts it, reads the draft's report and publishes it.

Would catch: a picker that does not fill the reply box or whose entry id never reaches the reply (no suggestion), an
accept button that makes no draft or shows no report."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from answers.model import Handling
from answers.service import Answers
from answers.store import open_answers_store
from console.knowledge_editor import MatrixEditor
from knowledge_matrix.embedders import HashingEmbedder
from knowledge_matrix.live import LiveKnowledge
from tests.support.servers import RunningServer, serve_asgi
from tests.unit.console.conftest import PAGE, START, USERS, Clock, console_app

EMBEDDER = HashingEmbedder(256)
MATRIX = ("id,preguntas,respuesta\n"
          "horario,¿A qué hora abren?,Abrimos de lunes a sábado de 9:00 a 19:00.\n"
          "pagos,¿Aceptan tarjeta de crédito? | ¿Puedo pagar con transferencia?,Aceptamos tarjeta y transferencia.\n")
QUESTION = "se puede pagar con deuna"
CONVERSATION = f"{PAGE}:u1"


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    folder: Path = tmp_path_factory.mktemp("learning-e2e")
    clock = Clock(START)
    console = console_app(folder, clock)
    editor = MatrixEditor(folder, clock, embedder=EMBEDDER)
    editor.publish(editor.upload("matriz.csv", MATRIX.encode("utf-8"), "editor").id, "editor")
    answers = Answers(open_answers_store(folder / "answers.sqlite3"),
                      knowledge=LiveKnowledge(folder, embedder_for=lambda _name: EMBEDDER, recheck_seconds=0),
                      embedder=EMBEDDER, secret="secreto-de-prueba")
    console.app.state.knowledge_editor = editor
    console.app.state.answers = answers
    console.handoff.add_user_message(PAGE, "u1", QUESTION, clock() - timedelta(minutes=3))
    answers.record_question(page_id=PAGE, psid="u1", question=QUESTION, handling=Handling.HANDOFF,
                            at=clock() - timedelta(minutes=3), reason="no_match")
    agent = console.login("agente")
    assert agent.post(f"/api/console/conversations/{CONVERSATION}/pause").status_code == 200
    with serve_asgi(console.app) as running:
        yield running
    answers.close()


def log_in(page: Any, server: RunningServer, username: str) -> None:
    page.goto(server.url("/console/login"))
    page.fill("#username", username)
    page.fill("#password", USERS[username][1])
    page.click("button[type=submit]")
    expect(page.locator("#current-user")).to_be_visible()


def test_an_agents_reply_with_an_entry_becomes_a_suggestion_an_editor_publishes(
        browser: Any, console_server: RunningServer) -> None:
    agent_context = browser.new_context()
    page = agent_context.new_page()
    log_in(page, console_server, "agente")
    page.goto(console_server.url(f"/console/conversations/{CONVERSATION}"))
    page.get_by_text("Responder con una entrada").click()
    page.fill("#entry-search", "transferencia")
    page.locator("#entry-results button.use-entry", has_text="pagos").click()
    expect(page.locator("#reply-text")).to_have_value("Aceptamos tarjeta y transferencia.")
    page.click("#reply-send")
    expect(page.locator("#transcript li.agent").last).to_contain_text("Aceptamos tarjeta y transferencia.")
    agent_context.close()

    editor_context = browser.new_context()
    page = editor_context.new_page()
    log_in(page, console_server, "editor")
    page.goto(console_server.url("/console/unanswered"))
    page.get_by_role("link", name="Sugerencias").click()
    row = page.locator("#proposal-rows tr", has=page.locator(f'input.proposal-wording[value="{QUESTION}"]'))
    expect(row.locator("td.people")).to_have_text("1")
    expect(row).to_contain_text("pagos")
    row.get_by_role("button", name="Aceptar").click()
    expect(page.locator("#report-summary")).to_contain_text("Borrador listo")
    expect(page.locator("#report-summary")).to_contain_text("«pagos»")
    page.get_by_role("button", name="Publicar este borrador").click()
    expect(page.locator("#toast")).to_contain_text("Matriz publicada: versión 0002")
    page.reload()
    expect(page.locator("#proposals-empty")).to_be_visible()
    editor_context.close()
