"""The "Respuestas privadas" API and page through the real app under uvicorn, over HTTP: an admin (and the service
token) create, read, change, switch off, reorder and delete rules; invalid bodies get a 422 naming the field in
Spanish; the page lists the rules and the journal's recent comments with their verdict in Spanish.

Would catch: a rule the page cannot show after it was saved; a 500 for a bad body, a huge id or an unknown page; the
service token refused where the knowledge API accepts it; a comment's verdict shown as a bare code."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from bot.app import create_app
from comments.journal import open_comment_journal
from core.settings import DEMO_SERVICE_TOKEN, SANDBOX_PAGE_ID, Settings
from meta.feed import parse_feed_value
from sandbox import simulate
from tests.support.console_client import ConsoleSession
from tests.support.servers import RunningServer, serve_asgi

PAGE = SANDBOX_PAGE_ID
API = f"/api/console/comments/pages/{PAGE}"


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    # The app's comment processor would decide the comments this module journals (a verdict it reads as pending):
    # it looks once at start, then not within the module.
    return Settings(data_dir=tmp_path_factory.mktemp("comments-api"), comments_poll_seconds=3600.0)


@pytest.fixture(scope="module")
def server(settings: Settings) -> Iterator[RunningServer]:
    with serve_asgi(create_app(settings)) as running:
        yield running


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> Iterator[ConsoleSession]:
    session = ConsoleSession(server.base_url, "admin")
    yield session
    session.close()


def rule_body(name: str, **overrides: Any) -> dict[str, Any]:
    return {
        "name": name,
        "comments": {"mode": "keywords", "keywords": ["precio", "cuánto cuesta"]},
        "reply": {"mode": "fixed", "message": {"text": "¡Hola! Te enviamos los precios por aquí 👇", "quick_replies": [
            {"content_type": "text", "title": "Ver catálogo", "payload": "/catalogo"}]}},
        "public_replies": ["¡Te escribimos por interno! 📩"],
        **overrides,
    }


def test_an_admin_manages_rules(admin: ConsoleSession) -> None:
    created = admin.post(f"{API}/rules", json=rule_body("Precio"))
    assert created.status_code == 201, created.text
    price = created.json()["rule"]
    assert (price["page_id"], price["name"], price["enabled"], price["updated_by"]) == (PAGE, "Precio", True, "admin")
    general = admin.post(f"{API}/rules", json=rule_body("Todos", comments={"mode": "any"})).json()["rule"]
    listed = admin.get(f"{API}/rules").json()["rules"]
    assert [r["name"] for r in listed][-2:] == ["Precio", "Todos"]

    changed = admin.send("PUT", f"/api/console/comments/rules/{price['id']}",
                         json={**price, "name": "Precios", "public_replies": []})
    assert changed.status_code == 200, changed.text
    assert changed.json()["rule"]["name"] == "Precios" and changed.json()["rule"]["public_replies"] == []
    off = admin.send("PUT", f"/api/console/comments/rules/{price['id']}/enabled", json={"enabled": False})
    assert off.json()["rule"]["enabled"] is False
    assert admin.get(f"/api/console/comments/rules/{price['id']}").json()["rule"]["enabled"] is False

    order = [r["id"] for r in admin.get(f"{API}/rules").json()["rules"]]
    reordered = admin.send("PUT", f"{API}/order", json={"rule_ids": list(reversed(order))})
    assert [r["id"] for r in reordered.json()["rules"]] == list(reversed(order))
    stale = admin.send("PUT", f"{API}/order", json={"rule_ids": order[:1]})
    assert stale.status_code == 422 and stale.json()["error"]["reason_code"] == "rule_invalid"

    page = admin.get("/console/comments")
    assert page.status_code == 200 and "Precios" in page.text and "Todos" in page.text
    assert "Apagada" in page.text

    assert admin.send("DELETE", f"/api/console/comments/rules/{general['id']}").status_code == 200
    gone = admin.get(f"/api/console/comments/rules/{general['id']}")
    assert gone.status_code == 404 and gone.json()["error"]["reason_code"] == "rule_not_found"
    assert admin.send("DELETE", f"/api/console/comments/rules/{general['id']}").status_code == 404


@pytest.mark.parametrize(("body", "field", "words"), [
    (rule_body("  "), "name", "Escriba el nombre"),
    (rule_body("x", comments={"mode": "keywords", "keywords": ["🔥"]}), "comments.keywords[0]", "no tiene letras"),
    (rule_body("x", reply={"message": {"text": "a", "quick_replies": [{"content_type": "text", "title": "t"}]}}),
     "reply.message.quick_replies[0].payload", "payload"),
    (rule_body("x", page_id="999"), "page_id", "otra página"),
    ({"name": ["no"]}, "name", "debe ser un texto"),
])
def test_invalid_rules_are_refused_with_the_field_in_spanish(admin: ConsoleSession, body: dict[str, Any],
                                                              field: str, words: str) -> None:
    answer = admin.post(f"{API}/rules", json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["reason_code"], error["field"]) == ("rule_invalid", field)
    assert words in error["message"]


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/api/console/comments/pages/123/rules", rule_body("x")),
    ("GET", "/api/console/comments/rules/99999999999999999999999", None),
    ("GET", "/api/console/comments/rules/abc", None),
    ("POST", f"{API}/rules", [1, 2]),
    ("PUT", f"{API}/settings", {"knowledge_min_score": "alto"}),
    ("GET", f"{API}/recent?limit=100000", None),
])
def test_bad_requests_get_a_clear_4xx(admin: ConsoleSession, method: str, path: str, body: Any) -> None:
    answer = admin.send(method, path, json=body)
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    assert answer.json()["error"]["message"]


def test_settings_default_to_once_a_day_and_change(admin: ConsoleSession) -> None:
    assert admin.get(f"{API}/settings").json()["settings"]["one_reply_per_person_per_post_per_day"] is True
    saved = admin.send("PUT", f"{API}/settings", json={"one_reply_per_person_per_post_per_day": False,
                                                       "knowledge_min_score": 0.6})
    assert saved.status_code == 200, saved.text
    assert admin.get(f"{API}/settings").json()["settings"]["knowledge_min_score"] == 0.6
    admin.send("PUT", f"{API}/settings", json={})


def test_the_service_token_manages_rules(server: RunningServer) -> None:
    bearer = {"Authorization": f"Bearer {DEMO_SERVICE_TOKEN}"}
    with httpx.Client(base_url=server.base_url, headers=bearer, timeout=10) as http:
        created = http.post(f"{API}/rules", json=rule_body("Desde un programa"))
        assert created.status_code == 201, created.text
        assert created.json()["rule"]["updated_by"] == "service"
        assert any(r["name"] == "Desde un programa" for r in http.get(f"{API}/rules").json()["rules"])
    with httpx.Client(base_url=server.base_url, timeout=10) as anonymous:
        assert anonymous.get(f"{API}/rules").status_code == 401


def test_recent_comments_show_their_verdict_in_spanish(admin: ConsoleSession, settings: Settings) -> None:
    journal = open_comment_journal(settings.store_url("comment_journal"))
    try:
        values = [simulate.comment(PAGE, "persona-1", "Ana Pérez", f"{PAGE}_42", "¿Precio? 😍"),
                  simulate.comment(PAGE, PAGE, "La página", f"{PAGE}_42", "¡Gracias a todos!")]
        journal.record([parse_feed_value(value["value"], PAGE) for value in values], datetime.now(timezone.utc))
    finally:
        journal.close()
    comments = admin.get(f"{API}/recent").json()["comments"]
    by_text = {c["message"]: c for c in comments}
    assert by_text["¿Precio? 😍"]["status_es"] == "Pendiente"
    assert by_text["¡Gracias a todos!"]["status_es"] == "Ignorado"
    assert "propia página" in by_text["¡Gracias a todos!"]["reason_es"]
    counts = admin.get(f"{API}/counts").json()["counts"]
    assert counts["received"] >= 1 and any(r["reason_code"] == "by_page" for r in counts["reasons"])
    page = admin.get("/console/comments")
    assert "¿Precio? 😍" in page.text and "Comentario de la propia página" in page.text
    assert counts["started"] >= 0 and '<th>Conversaciones iniciadas</th>' in page.text


def test_agents_and_editors_do_not_see_the_page(server: RunningServer) -> None:
    for username in ("agente", "editor"):
        session = ConsoleSession(server.base_url, username)
        try:
            assert session.get("/console/comments", follow_redirects=False).status_code == 403
            assert session.get(f"{API}/rules").status_code == 403
        finally:
            session.close()

