"""The console's JSON API and live events against the real stack: signed webhooks in, Rasa's tracker, the
handoff service, the outbox, the Send API sandbox out; and the role of every route, over real HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from bot.app import create_app
from bot.stack import Stack
from core.settings import DEMO_SERVICE_TOKEN, ROOT, Settings
from handoff.model import conversation_id_of
from sandbox import simulate
from tests.support.console_client import ConsoleSession, EventListener
from tests.support.console_routes import (
    PUBLIC,
    ROLES,
    SERVICE_TOKEN_ONLY,
    app_routes,
    concrete,
    is_development_only,
    unknown_routes,
)
from tests.support.stack import PAGE_ID, Messenger

HANDOFF_PHRASE = "te comunico con una persona del equipo"


def new_user() -> str:
    return f"console-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def agent(stack: Stack) -> Iterator[ConsoleSession]:
    session = ConsoleSession(stack.app_url, "agente")
    yield session
    session.close()


@pytest.fixture
def events(agent: ConsoleSession) -> Iterator[EventListener]:
    listener = EventListener(agent).start()
    yield listener
    listener.stop()


def requests_to(messenger: Messenger, user: str) -> list[dict[str, Any]]:
    """Every Send API request for the user (typing indicators and rejected ones included)."""
    return messenger.http.get(messenger.stack.app_url + "/sandbox/requests", params={"recipient_id": user}).json()


def say_at(messenger: Messenger, user: str, text: str, at: datetime) -> None:
    """A message Meta stamped at `at` (a late delivery, or a user who wrote days ago)."""
    item = simulate.text_message(PAGE_ID, user, text)
    item["timestamp"] = int(at.timestamp() * 1000)
    assert messenger.deliver(simulate.webhook_body(PAGE_ID, [item])).status_code == 200


def ask_for_a_person(messenger: Messenger, agent: ConsoleSession, user: str, at: datetime | None = None) -> str:
    if at is None:
        assert messenger.say(user, "quiero hablar con una persona").status_code == 200
    else:
        say_at(messenger, user, "quiero hablar con una persona", at)
    conversation_id = conversation_id_of(PAGE_ID, user)
    messenger.wait_for(lambda: any(c["id"] == conversation_id for c in agent.conversations()), 60,
                       f"{conversation_id} in the console's inbox")
    return conversation_id


def assert_silent(messenger: Messenger, user: str, before: int, seconds: float = 4.0) -> None:
    """No Send API request at all for the user (not even a typing indicator) for `seconds`."""
    time.sleep(seconds)
    assert len(requests_to(messenger, user)) == before, requests_to(messenger, user)[before:]


def test_an_agent_takes_over_replies_and_gives_the_conversation_back(
    messenger: Messenger, agent: ConsoleSession, events: EventListener
) -> None:
    user = new_user()
    # A user asks for a person: the open console hears of it without asking (server-sent events).
    conversation_id = ask_for_a_person(messenger, agent, user)
    events.wait_for(lambda e: e.kind == "paused" and e.conversation_id == conversation_id, 30, "the pause event")
    listed = next(c for c in agent.conversations() if c["id"] == conversation_id)
    assert listed["state"] == "paused" and listed["paused_reason"] == "user_asked"
    assert listed["paused_reason_es"] == "El cliente pidió hablar con una persona"
    assert listed["waiting_seconds"] is not None

    # Rasa saves the tracker when the pausing action is done, a moment after the app hears of the pause.
    messenger.wait_for(lambda: any(i["author"] == "user" for i in agent.conversation(conversation_id)["transcript"]),
                       10, "the user's message in the transcript")
    view = agent.conversation(conversation_id)
    user_lines = [item["text"] for item in view["transcript"] if item["author"] == "user"]
    assert user_lines == ["quiero hablar con una persona"]
    assert any(HANDOFF_PHRASE in item["text"].lower() for item in view["transcript"] if item["author"] == "bot")
    assert view["window"]["can_reply"] and view["window"]["messaging_type"] == "RESPONSE"

    # Assign it to me, reply with a snippet: it reaches the Send API as a normal reply (within 24 h).
    assert agent.post(f"/api/console/conversations/{conversation_id}/assign", json={"agent": "me"}).json()[
        "conversation"]["assigned_to"] == "agente"
    assert agent.send("PUT", "/api/console/snippets/saludo-prueba",
                      json={"text": "Hola, le saluda el equipo de Ecuabots."}).status_code == 200
    reply = agent.post(f"/api/console/conversations/{conversation_id}/reply",
                       json={"text": "/saludo-prueba ¿En qué le puedo ayudar?"})
    assert reply.status_code == 201, reply.text
    expected = "Hola, le saluda el equipo de Ecuabots. ¿En qué le puedo ayudar?"
    messenger.wait_for(lambda: expected in messenger.texts(user), 30, "the agent's reply at the sandbox")
    sent = next(item["body"] for item in messenger.sent(user) if item["body"].get("message", {}).get("text")
                == expected)
    assert sent["messaging_type"] == "RESPONSE" and "tag" not in sent
    events.wait_for(lambda e: e.kind == "agent_message" and e.conversation_id == conversation_id, 10,
                    "the agent's message event")

    # The user writes again: the console shows it live, the bot stays silent.
    before = len(requests_to(messenger, user))
    assert messenger.say(user, "necesito la factura de mi pedido").status_code == 200
    event = events.wait_for(lambda e: e.kind == "user_message" and e.conversation_id == conversation_id, 30,
                            "the user's message event")
    assert event.data["text"] == "necesito la factura de mi pedido"
    assert_silent(messenger, user, before)
    transcript = agent.conversation(conversation_id)["transcript"]
    assert [(i["author"], i["text"]) for i in transcript[-2:]] == [
        ("agent:agente", expected), ("user", "necesito la factura de mi pedido")]

    # Close with a closing note: the conversation leaves the inbox and the bot answers the next message.
    closed = agent.post(f"/api/console/conversations/{conversation_id}/close", json={"note": "Consulta resuelta"})
    assert closed.status_code == 200, closed.text
    assert closed.json()["conversation"]["state"] == "bot"
    events.wait_for(lambda e: e.kind == "resumed" and e.conversation_id == conversation_id, 10, "the resume event")
    assert all(c["id"] != conversation_id for c in agent.conversations())
    texts_before = len(messenger.texts(user))
    assert messenger.say(user, "eres un bot?").status_code == 200
    # The close's satisfaction survey (csat/) may reach the customer before or after this answer.
    messenger.wait_for(lambda: "asistente virtual" in " ".join(messenger.texts(user)[texts_before:]).lower(),
                       60, "the bot's answer after the close")


def test_pausar_el_chatbot_from_the_console(messenger: Messenger, agent: ConsoleSession) -> None:
    user = new_user()
    conversation_id = conversation_id_of(PAGE_ID, user)
    assert messenger.say(user, "hola").status_code == 200
    messenger.wait_for(lambda: len(messenger.texts(user)) > 0, 60, "the bot's greeting")
    view = agent.conversation(conversation_id)
    assert view["state"] == "bot"
    assert [item["text"] for item in view["transcript"] if item["author"] == "user"] == ["hola"]

    paused = agent.post(f"/api/console/conversations/{conversation_id}/pause")
    assert paused.status_code == 200, paused.text
    conversation = paused.json()["conversation"]
    assert (conversation["state"], conversation["paused_reason"], conversation["paused_by"],
            conversation["assigned_to"]) == ("paused", "agent_took_over", "agente", "agente")
    assert any(c["id"] == conversation_id for c in agent.conversations())

    before = len(requests_to(messenger, user))
    assert messenger.say(user, "eres un bot?").status_code == 200
    assert_silent(messenger, user, before)
    assert agent.post(f"/api/console/conversations/{conversation_id}/close",
                      json={"note": "Prueba de pausa"}).status_code == 200


def test_a_retried_reply_is_one_message_through_the_real_outbox(messenger: Messenger, agent: ConsoleSession) -> None:
    """Issue 8, item 10: the same Idempotency-Key twice (a retried POST) sends once and is recorded once; on the
    old code the console had no key and the retry reached the customer twice."""
    user = new_user()
    conversation_id = ask_for_a_person(messenger, agent, user)
    url = f"/api/console/conversations/{conversation_id}/reply"
    text = f"Respuesta única {uuid.uuid4().hex[:6]}"
    key = {"Idempotency-Key": f"retry-{uuid.uuid4().hex}"}
    first = agent.post(url, json={"text": text}, headers=key)
    retried = agent.post(url, json={"text": text}, headers=key)
    assert (first.status_code, retried.status_code) == (201, 200), (first.text, retried.text)
    assert retried.json()["repeated"] is True
    assert retried.json()["outbox"]["message"]["id"] == first.json()["outbox"]["message"]["id"]
    messenger.wait_for(lambda: text in messenger.texts(user), 30, "the agent's reply at the sandbox")
    time.sleep(1.0)  # give a second copy, if there were one, the time to be sent too
    assert messenger.texts(user).count(text) == 1
    agent_lines = [i for i in agent.conversation(conversation_id)["transcript"] if i["author"] == "agent:agente"]
    assert [i["text"] for i in agent_lines] == [text]
    assert agent.post(f"/api/console/conversations/{conversation_id}/close",
                      json={"note": "Prueba de reintento"}).status_code == 200


def test_human_agent_after_24_hours_and_a_clear_refusal_after_7_days(
    messenger: Messenger, agent: ConsoleSession
) -> None:
    now = datetime.now(timezone.utc)
    two_days = ask_for_a_person(messenger, agent, new_user(), at=now - timedelta(days=2))
    view = agent.conversation(two_days)
    assert view["window"]["tag"] == "HUMAN_AGENT" and view["window"]["can_reply"]
    assert 4 * 86400 < view["window"]["seconds_left"] <= 5 * 86400
    reply = agent.post(f"/api/console/conversations/{two_days}/reply", json={"text": "Disculpe la demora."})
    assert reply.status_code == 201, reply.text
    user = two_days.split(":", 1)[1]
    messenger.wait_for(lambda: "Disculpe la demora." in messenger.texts(user), 30, "the HUMAN_AGENT reply")
    sent = next(item["body"] for item in messenger.sent(user)
                if item["body"].get("message", {}).get("text") == "Disculpe la demora.")
    assert (sent["messaging_type"], sent["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")

    eight_days = ask_for_a_person(messenger, agent, new_user(), at=now - timedelta(days=8))
    view = agent.conversation(eight_days)
    assert not view["window"]["can_reply"]
    refused = agent.post(f"/api/console/conversations/{eight_days}/reply", json={"text": "¿Sigue ahí?"})
    assert refused.status_code == 422
    error = refused.json()["error"]
    assert error["reason_code"] == "human_agent_window_expired"
    assert "ni siquiera con la etiqueta HUMAN_AGENT" in error["message"]
    time.sleep(1)
    assert "¿Sigue ahí?" not in messenger.texts(eight_days.split(":", 1)[1])
    for conversation_id in (two_days, eight_days):
        agent.post(f"/api/console/conversations/{conversation_id}/close", json={"note": "Prueba de ventana"})


def test_an_agent_cannot_publish_and_an_editor_cannot_reply(messenger: Messenger, stack: Stack,
                                                            agent: ConsoleSession) -> None:
    conversation_id = ask_for_a_person(messenger, agent, new_user())
    editor = ConsoleSession(stack.app_url, "editor")
    try:
        refused = editor.post(f"/api/console/conversations/{conversation_id}/reply", json={"text": "hola"})
        assert refused.status_code == 403
        assert refused.json()["error"]["message"] == "Su rol (editor) no tiene permiso para esto."
        assert editor.get("/api/console/conversations").status_code == 403
        publish = agent.post("/api/console/knowledge/publish", json={"draft_id": "cualquiera"})
        assert publish.status_code == 403
        assert publish.json()["error"]["message"] == "Su rol (agente) no tiene permiso para esto."
        assert agent.post("/api/console/knowledge/rollback", json={}).status_code == 403
    finally:
        editor.close()
        agent.post(f"/api/console/conversations/{conversation_id}/close", json={"note": "Prueba de roles"})


def test_every_route_over_http(stack: Stack, tmp_path: Any) -> None:
    """The running app's routes (listed from the same code) against the table: anonymous, each role."""
    routes = app_routes(create_app(Settings(data_dir=tmp_path)))
    assert not unknown_routes(routes), unknown_routes(routes)
    anonymous = httpx.Client(base_url=stack.app_url, timeout=30, follow_redirects=False)
    sessions = {role: ConsoleSession(stack.app_url, name) for role, name in
                (("admin", "admin"), ("agent", "agente"), ("editor", "editor"))}
    dummy = conversation_id_of(PAGE_ID, new_user())
    try:
        for method, path in sorted(routes):
            if (method, path) in PUBLIC or is_development_only(path) or method == "HEAD":
                continue
            url = concrete(path, dummy)
            answer = anonymous.request(method, url, json={})
            assert answer.status_code in (401, 303), (method, path, answer.status_code)
            if (method, path) in SERVICE_TOKEN_ONLY or path.endswith("/logout"):
                continue
            roles, _service = ROLES[(method, path)]
            for role, session in sessions.items():
                # A body no endpoint accepts: past the role check it is a 422, never a change.
                if path == "/console/events":
                    with session.http.stream(method, url) as streamed:
                        status = streamed.status_code
                else:
                    status = session.send(method, url, content=b"[]",
                                          headers={"Content-Type": "application/json"}).status_code
                if role in roles:
                    assert status not in (401, 403), (role, method, path, status)
                else:
                    assert status == 403, (role, method, path, status)
    finally:
        anonymous.close()
        sessions["agent"].post(f"/api/console/conversations/{dummy}/close", json={"note": "Prueba de rutas"})
        for session in sessions.values():
            session.close()


