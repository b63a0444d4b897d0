"""Close → ask → answer → shown, in the app as it runs: an agent writes to the person, someone closes the
conversation through the internal API (`/internal/handoff/resume`), the app asks the person through the outbox (Meta's
template, within the window), the answer arrives as the connector posts it from the ingest journal
(`/internal/csat/answer`: Meta's `messaging_feedback` read by meta.events, the body connectors.handoff builds), and the
rating is stored for the conversation and the agent who wrote.
Rasa's tracker API is a fake (this test is about the app); the rest is the real app on SQLite."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bot.app import create_app
from connectors.handoff import feedback_body
from core.settings import DEMO_SERVICE_TOKEN, SANDBOX_PAGE_ID, Settings
from csat.model import AskStatus, question_id_of
from meta.delivery import judge_delivery
from meta.events import parse_messaging_item
from meta.signature import SIGNATURE_HEADER
from sandbox import simulate

PAGE, USER = "100000000000001", "2000000000000001"
SERVICE = {"Authorization": f"Bearer {DEMO_SERVICE_TOKEN}"}


class FakeRasa:
    def __init__(self) -> None:
        self.appended: list[dict[str, Any]] = []

    async def append_events(self, user_id: str, events: list[dict[str, Any]]) -> None:
        self.appended.extend(events)

    async def tracker(self, user_id: str) -> dict[str, Any]:
        return {"events": []}

    async def close(self) -> None:
        return None


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(data_dir=tmp_path, page_tokens={PAGE: "token"}, csat_privacy_url="https://tienda.ec/privacidad")
    app = create_app(settings)
    with TestClient(app) as running:
        app.state.handoff.rasa = FakeRasa()
        yield running


def wait_for(check: Any, timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_a_close_asks_and_the_answer_is_stored_for_the_agent(client: TestClient) -> None:
    app: Any = client.app
    assert client.portal is not None
    client.portal.call(app.state.outbox.record_user_message, PAGE, USER, datetime.now(timezone.utc), "ayuda")
    paused = client.post("/internal/handoff/pause", headers=SERVICE,
                         json={"page_id": PAGE, "user_id": USER, "reason": "user_asked", "paused_by": "bot"})
    assert paused.status_code == 200, paused.text
    conversation_id = paused.json()["conversation"]["id"]
    client.portal.call(app.state.handoff.reply_as_agent, conversation_id, "ana", "Hola, le ayudo con su pedido")
    # Luis (an admin clearing the list) closes it: ana, who wrote, is the agent rated.
    closed = client.post("/internal/handoff/resume", headers=SERVICE,
                         json={"conversation_id": conversation_id, "by": "luis", "closing_note": "Resuelto"})
    assert closed.status_code == 200, closed.text

    def asked() -> Any:
        asks = client.portal.call(app.state.csat.of_conversation, conversation_id)  # type: ignore[union-attr]
        return asks if asks and asks[0].status is not AskStatus.ASKING else None

    [ask] = wait_for(asked)
    assert (ask.status, ask.agent, ask.closed_by, ask.tag) == (AskStatus.SENT, "ana", "luis", None)
    message = client.portal.call(app.state.outbox.get, ask.outbox_id)
    assert message.message["attachment"]["payload"]["feedback_screens"][0]["questions"][0]["id"] == (
        question_id_of(ask.id))

    event = parse_messaging_item(simulate.feedback(PAGE, USER, question_id_of(ask.id), 4, "Muy amable"), PAGE)
    answered = client.post("/internal/csat/answer", headers=SERVICE, json=feedback_body(event))
    assert answered.status_code == 200 and answered.json()["recorded"] is True
    again = client.post("/internal/csat/answer", headers=SERVICE, json=feedback_body(event))  # Meta redelivers
    assert again.status_code == 200 and again.json()["recorded"] is False
    [stored] = client.portal.call(app.state.csat.of_conversation, conversation_id)
    assert (stored.status, stored.rating, stored.comment) == (AskStatus.ANSWERED, 4, "Muy amable")
    [agent] = client.portal.call(app.state.csat.agent_satisfaction)
    assert (agent.agent, agent.average) == ("ana", 4.0)

    # The console shows it: the conversation's rating to agents, each agent's average to admins.
    app.state.console_auth.add_user("ines", "admin", "ines-clave-segura-1")
    login = client.post("/api/console/login", json={"username": "ines", "password": "ines-clave-segura-1"})
    assert login.status_code == 200, login.text
    page = client.get(f"/console/conversations/{conversation_id}")
    assert page.status_code == 200 and "★★★★☆" in page.text and "«Muy amable»" in page.text
    assert "Cerrada por ana el" in page.text and "Resuelta por el chatbot" not in page.text
    api = client.get(f"/api/console/conversations/{conversation_id}").json()["conversation"]["satisfaction"]
    assert [(row["rating"], row["agent"], row["status"]) for row in api] == [(4, "ana", "answered")]
    inbox = client.get("/console/inbox")
    assert inbox.status_code == 200 and 'data-agent="ana"><td>ana</td><td>1</td><td>1</td><td>4.0</td>' in inbox.text


def test_the_answer_endpoint_refuses_bad_bodies_with_4xx(client: TestClient) -> None:
    assert client.post("/internal/csat/answer", json={}).status_code in (401, 403)
    bad = client.post("/internal/csat/answer", headers=SERVICE, json={"page_id": PAGE, "via": "carta"})
    assert bad.status_code == 422
    far = {"page_id": PAGE, "user_id": USER, "event_key": "k", "timestamp_ms": 2**53, "via": "quick_replies",
           "answers": [{"type": "csat", "payload": "5"}]}
    assert client.post("/internal/csat/answer", headers=SERVICE, json=far).json() == {"recorded": False, "ask": None}


def test_a_close_with_no_window_is_recorded_not_sent_and_shown_with_the_reason(client: TestClient) -> None:
    app: Any = client.app
    assert client.portal is not None
    # The person never wrote (or wrote more than 7 days ago): the policy refuses the survey. Someone wrote to them
    # from the Page inbox (the echo pauses the conversation with its text).
    paused = client.post("/internal/handoff/pause", headers=SERVICE,
                         json={"page_id": PAGE, "user_id": USER, "reason": "agent_took_over",
                               "paused_by": "page_inbox", "text": "Hola, ¿en qué le ayudo?"})
    conversation_id = paused.json()["conversation"]["id"]
    client.post("/internal/handoff/resume", headers=SERVICE,
                json={"conversation_id": conversation_id, "by": "luis", "closing_note": "Sin respuesta"})

    def decided() -> Any:
        asks = client.portal.call(app.state.csat.of_conversation, conversation_id)  # type: ignore[union-attr]
        return asks if asks and asks[0].status is not AskStatus.ASKING else None

    [ask] = wait_for(decided)
    assert ask.status is AskStatus.NOT_SENT and ask.outbox_id is None and ask.reason_code and ask.reason_es
    app.state.console_auth.add_user("pedro", "agent", "pedro-clave-segura-1")
    assert client.post("/api/console/login",
                       json={"username": "pedro", "password": "pedro-clave-segura-1"}).status_code == 200
    page = client.get(f"/console/conversations/{conversation_id}").text
    assert "Encuesta no enviada: " + ask.reason_es in page.replace("&#39;", "'").replace("&quot;", '"')
    inbox = client.get("/console/inbox").text
    assert "<h2>Satisfacción</h2>" not in inbox  # agents do not see the agents' averages


def test_the_live_listener_asks_only_after_someone_of_the_team_wrote(client: TestClient) -> None:
    """A close where nobody wrote (the bot paused, an admin cleared it) and the idle auto-resume ask nothing; the
    listener handles the closes in order, so once the last one's survey is out the earlier ones were decided."""
    app: Any = client.app
    assert client.portal is not None
    now = datetime.now(timezone.utc)
    silent, idle, helped = "2000000000000011", "2000000000000012", "2000000000000013"

    def paused(user: str) -> None:
        client.portal.call(app.state.outbox.record_user_message, PAGE, user, now, "ayuda")  # type: ignore[union-attr]
        client.post("/internal/handoff/pause", headers=SERVICE,
                    json={"page_id": PAGE, "user_id": user, "reason": "user_asked", "paused_by": "bot"})

    paused(silent)
    paused(idle)
    client.portal.call(app.state.handoff.reply_as_agent, f"{PAGE}:{idle}", "ana", "Un momento, por favor")
    client.post("/internal/handoff/resume", headers=SERVICE,
                json={"conversation_id": f"{PAGE}:{silent}", "by": "luis", "closing_note": "Limpieza"})
    [resumed] = client.portal.call(app.state.handoff.resume_idle, now + timedelta(days=1))  # nobody came back
    assert resumed.user_id == idle
    paused(helped)
    client.portal.call(app.state.handoff.reply_as_agent, f"{PAGE}:{helped}", "ana", "Ya está listo su pedido")
    client.post("/internal/handoff/resume", headers=SERVICE,
                json={"conversation_id": f"{PAGE}:{helped}", "by": "ana", "closing_note": "Listo"})

    def asked() -> Any:
        asks = client.portal.call(app.state.csat.of_conversation, f"{PAGE}:{helped}")  # type: ignore[union-attr]
        return asks if asks and asks[0].status is not AskStatus.ASKING else None

    [ask] = wait_for(asked)
    assert (ask.agent, ask.status) == ("ana", AskStatus.SENT)
    for user in (silent, idle):
        assert client.portal.call(app.state.csat.of_conversation, f"{PAGE}:{user}") == []


