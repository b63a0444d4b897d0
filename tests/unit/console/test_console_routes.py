"""Every route of the app, enumerated from the app itself, against the table in tests/support/console_routes.py.

A new route fails `test_every_route_is_in_the_table` until someone decides who may call it; then the
behavioural tests check, over the whole app, that nobody else can: without credentials every non-public route
is refused, and each console route answers 403 to every role the table does not list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from bot.app import create_app
from console.auth import Authenticator
from console.events import EventHub
from console.routes import route_roles
from core.settings import Settings
from tests.support.console_fakes import FakeHandoff, FakeKnowledgeEditor
from tests.support.console_routes import (
    DEVELOPMENT_ONLY_OPEN_PREFIXES,
    PAGE,
    PRODUCTION,
    PUBLIC,
    ROLES,
    SERVICE_TOKEN_ONLY,
    app_routes,
    concrete,
    unknown_routes,
)
from tests.unit.console.conftest import fast_hasher

ROLE_USERS = {"admin": "t-admin", "agent": "t-agent", "editor": "t-editor"}
PASSWORD = "contraseña-de-prueba"


def build(tmp_path: Path, environment: str) -> FastAPI:
    settings = Settings(data_dir=tmp_path / environment, **(PRODUCTION if environment == "production" else {}))
    settings.check_production_safe()
    app = create_app(settings)  # the lifespan does not run: the console's collaborators are fakes
    auth = Authenticator(app.state.console_auth.store, settings, hasher=fast_hasher())
    app.state.console_auth = auth
    for role, username in ROLE_USERS.items():
        auth.add_user(username, role, PASSWORD)
    handoff = FakeHandoff()
    handoff.add_user_message(PAGE, "u1", "hola")
    app.state.handoff = handoff
    app.state.knowledge_editor = FakeKnowledgeEditor()
    app.state.console_hub = EventHub(handoff.subscribe, stream_seconds=0.1)
    return app


@pytest.fixture(scope="module")
def apps(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FastAPI]:
    tmp_path = tmp_path_factory.mktemp("routes")
    return {environment: build(tmp_path, environment) for environment in ("development", "production")}


def call(client: TestClient, method: str, path: str, **kwargs: Any) -> Any:
    return client.request(method, concrete(path), follow_redirects=False, **kwargs)


@pytest.mark.parametrize("environment", ["development", "production"])
def test_every_route_is_in_the_table(apps: dict[str, FastAPI], environment: str) -> None:
    routes = app_routes(apps[environment])
    known = PUBLIC | SERVICE_TOKEN_ONLY | set(ROLES)
    unknown = unknown_routes(routes)
    assert not unknown, f"routes nobody decided the access of (add them to this table and protect them): {unknown}"
    assert known <= routes, f"routes in the table but not in the app: {sorted(known - routes)}"
    dev_only = {r for r in routes if r[1].startswith(DEVELOPMENT_ONLY_OPEN_PREFIXES)}
    if environment == "production":
        assert dev_only == set(), f"development-only routes mounted in production: {sorted(dev_only)}"
    else:
        assert ("GET", "/sandbox/chat") in dev_only


def test_the_declared_roles_are_the_table(apps: dict[str, FastAPI]) -> None:
    declared = {(r["method"], r["path"]): r for r in route_roles(apps["production"])}
    for key, (roles, service) in ROLES.items():
        assert (frozenset(declared[key]["roles"]), declared[key]["service_token"]) == (roles, service), key
    for key in PUBLIC | SERVICE_TOKEN_ONLY:
        assert declared[key]["roles"] is None, key


@pytest.mark.parametrize("environment", ["development", "production"])
def test_nothing_but_the_public_routes_answers_without_credentials(apps: dict[str, FastAPI], environment: str) -> None:
    client = TestClient(apps[environment])
    for method, path in sorted(app_routes(apps[environment])):
        if (method, path) in PUBLIC or path.startswith(DEVELOPMENT_ONLY_OPEN_PREFIXES):
            continue
        answer = call(client, method, path, json={})
        if path.startswith("/console") and method == "GET":
            assert answer.status_code == 303, (method, path, answer.status_code)
            assert answer.headers["location"].startswith("/console/login?next=")
        else:
            assert answer.status_code in (401, 303), (method, path, answer.status_code, answer.text[:200])
        if answer.status_code == 401:  # the refusal names the missing credential: a login, or the service token
            body = answer.json()
            if (method, path) in SERVICE_TOKEN_ONLY:
                assert body["error"]["reason_code"] == "service_token_required", (method, path, body)
                assert "service token" in body["error"]["message"], (method, path, body)
            else:
                assert body["error"]["reason_code"] == "not_authenticated", (method, path, body)
                assert "Inicie sesión" in body["error"]["message"], (method, path, body)
        else:
            assert answer.headers["location"].startswith("/console/login"), (method, path, answer.headers)


def test_with_a_real_app_secret_in_development_the_graph_sandbox_is_mounted_but_not_the_chat(tmp_path: Path) -> None:
    # The chat signs webhook events with the app secret: it must never sign with a real one.
    app = create_app(Settings(environment="development", data_dir=tmp_path, app_secret=PRODUCTION["app_secret"]))
    routes = app_routes(app)
    assert ("GET", "/sandbox/sent") in routes, "the Graph API sandbox stays"
    assert not {route for route in routes if route[1].startswith("/sandbox/chat")}
    client = TestClient(app)
    assert client.get("/sandbox/chat").status_code == 404
    assert client.post("/sandbox/chat/send", json={"kind": "text", "text": "hola"}).status_code in (404, 405)


def test_production_serves_health_and_the_login_only(apps: dict[str, FastAPI]) -> None:
    client = TestClient(apps["production"])
    assert client.get("/health").json() == {"status": "ok", "sandbox": False}
    assert client.get("/console/login").status_code == 200
    for path in ("/docs", "/openapi.json", "/sandbox/chat", "/sandbox/sent", "/v21.0/me/messages"):
        assert client.get(path).status_code in (404, 405), path


def login(client: TestClient, role: str) -> str:
    answer = client.post("/api/console/login", json={"username": ROLE_USERS[role], "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return str(answer.json()["csrf_token"])


@pytest.mark.parametrize("role", ["admin", "agent", "editor"])
def test_each_role_reaches_exactly_its_routes(apps: dict[str, FastAPI], role: str) -> None:
    client = TestClient(apps["production"], base_url="https://testserver")  # production cookies are Secure
    csrf = login(client, role)
    for (method, path), (roles, _service) in sorted(ROLES.items()):
        if path.endswith("/logout"):
            continue  # would end the session the loop uses
        answer = call(client, method, path, json={}, headers={"X-CSRF-Token": csrf})
        if role in roles:
            assert answer.status_code not in (401, 403), (role, method, path, answer.status_code, answer.text[:300])
        else:
            assert answer.status_code == 403, (role, method, path, answer.status_code)
    # The logouts last.
    for method, path in (("POST", "/api/console/logout"), ("POST", "/console/logout")):
        assert call(client, method, path, headers={"X-CSRF-Token": csrf}).status_code in (200, 303)
        csrf = login(client, role)


def test_the_service_token_reaches_exactly_its_routes(apps: dict[str, FastAPI]) -> None:
    # Past authentication the outbox and internal routes need services the unit test does not start (500).
    client = TestClient(apps["production"], raise_server_exceptions=False)
    bearer = {"Authorization": f"Bearer {PRODUCTION['service_token']}"}
    for (method, path), (_roles, service) in sorted(ROLES.items()):
        answer = call(client, method, path, json={}, headers=bearer)
        if service:
            assert answer.status_code not in (401, 403), (method, path, answer.status_code)
        else:
            assert answer.status_code in (401, 303), (method, path, answer.status_code)
    for method, path in sorted(SERVICE_TOKEN_ONLY):
        assert call(client, method, path, json={}, headers=bearer).status_code not in (401, 403), (method, path)