def test_login_rate_limit_for_a_user_made_with_the_cli(stack: Stack) -> None:
    username = f"limite-{uuid.uuid4().hex[:6]}"
    env = {**os.environ, "BOT_DATA_DIR": str(stack.data_dir), "PYTHONPATH": str(ROOT)}
    created = subprocess.run([sys.executable, "-m", "bot", "users", "add", username, "--role", "agente",
                              "--password-stdin"], input="una-clave-larga-1\n", capture_output=True, text=True,
                             env=env, cwd=ROOT, timeout=60)
    assert created.returncode == 0, created.stderr
    assert f"Usuario «{username}» creado con el rol agente." in created.stdout
    assert "una-clave-larga-1" not in created.stdout + created.stderr
    client = httpx.Client(base_url=stack.app_url, timeout=30)
    try:
        for _ in range(5):
            wrong = client.post("/api/console/login", json={"username": username, "password": "no-es-esta-123"})
            assert wrong.status_code == 401
        locked = client.post("/api/console/login", json={"username": username, "password": "una-clave-larga-1"})
        assert locked.status_code == 429
        assert locked.json()["error"]["message"].startswith("Demasiados intentos fallidos para este usuario.")
        assert int(locked.headers["retry-after"]) > 0
    finally:
        client.close()
    listed = subprocess.run([sys.executable, "-m", "bot", "users", "list"], capture_output=True, text=True, env=env,
                            cwd=ROOT, timeout=60)
    assert username in listed.stdout and "agente" in listed.stdout