class FakeWebhook:
    """The webhook process's door, for the sandbox's deliveries: keeps each body and its signature header."""

    def __init__(self) -> None:
        deliveries: list[tuple[bytes, str | None]] = []
        self.deliveries = deliveries

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                return None

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                deliveries.append((raw, self.headers.get(SIGNATURE_HEADER)))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"EVENT_RECEIVED")

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_sandbox_answers_the_survey_as_meta_does(tmp_path: Path) -> None:
    """`make run`'s path: the sandbox signs the person's answer as Meta's `messaging_feedback` (for their open survey
    when no question id is given), the webhook's own checks accept it, and the connector's body records it."""
    webhook = FakeWebhook()
    settings = Settings(data_dir=tmp_path, webhook_port=webhook.port, csat_privacy_url="https://tienda.ec/privacidad")
    app = create_app(settings)
    user = "sandbox-person"
    try:
        with TestClient(app) as client:
            assert client.portal is not None
            assert client.post("/sandbox/feedback", json={"user_id": user, "score": 5}).status_code == 404
            now = datetime.now(timezone.utc)
            client.portal.call(app.state.outbox.record_user_message, SANDBOX_PAGE_ID, user, now, "hola")
            ask = client.portal.call(app.state.csat.ask_after_close, f"{SANDBOX_PAGE_ID}:{user}", SANDBOX_PAGE_ID,
                                     user, "ana", now)
            answered = client.post("/sandbox/feedback", json={"user_id": user, "score": 5, "text": "Gracias"})
            assert answered.status_code == 200 and answered.json() == {"webhook_status": 200,
                                                                       "question_id": question_id_of(ask.id)}
            [(raw, signature)] = webhook.deliveries
            verdict = judge_delivery(raw, signature, settings.app_secret)
            assert verdict.accepted, verdict.error
            [event] = verdict.events
            recorded = client.post("/internal/csat/answer", headers=SERVICE, json=feedback_body(event))
            assert recorded.json()["ask"]["rating"] == 5 and recorded.json()["ask"]["comment"] == "Gracias"
            assert client.post("/sandbox/feedback", json={"user_id": user, "score": 9}).status_code == 422
    finally:
        webhook.close()
