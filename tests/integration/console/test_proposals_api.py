"""Learning from use over the console's JSON API and pages, on real parts: the answer journal on SQLite, the knowledge
editor over `knowledge_matrix.publish` and the live matrix (`LiveKnowledge`, the deterministic hashing embedder), the
console's handoff fake for the reply path.

Two customers tap the same «¿Quisiste decir…?» candidate after asking the same way; an agent finds an entry with
«Responder con una entrada» and replies with it to a customer whose question went unanswered; editors see both as
«Sugerencias» (wording, entry, people, where from), reject one and accept the other, which makes a draft with the
question added; once published the bot answers that wording from the entry. A wording already a question of its
entry, or for an entry no longer live, is not shown. Roles: editors and admins for the suggestions (agents refused),
agents and admins for the entry search (editors refused).

Would catch: a reply with an entry that does not journal the pairing (or journals the agent's words instead of the
customer's question), a suggestion applied without a draft, a rejected pair shown again, the picker's search reaching
editors-only data by another role."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from answers.model import Handling
from answers.service import Answers
from answers.store import open_answers_store
from console.knowledge_editor import MatrixEditor
from knowledge_matrix.embedders import HashingEmbedder
from knowledge_matrix.live import LiveKnowledge
from tests.unit.console.conftest import PAGE, START, Clock, ConsoleApp, console_app

EMBEDDER = HashingEmbedder(256)
MATRIX = ("id,preguntas,respuesta\n"
          "horario,¿A qué hora abren? | ¿Cuál es el horario de atención?,Abrimos de lunes a sábado de 9:00 a 19:00.\n"
          "envios,¿Hacen envíos a Galápagos? | ¿Envían pedidos a provincia?,Sí: enviamos a todo el Ecuador.\n"
          "pagos,¿Aceptan tarjeta de crédito? | ¿Puedo pagar con transferencia?,Aceptamos tarjeta y transferencia.\n")
GALAPAGOS = "mandan pedidos a la isla santa cruz?"
DEUNA = "se puede pagar con deuna"


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
def env(tmp_path: Path, clock: Clock) -> Iterator[tuple[ConsoleApp, Answers, MatrixEditor]]:
    console = console_app(tmp_path, clock)
    editor = MatrixEditor(tmp_path, clock, embedder=EMBEDDER)
    editor.publish(editor.upload("matriz.csv", MATRIX.encode("utf-8"), "editor").id, "editor")
    live = LiveKnowledge(tmp_path, embedder_for=lambda _name: EMBEDDER, recheck_seconds=0)
    answers = Answers(open_answers_store(tmp_path / "answers.sqlite3"), knowledge=live, embedder=EMBEDDER,
                      secret="secreto-de-prueba")
    console.app.state.knowledge_editor = editor
    console.app.state.answers = answers
    yield console, answers, editor
    answers.close()


def ok(answer: Any, status: int = 200) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    return dict(answer.json())


def offered_and_tapped(answers: Answers, psid: str, question: str, entry_id: str, clock: Clock,
                       candidates: tuple[str, ...] = ("envios", "pagos")) -> None:
    answers.record_question(page_id=PAGE, psid=psid, question=question, handling=Handling.DID_YOU_MEAN,
                            at=clock() - timedelta(minutes=5), candidates=candidates)
    answers.record_question(page_id=PAGE, psid=psid, question="¿Hacen envíos a Galápagos?",
                            handling=Handling.SELECTED, at=clock() - timedelta(minutes=4), entry_id=entry_id)


def test_taps_and_agent_replies_become_suggestions_editors_decide(
        env: tuple[ConsoleApp, Answers, MatrixEditor], clock: Clock) -> None:
    console, answers, editor = env
    offered_and_tapped(answers, "p1", GALAPAGOS, "envios", clock)
    offered_and_tapped(answers, "p2", "Mandan pedidos a la isla Santa Cruz", "envios", clock)
    offered_and_tapped(answers, "p3", "¿hacen envios a galapagos?", "envios", clock)  # a question of «envios» already
    offered_and_tapped(answers, "p4", "tienen tienda en quito", "local", clock, ("local",))  # no such entry live

    # The agent: a customer handed over after the bot could not answer; «Responder con una entrada».
    conversation = f"{PAGE}:u1"
    console.handoff.add_user_message(PAGE, "u1", DEUNA, clock() - timedelta(minutes=3))
    answers.record_question(page_id=PAGE, psid="u1", question=DEUNA, handling=Handling.HANDOFF,
                            at=clock() - timedelta(minutes=3), reason="no_match")
    agent = console.login("agente")
    ok(agent.post(f"/api/console/conversations/{conversation}/pause"))
    page = agent.get(f"/console/conversations/{conversation}")
    assert page.status_code == 200 and "Responder con una entrada" in page.text
    found = ok(agent.get("/api/console/entries", params={"q": "transferencia"}))["entries"]
    assert [entry["id"] for entry in found] == ["pagos"]
    assert found[0]["answer"] == "Aceptamos tarjeta y transferencia." and found[0]["question"].startswith("¿Aceptan")
    assert [e["id"] for e in ok(agent.get("/api/console/entries"))["entries"]] == ["horario", "envios", "pagos"]
    assert ok(agent.get("/api/console/entries", params={"q": "galapagos envio"}))["entries"][0]["id"] == "envios"
    assert ok(agent.get("/api/console/entries", params={"q": "zzz"}))["entries"] == []
    sent = ok(agent.post(f"/api/console/conversations/{conversation}/reply", json={
        "text": found[0]["answer"], "entry_id": "pagos", "idempotency_key": "reply-deuna-1"}), 201)
    assert sent["proposal_id"] is not None
    assert console.handoff.sent[-1]["text"] == "Aceptamos tarjeta y transferencia."
    plain = ok(agent.post(f"/api/console/conversations/{conversation}/reply", json={"text": "¿Algo más?"}), 201)
    assert plain["proposal_id"] is None

    user = console.login("editor")
    listed = ok(user.get("/api/console/unanswered/proposals"))["proposals"]
    assert [(p["wording"], p["entry_id"], p["people"], p["sources"]) for p in listed] == [
        (GALAPAGOS, "envios", 2, ["tapped"]), (DEUNA, "pagos", 1, ["agent"])]
    galapagos, deuna = listed
    assert galapagos["entry_question"] == "¿Hacen envíos a Galápagos?" and galapagos["status_es"] == "Por revisar"
    assert "«¿Quisiste decir…?»" in galapagos["sources_es"] and "agente" in deuna["sources_es"]
    listing = user.get("/console/unanswered/proposals")
    assert listing.status_code == 200 and GALAPAGOS in listing.text and 'id="report-card"' in listing.text
    assert "/console/unanswered/proposals" in user.get("/console/unanswered").text  # the tab

    rejected = ok(user.post(f"/api/console/unanswered/proposals/{deuna['id']}/reject"))["proposal"]
    assert (rejected["status"], rejected["decided_by"]) == ("rejected", "editor")
    again = user.post(f"/api/console/unanswered/proposals/{deuna['id']}/reject")
    assert again.status_code == 409 and "ya está rechazada" in again.json()["error"]["message"]
    assert user.post(f"/api/console/unanswered/proposals/{deuna['id']}/accept").status_code == 409

    made = ok(user.post(f"/api/console/unanswered/proposals/{galapagos['id']}/accept",
                        json={"question": "¿Mandan pedidos a la isla Santa Cruz?"}), 201)
    assert made["proposal"]["status"] == "accepted" and made["proposal"]["draft_id"] == made["draft"]["id"]
    assert made["draft"]["ok"] and made["draft"]["made_in_console"] and made["draft"]["entry_count"] == 3
    assert ok(user.get("/api/console/unanswered/proposals"))["proposals"] == [], "decided: not proposed again"
    assert editor.try_question(GALAPAGOS, None).live is not None  # nothing changed before the publish
    published = ok(user.post("/api/console/knowledge/publish", json={"draft_id": made["draft"]["id"]}))
    assert published["version"]["id"] == "0002" and published["resolved_group_id"] is None
    tried = editor.try_question("¿Mandan pedidos a la isla Santa Cruz?", None).live
    assert tried is not None and (tried.outcome, tried.entry_id) == ("answer", "envios")
    accepted = ok(user.get("/api/console/unanswered/proposals", params={"status": "accepted"}))["proposals"]
    assert [(p["id"], p["decided_by"]) for p in accepted] == [(galapagos["id"], "editor")]
    assert [p["id"] for p in ok(user.get("/api/console/unanswered/proposals",
                                          params={"status": "rejected"}))["proposals"]] == [deuna["id"]]

    # The same customer's reply again under the same key is one message: nothing journaled twice.
    repeated = ok(agent.post(f"/api/console/conversations/{conversation}/reply", json={
        "text": found[0]["answer"], "entry_id": "pagos", "idempotency_key": "reply-deuna-1"}))
    assert repeated["repeated"] and repeated["proposal_id"] is None


def test_who_may_call_and_bad_requests(env: tuple[ConsoleApp, Answers, MatrixEditor], clock: Clock) -> None:
    console, answers, _editor = env
    offered_and_tapped(answers, "p1", GALAPAGOS, "envios", clock)
    agent = console.login("agente")
    assert agent.get("/api/console/unanswered/proposals").status_code == 403
    assert agent.get("/console/unanswered/proposals").status_code == 403
    assert agent.post("/api/console/unanswered/proposals/1/reject").status_code == 403
    editor = console.login("editor")
    assert editor.get("/api/console/entries").status_code == 403
    admin = console.login("admin")
    assert admin.get("/api/console/entries", params={"q": "horario"}).status_code == 200
    token = {"Authorization": f"Bearer {console.app.state.settings.service_token}"}
    assert console.anonymous().get("/api/console/unanswered/proposals", headers=token).status_code == 200
    assert console.anonymous().get("/api/console/entries", headers=token).status_code in (401, 403)

    missing = editor.post("/api/console/unanswered/proposals/999999/accept")
    assert missing.status_code == 404 and "no existe" in missing.json()["error"]["message"]
    assert editor.get("/api/console/unanswered/proposals", params={"status": "todas"}).status_code == 422
    assert editor.post("/api/console/unanswered/proposals/0/reject").status_code == 422
    [proposal] = ok(editor.get("/api/console/unanswered/proposals"))["proposals"]
    empty = editor.post(f"/api/console/unanswered/proposals/{proposal['id']}/accept", json={"question": "|"})
    assert empty.status_code == 422 and "Escriba la pregunta" in empty.json()["error"]["message"]
    assert ok(editor.get("/api/console/unanswered/proposals"))["proposals"][0]["status"] == "open", "no draft: open"