def test_sessions_are_server_side_and_logout_ends_them(stack: Stack) -> None:
    session = ConsoleSession(stack.app_url, "agente")
    cookie = session.http.cookies.get("console_session")
    assert cookie and session.get("/api/console/me").status_code == 200
    assert session.post("/api/console/logout").status_code == 200
    replay = httpx.get(stack.app_url + "/api/console/me", cookies={"console_session": cookie})
    assert replay.status_code == 401
    session.close()
    # Nothing secret in the processes' logs: passwords, the session, the CSRF token, the service token.
    logs = "".join(path.read_text(encoding="utf-8", errors="replace") for path in stack.log_dir.glob("*.log"))
    for secret in (cookie, session.csrf, "agente-demo", "admin-demo", "editor-demo", DEMO_SERVICE_TOKEN):
        assert secret not in logs


MATRIX_HEADER = "id,preguntas,respuesta\n"
MATRIX_ROWS = (
    "horario_api,¿Cuál es el horario de atención de la tienda? | ¿A qué hora abren?,"
    "Abrimos de lunes a sábado de 9:00 a 19:00.\n"
    'retiro_api,¿Puedo retirar mi pedido en el local? | ¿Tienen retiro en tienda?,"{answer}"\n'
)


def test_an_editor_publishes_through_the_api_and_the_bot_answers_from_it(
    stack: Stack, messenger: Messenger
) -> None:
    editor = ConsoleSession(stack.app_url, "editor")
    try:
        before = editor.get("/api/console/knowledge").json()
        broken = (MATRIX_HEADER + MATRIX_ROWS.format(answer="")).encode("utf-8")
        draft = editor.post("/api/console/knowledge/drafts", files={"file": ("matriz.csv", broken, "text/csv")},
                            timeout=300)
        assert draft.status_code == 201, draft.text
        report = draft.json()["draft"]
        assert not report["ok"]
        assert [(i["row"], i["code"]) for i in report["issues"] if i["severity"] == "error"] == [
            (3, "missing_answer")]
        refused = editor.post("/api/console/knowledge/publish", json={"draft_id": report["id"]})
        assert refused.status_code == 409 and refused.json()["error"]["reason_code"] == "draft_has_errors"

        answer = "Sí, puede retirarlo en nuestro local de la Av. Amazonas en Quito."
        fixed = (MATRIX_HEADER + MATRIX_ROWS.format(answer=answer)).encode("utf-8")
        draft = editor.post("/api/console/knowledge/drafts", files={"file": ("matriz.csv", fixed, "text/csv")},
                            timeout=300).json()["draft"]
        assert draft["ok"] and draft["entry_count"] == 2
        tried = editor.post("/api/console/knowledge/try", json={"question": "puedo retirar mi pedido en el local?",
                                                                "draft_id": draft["id"]}, timeout=300).json()
        assert tried["draft"]["outcome"] == "answer" and tried["draft"]["text"] == answer
        assert tried["live"] is None or tried["live"]["text"] != answer
        published = editor.post("/api/console/knowledge/publish", json={"draft_id": draft["id"]}, timeout=300)
        assert published.status_code == 200, published.text
        version = published.json()["version"]
        assert version["live"] and version["published_by"] == "editor" and version["filename"] == "matriz.csv"

        user = new_user()
        assert messenger.say(user, "¿puedo retirar mi pedido en el local?").status_code == 200
        messenger.wait_for(lambda: answer in messenger.texts(user), 90, "the answer from the published version")

        rolled = editor.post("/api/console/knowledge/rollback", json={})
        assert rolled.status_code == 200, rolled.text
        status = editor.get("/api/console/knowledge").json()
        assert status["live"]["id"] == (before["live"]["id"] if before["live"] else rolled.json()["version"]["id"])
        assert status["versions"][0]["id"] == version["id"] and not status["versions"][0]["live"]
    finally:
        editor.close()


