"""The console's pages and JSON API over the in-memory handoff service and knowledge editor (TestClient)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from datetime import timedelta
from pathlib import Path

import pytest

from console.auth import LOGIN_CSRF_COOKIE, SESSION_COOKIE
from core.settings import Settings
from handoff.model import PauseReason
from tests.unit.console.conftest import PAGE, USERS, Clock, ConsoleApp, console_app

CONVERSATION = f"{PAGE}:u1"


def paused(env: ConsoleApp, user: str = "u1", text: str = "quiero hablar con una persona",
           ago: timedelta = timedelta(minutes=3)) -> str:
    env.handoff.add_user_message(PAGE, user, text, at=env.clock() - ago)
    asyncio.run(env.handoff.pause(PAGE, user, PauseReason.USER_ASKED, "bot"))
    return f"{PAGE}:{user}"


# --- logging in --------------------------------------------------------------------------------------


def test_pages_send_anonymous_visitors_to_the_login(console_env: ConsoleApp) -> None:
    client = console_env.anonymous()
    answer = client.get("/console/inbox")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login?next=/console/inbox"
    api = client.get("/api/console/conversations")
    assert api.status_code == 401
    assert api.json()["error"] == {"reason_code": "not_authenticated", "message": "Inicie sesión para continuar."}


def test_login_form_with_its_csrf_cookie(console_env: ConsoleApp) -> None:
    client = console_env.anonymous()
    page = client.get("/console/login?next=/console/snippets")
    assert page.status_code == 200 and "Iniciar sesión" in page.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    assert client.cookies.get(LOGIN_CSRF_COOKIE) == token
    answer = client.post("/console/login", data={"username": "maria", "password": USERS["maria"][1],
                                                 "csrf_token": token, "next": "/console/snippets"})
    assert answer.status_code == 303 and answer.headers["location"] == "/console/snippets"
    cookie = next(h for h in answer.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    assert client.get("/console/snippets").status_code == 200


def test_login_form_without_its_csrf_token_is_refused(console_env: ConsoleApp) -> None:
    client = console_env.anonymous()
    client.get("/console/login")
    answer = client.post("/console/login", data={"username": "maria", "password": USERS["maria"][1],
                                                 "csrf_token": "forged"})
    assert answer.status_code == 403 and "El formulario caducó" in answer.text
    assert SESSION_COOKIE not in client.cookies


def test_next_never_leaves_the_console(console_env: ConsoleApp) -> None:
    for target in ("https://evil.example/", "//evil.example/console/", "/console/../sandbox/chat"):
        client = console_env.anonymous()
        page = client.get("/console/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        answer = client.post("/console/login", data={"username": "editor", "password": USERS["editor"][1],
                                                     "csrf_token": token, "next": target})
        assert answer.headers["location"] in ("/console/knowledge",)


def test_wrong_password_then_rate_limited_in_spanish(console_env: ConsoleApp) -> None:
    client = console_env.anonymous()
    for _ in range(5):
        answer = client.post("/api/console/login", json={"username": "maria", "password": "nope-nope-nope"})
        assert answer.status_code == 401
        assert answer.json()["error"]["message"] == "Usuario o contraseña incorrectos."
    answer = client.post("/api/console/login", json={"username": "maria", "password": USERS["maria"][1]})
    assert answer.status_code == 429
    assert answer.json()["error"]["reason_code"] == "too_many_attempts"
    assert answer.json()["error"]["message"].startswith("Demasiados intentos fallidos para este usuario. Espere 5")
    assert 0 < int(answer.headers["retry-after"]) <= 300
    console_env.clock.advance(minutes=5, seconds=1)
    assert client.post("/api/console/login", json={"username": "maria", "password": USERS["maria"][1]}).status_code \
        == 200


def test_the_login_page_shows_the_limit_too(console_env: ConsoleApp) -> None:
    client = console_env.anonymous()
    page = client.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    for _ in range(5):
        client.post("/console/login", data={"username": "maria", "password": "mala-mala-mala", "csrf_token": token})
    answer = client.post("/console/login", data={"username": "maria", "password": "mala", "csrf_token": token})
    assert answer.status_code == 429 and "Demasiados intentos fallidos" in answer.text


def test_the_json_login_only_takes_json(console_env: ConsoleApp) -> None:
    """A cross-site form can post text/plain but not application/json: the JSON login cannot be forged."""
    body = json.dumps({"username": "maria", "password": USERS["maria"][1]})
    client = console_env.anonymous()
    forged = client.post("/api/console/login", content=body, headers={"Content-Type": "text/plain"})
    assert forged.status_code == 422 and SESSION_COOKIE not in client.cookies
    assert forged.json()["error"]["reason_code"] == "invalid_request"
    assert forged.json()["error"]["message"].startswith("La solicitud no es válida")
    assert client.post("/api/console/login", content=body, headers={"Content-Type": "application/json"}).status_code \
        == 200


def test_state_changes_need_the_csrf_token(console_env: ConsoleApp) -> None:
    paused(console_env)
    agent = console_env.login("maria")
    for headers in ({}, {"X-CSRF-Token": "not-the-token"}):
        answer = agent.client.post(f"/api/console/conversations/{CONVERSATION}/reply", json={"text": "hola"},
                                   headers=headers)
        assert answer.status_code == 403 and answer.json()["error"]["reason_code"] == "csrf_rejected"
    assert console_env.handoff.sent == []
    assert agent.post(f"/api/console/conversations/{CONVERSATION}/reply", json={"text": "hola"}).status_code == 201


def test_the_csrf_token_of_another_session_does_not_work(console_env: ConsoleApp) -> None:
    paused(console_env)
    maria, other = console_env.login("maria"), console_env.login("agente")
    answer = maria.client.post(f"/api/console/conversations/{CONVERSATION}/reply", json={"text": "hola"},
                               headers={"X-CSRF-Token": other.csrf})
    assert answer.status_code == 403


def test_logout_ends_the_session(console_env: ConsoleApp) -> None:
    agent = console_env.login("maria")
    assert agent.get("/api/console/me").json()["user"]["role_label"] == "agente"
    assert agent.post("/api/console/logout").status_code == 200
    assert agent.get("/api/console/me").status_code == 401


def test_production_cookies_are_secure(tmp_path: Path, clock: Clock) -> None:
    settings = Settings(environment="production", data_dir=tmp_path)
    env = console_app(tmp_path, clock, settings)
    answer = env.anonymous().post("/api/console/login", json={"username": "maria", "password": USERS["maria"][1]})
    assert "Secure" in answer.headers["set-cookie"]
    login = env.anonymous().get("/console/login")
    assert "Secure" in login.headers["set-cookie"] and "usuarios de demostración" not in login.text


def test_security_headers_on_console_answers(console_env: ConsoleApp) -> None:
    answer = console_env.anonymous().get("/console/login")
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers["x-frame-options"] == "DENY" and answer.headers["cache-control"] == "no-store"


# --- conversations -----------------------------------------------------------------------------------


def test_inbox_lists_paused_conversations_with_waiting_time_and_reason(console_env: ConsoleApp) -> None:
    first = paused(console_env, "u1")
    console_env.clock.advance(minutes=7)
    paused(console_env, "u2")
    asyncio.run(console_env.handoff.record_user_message(PAGE, "u2", "¿hay alguien?", console_env.clock()))
    agent = console_env.login("maria")
    listing = agent.get("/api/console/conversations").json()["conversations"]
    assert [c["id"] for c in listing] == [first, f"{PAGE}:u2"]  # who waited longest first
    assert listing[0]["waiting_es"] == "7 min" and listing[0]["waiting_seconds"] == 420
    assert listing[0]["paused_reason_es"] == "El cliente pidió hablar con una persona"
    assert listing[1]["last_message_text"] == "¿hay alguien?"
    page = agent.get("/console/inbox")
    assert page.status_code == 200 and "¿hay alguien?" in page.text and "7 min" in page.text


def test_conversation_view_transcript_contact_and_window(console_env: ConsoleApp) -> None:
    paused(console_env, ago=timedelta(hours=2))
    agent = console_env.login("maria")
    view = agent.get(f"/api/console/conversations/{CONVERSATION}").json()["conversation"]
    assert [item["text"] for item in view["transcript"]] == ["quiero hablar con una persona"]
    assert view["transcript"][0]["author_label"] == "Cliente"
    assert view["window"]["can_reply"] and view["window"]["messaging_type"] == "RESPONSE"
    assert view["window"]["message_es"].startswith("Puede responder con una respuesta normal (RESPONSE) durante 22 h")
    page = agent.get(f"/console/conversations/{CONVERSATION}")
    assert page.status_code == 200 and "quiero hablar con una persona" in page.text and "Nota de cierre" in page.text


def test_reply_goes_out_as_the_agent_with_snippets_expanded(console_env: ConsoleApp) -> None:
    paused(console_env)
    agent = console_env.login("maria")
    assert agent.send("PUT", "/api/console/snippets/horario", json={"text": "Atendemos de 8 a 18."}).status_code == 200
    answer = agent.post(f"/api/console/conversations/{CONVERSATION}/reply", json={"text": "Hola. /horario"})
    assert answer.status_code == 201
    assert answer.json()["text"] == "Hola. Atendemos de 8 a 18." and answer.json()["snippets_used"] == ["horario"]
    assert console_env.handoff.sent == [{"recipient_id": "u1", "text": "Hola. Atendemos de 8 a 18.",
                                         "sender_name": "maria", "messaging_type": "RESPONSE", "tag": None}]


def test_reply_after_a_day_uses_human_agent_and_after_a_week_is_refused(console_env: ConsoleApp) -> None:
    paused(console_env, "u1", ago=timedelta(days=2))
    late = paused(console_env, "u2", ago=timedelta(days=8))
    agent = console_env.login("maria")
    view = agent.get(f"/api/console/conversations/{CONVERSATION}").json()["conversation"]
    assert view["window"]["tag"] == "HUMAN_AGENT" and view["window"]["seconds_left"] == 5 * 24 * 3600
    assert agent.post(f"/api/console/conversations/{CONVERSATION}/reply", json={"text": "Disculpe"}).status_code \
        == 201
    assert console_env.handoff.sent[-1]["tag"] == "HUMAN_AGENT"
    refused = agent.post(f"/api/console/conversations/{late}/reply", json={"text": "¿Sigue ahí?"})
    assert refused.status_code == 422
    assert refused.json()["error"]["reason_code"] == "human_agent_window_expired"
    assert "ni siquiera con la etiqueta HUMAN_AGENT" in refused.json()["error"]["message"]
    page = agent.get(f"/console/conversations/{late}")
    assert "ni siquiera con la etiqueta HUMAN_AGENT" in page.text and 'id="reply-send" disabled' in page.text
    assert len(console_env.handoff.sent) == 1


def test_reply_limits(console_env: ConsoleApp) -> None:
    paused(console_env)
    agent = console_env.login("maria")
    too_long = agent.post(f"/api/console/conversations/{CONVERSATION}/reply", json={"text": "x" * 2001})
    assert too_long.status_code == 422 and "2001 caracteres" in too_long.json()["error"]["message"]
    blank = agent.post(f"/api/console/conversations/{CONVERSATION}/reply", json={"text": "   "})
    assert blank.status_code == 422
    # A customer who never wrote: the real service refuses by the policy (nobody to answer), not "not found".
    unknown = agent.post(f"/api/console/conversations/{PAGE}:nadie/reply", json={"text": "hola"})
    assert unknown.status_code == 422 and unknown.json()["error"]["reason_code"] == "never_wrote"
    malformed = agent.post("/api/console/conversations/sin-pagina/reply", json={"text": "hola"})
    assert malformed.status_code == 404 and malformed.json()["error"]["message"] == "No existe esa conversación."
    assert console_env.handoff.sent == []


def test_assign_to_me_to_another_agent_and_unassign(console_env: ConsoleApp) -> None:
    paused(console_env)
    agent = console_env.login("maria")
    url = f"/api/console/conversations/{CONVERSATION}/assign"
    assert agent.post(url, json={"agent": "me"}).json()["conversation"]["assigned_to"] == "maria"
    assert agent.post(url, json={"agent": "agente"}).json()["conversation"]["assigned_to"] == "agente"
    assert agent.post(url, json={"agent": None}).json()["conversation"]["assigned_to"] is None
    editor_target = agent.post(url, json={"agent": "editor"})  # editors do not answer customers
    assert editor_target.status_code == 422 and "editor" in editor_target.json()["error"]["message"]
    assert [a["username"] for a in agent.get("/api/console/agents").json()["agents"]] == ["admin", "agente", "maria"]


def test_pause_the_bot_then_close_with_a_note(console_env: ConsoleApp) -> None:
    console_env.handoff.add_user_message(PAGE, "u1", "hola")
    agent = console_env.login("maria")
    view = agent.get(f"/api/console/conversations/{CONVERSATION}").json()["conversation"]
    assert view["state"] == "bot"  # no handoff record yet: shown as the bot's, so it can be paused
    page = agent.get(f"/console/conversations/{CONVERSATION}")
    assert "Pausar el Chatbot" in page.text
    pause = agent.post(f"/api/console/conversations/{CONVERSATION}/pause").json()["conversation"]
    assert (pause["state"], pause["paused_reason"], pause["paused_by"], pause["assigned_to"]) == (
        "paused", "agent_took_over", "maria", "maria")
    assert pause["paused_reason_es"] == "Un agente pausó el chatbot"
    no_note = agent.post(f"/api/console/conversations/{CONVERSATION}/close", json={"note": "  "})
    assert no_note.status_code == 422
    closed = agent.post(f"/api/console/conversations/{CONVERSATION}/close", json={"note": "Consulta resuelta"})
    assert closed.json()["conversation"]["state"] == "bot"
    assert console_env.handoff.closing_notes[CONVERSATION] == "Consulta resuelta"


def test_a_conversation_nobody_ever_wrote_is_not_found(console_env: ConsoleApp) -> None:
    agent = console_env.login("maria")
    assert agent.get(f"/api/console/conversations/{PAGE}:fantasma").status_code == 404
    assert agent.get("/api/console/conversations/sin-dos-puntos").status_code == 404
    page = agent.get(f"/console/conversations/{PAGE}:fantasma")
    assert page.status_code == 404 and "No existe esa conversación." in page.text


def test_no_handoff_service_is_a_clear_503(console_env: ConsoleApp) -> None:
    console_env.app.state.handoff = None
    agent = console_env.login("maria")
    answer = agent.get("/api/console/conversations")
    assert answer.status_code == 503 and "no está disponible" in answer.json()["error"]["message"]


# --- snippets ----------------------------------------------------------------------------------------


def test_snippets_crud(console_env: ConsoleApp) -> None:
    agent = console_env.login("maria")
    assert agent.send("PUT", "/api/console/snippets/Gracias", json={"text": "¡Gracias!"}).json()["snippet"]["name"] \
        == "gracias"
    bad = agent.send("PUT", "/api/console/snippets/con espacio", json={"text": "x"})
    assert bad.status_code == 422 and bad.json()["error"]["message"].startswith("El nombre del atajo")
    assert [s["name"] for s in agent.get("/api/console/snippets").json()["snippets"]] == ["gracias"]
    assert "/gracias" in agent.get("/console/snippets").text
    assert agent.send("DELETE", "/api/console/snippets/gracias").status_code == 200
    assert agent.send("DELETE", "/api/console/snippets/gracias").status_code == 404


# --- knowledge ---------------------------------------------------------------------------------------

BROKEN = (
    "id,preguntas,respuesta\n"
    "horario,¿Cuál es el horario de atención?,Atendemos de 8 a 18.\n"
    "precios,¿Cuánto cuesta el plan?,\n"
)
FIXED = BROKEN.replace("plan?,\n", "plan?,El plan básico cuesta 30 dólares al mes.\n")


def test_editor_uploads_sees_the_row_fixes_publishes_tries_and_rolls_back(console_env: ConsoleApp) -> None:
    editor = console_env.login("editor")
    draft = editor.post("/api/console/knowledge/drafts", files={"file": ("matriz.csv", BROKEN.encode(), "text/csv")})
    assert draft.status_code == 201
    report = draft.json()["draft"]
    assert not report["ok"] and report["error_count"] == 1
    assert report["issues"][0]["row"] == 3 and report["issues"][0]["code"] == "missing_answer"
    refused = editor.post("/api/console/knowledge/publish", json={"draft_id": report["id"]})
    assert refused.status_code == 409 and refused.json()["error"]["reason_code"] == "draft_has_errors"

    nothing = editor.get("/api/console/knowledge/live/source")
    assert nothing.status_code == 404 and nothing.json()["error"]["reason_code"] == "nothing_published"
    fixed = editor.post("/api/console/knowledge/drafts", files={"file": ("matriz.csv", FIXED.encode(), "text/csv")})
    fixed_id = fixed.json()["draft"]["id"]
    assert fixed.json()["draft"]["ok"]
    tried = editor.post("/api/console/knowledge/try", json={"question": "¿Cuánto cuesta el plan?",
                                                            "draft_id": fixed_id}).json()
    assert tried["draft"]["entry_id"] == "precios" and tried["live"] is None
    assert editor.post("/api/console/knowledge/publish", json={"draft_id": fixed_id}).json()["version"]["id"] == "0001"
    download = editor.get("/api/console/knowledge/live/source")  # the published file, to edit further
    assert download.status_code == 200 and download.content == FIXED.encode()
    assert download.headers["content-disposition"] == "attachment; filename*=UTF-8''matriz.csv"
    assert 'id="live-source"' in editor.get("/console/knowledge").text
    tried = editor.post("/api/console/knowledge/try", json={"question": "¿Cuánto cuesta el plan?"}).json()
    assert tried["live"]["text"] == "El plan básico cuesta 30 dólares al mes." and tried["draft"] is None
    nothing_before = editor.post("/api/console/knowledge/rollback", json={})
    assert nothing_before.status_code == 409
    assert editor.post("/api/console/knowledge/publish", json={"draft_id": fixed_id}).json()["version"]["id"] == "0002"
    assert editor.post("/api/console/knowledge/rollback", json={}).json()["version"]["id"] == "0001"
    status = editor.get("/api/console/knowledge").json()
    assert status["live"]["id"] == "0001" and [v["id"] for v in status["versions"]] == ["0002", "0001"]
    page = editor.get("/console/knowledge")
    assert page.status_code == 200 and "Matriz de Conocimientos" in page.text
    assert 'id="report-card"' in page.text and "este grupo queda resuelto" not in page.text  # the report, no group note


def test_uploads_are_limited_in_size(console_env: ConsoleApp) -> None:
    editor = console_env.login("editor")
    big = editor.post("/api/console/knowledge/drafts",
                      files={"file": ("m.csv", b"x" * (5 * 1024 * 1024 + 1), "text/csv")})
    assert big.status_code == 413


def test_the_service_token_may_manage_the_matrix_but_never_write_to_a_customer(console_env: ConsoleApp) -> None:
    paused(console_env)
    client = console_env.anonymous()
    token = {"Authorization": f"Bearer {console_env.app.state.settings.service_token}"}
    assert client.get("/api/console/knowledge", headers=token).status_code == 200
    assert client.get("/api/console/conversations", headers=token).status_code == 200
    reply = client.post(f"/api/console/conversations/{CONVERSATION}/reply", json={"text": "hola"}, headers=token)
    assert reply.status_code == 401
    wrong = client.get("/api/console/knowledge", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["message"] == "El token de servicio no es válido."


# --- roles -------------------------------------------------------------------------------------------


def test_an_agent_cannot_publish_a_matrix(console_env: ConsoleApp) -> None:
    console_env.knowledge.upload("m.csv", FIXED.encode(), "editor")
    draft_id = next(iter(console_env.knowledge.drafts))
    agent = console_env.login("maria")
    answer = agent.post("/api/console/knowledge/publish", json={"draft_id": draft_id})
    assert answer.status_code == 403
    assert answer.json()["error"]["message"] == "Su rol (agente) no tiene permiso para esto."
    assert console_env.knowledge.versions == []
    page = agent.get("/console/knowledge")
    assert page.status_code == 403 and "no tiene permiso" in page.text


def test_an_editor_cannot_reply_to_customers(console_env: ConsoleApp) -> None:
    paused(console_env)
    editor = console_env.login("editor")
    answer = editor.post(f"/api/console/conversations/{CONVERSATION}/reply", json={"text": "hola"})
    assert answer.status_code == 403
    assert answer.json()["error"]["message"] == "Su rol (editor) no tiene permiso para esto."
    assert console_env.handoff.sent == []
    assert editor.get(f"/console/conversations/{CONVERSATION}").status_code == 403
    assert editor.get("/console").headers["location"] == "/console/knowledge"


# --- secrets -----------------------------------------------------------------------------------------


def test_secrets_never_appear_in_pages_or_logs(tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture) -> None:
    secrets = {"app_secret": "app-secret-3b1f0c9d8e7a", "verify_token": "verify-7Qp2xZr9x",
               "service_token": "service-Kd83hFq1zz", "rasa_token": "rasa-token-99ab"}
    settings = Settings(data_dir=tmp_path, page_tokens={PAGE: "EAAGpagetokenSECRET1"}, **secrets)
    env = console_app(tmp_path, clock, settings)
    paused(env)
    caplog.set_level(logging.DEBUG)
    admin = env.login("admin")
    session = admin.client.cookies.get(SESSION_COOKIE)
    admin.post(f"/api/console/conversations/{CONVERSATION}/reply", json={"text": "hola"})
    env.anonymous().post("/api/console/login", json={"username": "admin", "password": "wrong-password-x"})
    urls = ("/console/inbox", f"/console/conversations/{CONVERSATION}", "/console/snippets", "/console/knowledge",
            "/api/console/me", "/api/console/conversations", f"/api/console/conversations/{CONVERSATION}")
    pages = [admin.get(url).text for url in urls]
    logs = " ".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    for value in [*secrets.values(), "EAAGpagetokenSECRET1", USERS["admin"][1], "wrong-password-x", session]:
        assert value and all(value not in page for page in pages), value
        assert value not in logs, value


# --- a retried reply is one message (issue 8, item 10) -------------------------------------------------------


def test_a_retried_reply_with_the_same_idempotency_key_is_one_message(console_env: ConsoleApp) -> None:
    # Old code: no key was accepted and each POST sent the reply again.
    paused(console_env)
    agent = console_env.login("agente")
    url = f"/api/console/conversations/{CONVERSATION}/reply"
    first = agent.post(url, json={"text": "Hola, ¿en qué le ayudo?"}, headers={"Idempotency-Key": "clave-0001"})
    again = agent.post(url, json={"text": "Hola, ¿en qué le ayudo?"}, headers={"Idempotency-Key": "clave-0001"})
    assert (first.status_code, first.json()["repeated"]) == (201, False)
    assert (again.status_code, again.json()["repeated"]) == (200, True)
    # The same key in the body (what the page sends) works the same way; a new key is a new message.
    in_body = agent.post(url, json={"text": "Un momento, por favor.", "idempotency_key": "clave-0002"})
    in_body_again = agent.post(url, json={"text": "Un momento, por favor.", "idempotency_key": "clave-0002"})
    assert (in_body.status_code, in_body_again.status_code) == (201, 200)
    assert [m["text"] for m in console_env.handoff.sent] == ["Hola, ¿en qué le ayudo?", "Un momento, por favor."]
    # Without a key, two POSTs are two messages (as before).
    agent.post(url, json={"text": "Sin clave"})
    agent.post(url, json={"text": "Sin clave"})
    assert [m["text"] for m in console_env.handoff.sent].count("Sin clave") == 2


def test_idempotency_keys_are_per_agent_and_checked(console_env: ConsoleApp) -> None:
    paused(console_env)
    url = f"/api/console/conversations/{CONVERSATION}/reply"
    console_env.login("agente").post(url, json={"text": "de agente"}, headers={"Idempotency-Key": "clave-comun"})
    other = console_env.login("maria").post(url, json={"text": "de maria"}, headers={"Idempotency-Key": "clave-comun"})
    assert other.status_code == 201, "another agent's key must never swallow this agent's reply"
    assert [m["text"] for m in console_env.handoff.sent] == ["de agente", "de maria"]
    bad = console_env.login("agente").post(url, json={"text": "x"}, headers={"Idempotency-Key": "corta"})
    assert bad.status_code == 422 and bad.json()["error"]["reason_code"] == "invalid_idempotency_key"
    bad_body = console_env.login("agente").post(url, json={"text": "x", "idempotency_key": "no vale!"})
    assert bad_body.status_code == 422


def test_the_reply_form_carries_a_new_key_on_each_render(console_env: ConsoleApp) -> None:
    paused(console_env)
    agent = console_env.login("agente")
    keys = [re.search(r'id="reply-key" name="idempotency_key" value="([^"]+)"', agent.get(
        f"/console/conversations/{CONVERSATION}").text) for _ in range(2)]
    assert all(keys), "the reply form has no idempotency key"
    assert keys[0].group(1) != keys[1].group(1)  # type: ignore[union-attr]


def test_an_upload_older_than_the_live_version_is_published_only_when_confirmed(console_env: ConsoleApp) -> None:
    """Two editors upload from the same live version; the second to publish would silently undo the first's
    change: 409 stale_draft (the console asks), then published when the editor confirms."""
    editor = console_env.login("editor")

    def upload(text: str) -> str:
        answer = editor.post("/api/console/knowledge/drafts", files={"file": ("matriz.csv", text.encode(), "text/csv")})
        assert answer.status_code == 201 and answer.json()["draft"]["ok"]
        return str(answer.json()["draft"]["id"])

    assert editor.post("/api/console/knowledge/publish", json={"draft_id": upload(FIXED)}).status_code == 200
    older = upload(FIXED.replace("30 dólares", "35 dólares"))
    newer = upload(FIXED.replace("de 8 a 18", "de 9 a 19"))
    assert editor.post("/api/console/knowledge/publish", json={"draft_id": newer}).status_code == 200
    refused = editor.post("/api/console/knowledge/publish", json={"draft_id": older})
    assert refused.status_code == 409 and refused.json()["error"]["reason_code"] == "stale_draft"
    confirmed = editor.post("/api/console/knowledge/publish", json={"draft_id": older, "confirm_stale": True})
    assert confirmed.status_code == 200 and confirmed.json()["version"]["id"] == "0003"
    tried = editor.post("/api/console/knowledge/try", json={"question": "¿Cuánto cuesta el plan?"}).json()
    assert "35 dólares" in tried["live"]["text"]