def test_an_admin_applies_the_page_profile_to_the_graph_sandbox_over_http(stack: Stack) -> None:
    """The console's page profile through the running app: saved (checked as Meta checks it), applied with the real
    Graph client over HTTP to the real sandbox, which records the call and keeps the profile."""
    admin = ConsoleSession(stack.app_url, "admin")
    profile = {
        "get_started": {"payload": "/greet"},
        "greeting": [{"locale": "default", "text": f"¡Hola {{{{user_first_name}}}}! {uuid.uuid4().hex[:6]}"}],
        "ice_breakers": [{"call_to_actions": [{"question": "¿Cuál es el horario?", "payload": "/horario"}],
                          "locale": "default"}],
    }
    try:
        too_long = {"greeting": [{"locale": "default", "text": "x" * 161}]}
        refused = admin.send("PUT", "/api/console/page-profile", json={"page_id": PAGE_ID, "profile": too_long})
        assert refused.status_code == 422 and refused.json()["error"]["field"] == "greeting[0][text]"
        saved = admin.send("PUT", "/api/console/page-profile", json={"page_id": PAGE_ID, "profile": profile})
        assert saved.status_code == 200, saved.text
        seen = [r["seq"] for r in admin.get("/sandbox/requests").json()]
        applied = admin.post("/api/console/page-profile/apply", json={"page_id": PAGE_ID})
        assert applied.status_code == 200, applied.text
        assert (applied.json()["status"]["applied_by"], applied.json()["status"]["last_ok"]) == ("admin", True)
        calls = [r for r in admin.get("/sandbox/requests", params={"page_id": PAGE_ID, "after": max(seen, default=0)})
                 .json() if r["path"].endswith("/me/messenger_profile")]
        posted = [r for r in calls if r["method"] == "POST"]
        assert posted and posted[-1]["accepted"] and posted[-1]["body"] == profile
        deleted = [r for r in calls if r["method"] == "DELETE"]
        assert deleted and deleted[-1]["body"] == {"fields": ["persistent_menu"]}
        live = admin.get("/api/console/page-profile/live", params={"page_id": PAGE_ID})
        assert live.json()["live"] == profile
        # An agent cannot; the service token can read it.
        agent = ConsoleSession(stack.app_url, "agente")
        assert agent.get("/api/console/page-profile", params={"page_id": PAGE_ID}).status_code == 403
        agent.close()
        service = httpx.get(stack.app_url + "/api/console/page-profile", params={"page_id": PAGE_ID},
                            headers={"Authorization": f"Bearer {DEMO_SERVICE_TOKEN}"}, timeout=30)
        assert service.status_code == 200 and service.json()["profile"] == profile
    finally:
        admin.close()
