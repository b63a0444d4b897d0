"""The console's page profile API and page, in-process: the real console, its store in a temporary SQLite file, the
real Graph client answered by the Graph sandbox (tests/support/graph_sandbox_transport.py).

Would catch: a profile saved without being checked, a refusal that is not a 422 naming its field in Spanish, a body
that ends in a 500, a non-admin reaching the profile, the service token refused, "Aplicar en Facebook" not reaching
the sandbox or not recorded, an unconfigured page accepted, and a page that does not render."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.settings import SANDBOX_PAGE_ID, SANDBOX_PAGE_TOKEN
from meta.graph import GraphClient
from sandbox.graph import GraphSandbox, graph_error
from tests.support.graph_sandbox_transport import SandboxTransport
from tests.unit.console.conftest import ConsoleApp, ConsoleClient

API = "/api/console/page-profile"
PROFILE = {
    "get_started": {"payload": "/greet"},
    "greeting": [{"locale": "default", "text": "¡Hola {{user_first_name}}!"}],
    "ice_breakers": [{"call_to_actions": [{"question": "¿Horario?", "payload": "/horario"}], "locale": "default"}],
}


@pytest.fixture
def sandbox(console_env: ConsoleApp) -> GraphSandbox:
    sandbox = GraphSandbox({SANDBOX_PAGE_ID: SANDBOX_PAGE_TOKEN})
    transport = SandboxTransport(sandbox)
    console_env.app.state.graph = GraphClient({SANDBOX_PAGE_ID: SANDBOX_PAGE_TOKEN}, transport=transport)
    console_env.app.state.test_transport = transport
    return sandbox


@pytest.fixture
def admin(console_env: ConsoleApp, sandbox: GraphSandbox) -> ConsoleClient:
    return console_env.login("admin")


def save(admin: ConsoleClient, profile: Any, page_id: str = SANDBOX_PAGE_ID) -> Any:
    return admin.send("PUT", API, json={"page_id": page_id, "profile": profile})


def test_an_admin_edits_and_applies_the_profile(admin: ConsoleClient, sandbox: GraphSandbox,
                                               console_env: ConsoleApp) -> None:
    first = admin.get(API, params={"page_id": SANDBOX_PAGE_ID}).json()
    assert first["saved"] is False and first["profile"]["get_started"] == {"payload": "/greet"}
    assert first["pages"] == [SANDBOX_PAGE_ID] and first["limits"]["greeting_text"] == 160

    saved = save(admin, PROFILE)
    assert saved.status_code == 200, saved.text
    assert saved.json()["profile"] == PROFILE and saved.json()["status"]["has_unapplied_changes"] is True
    assert sandbox.requests() == []  # saving does not call Facebook

    applied = admin.post(f"{API}/apply", json={"page_id": SANDBOX_PAGE_ID})
    assert applied.status_code == 200, applied.text
    status = applied.json()["status"]
    assert (status["applied_by"], status["last_ok"], status["has_unapplied_changes"]) == ("admin", True, False)
    assert status["applied_at"] == console_env.clock.now.isoformat()
    assert sandbox.messenger_profile(SANDBOX_PAGE_ID) == PROFILE
    live = admin.get(f"{API}/live", params={"page_id": SANDBOX_PAGE_ID}).json()
    assert live == {"page_id": SANDBOX_PAGE_ID, "live": PROFILE}


def test_a_refused_profile_is_a_422_naming_the_field(admin: ConsoleClient) -> None:
    answer = save(admin, {"greeting": [{"locale": "default", "text": "x" * 161}]})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert (error["reason_code"], error["field"]) == ("invalid_profile", "greeting[0][text]")
    assert "161" in error["message"] and "Saludo" in error["message"]
    assert admin.get(API, params={"page_id": SANDBOX_PAGE_ID}).json()["saved"] is False


def test_facebooks_refusal_is_recorded_and_answered_in_spanish(admin: ConsoleClient, console_env: ConsoleApp) -> None:
    save(admin, PROFILE)
    error = graph_error(4)
    console_env.app.state.test_transport.fail_with = (error.http_status, error.to_body("t"), {"Retry-After": "60"})
    answer = admin.post(f"{API}/apply", json={"page_id": SANDBOX_PAGE_ID})
    assert answer.status_code == 429 and answer.headers["retry-after"] == "60"
    body = answer.json()["error"]
    assert body["reason_code"] == "facebook_rate_limited" and "10 cada 10 minutos" in body["message"]
    status = admin.get(API, params={"page_id": SANDBOX_PAGE_ID}).json()["status"]
    assert status["last_ok"] is False and status["last_answer"]["error"]["code"] == 4


def test_text_no_database_takes_is_refused_not_a_500(admin: ConsoleClient) -> None:
    for profile in ({"greeting": [{"locale": "default", "text": "Hola \ud800"}]},
                    {"get_started": {"payload": "a\x00"}}, {"\ud800": 1},
                    {"persistent_menu": [{"locale": "default", "\udfff": 1}]}):
        body = json.dumps({"page_id": SANDBOX_PAGE_ID, "profile": profile}).encode()  # "\\ud800" escaped, as sent
        answer = admin.send("PUT", API, content=body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["field"]


def test_unknown_pages_and_nothing_saved_are_refused(admin: ConsoleClient) -> None:
    assert admin.get(API, params={"page_id": "999"}).json()["error"]["reason_code"] == "unknown_page"
    assert save(admin, PROFILE, "999").status_code == 422
    nothing = admin.post(f"{API}/apply", json={"page_id": SANDBOX_PAGE_ID})
    assert (nothing.status_code, nothing.json()["error"]["reason_code"]) == (409, "nothing_to_apply")
    assert admin.get(API, params={"page_id": "abc"}).status_code == 422


def test_admins_only_and_the_service_token(console_env: ConsoleApp, sandbox: GraphSandbox) -> None:
    for username in ("agente", "editor"):
        person = console_env.login(username)
        assert person.get(API, params={"page_id": SANDBOX_PAGE_ID}).status_code == 403
        assert person.send("PUT", API, json={"page_id": SANDBOX_PAGE_ID, "profile": PROFILE}).status_code == 403
        assert person.get("/console/page-profile").status_code == 403
    token = {"Authorization": f"Bearer {console_env.app.state.settings.service_token}"}
    client = console_env.anonymous()
    assert client.put(API, json={"page_id": SANDBOX_PAGE_ID, "profile": PROFILE}, headers=token).status_code == 200
    assert client.post(f"{API}/apply", json={"page_id": SANDBOX_PAGE_ID}, headers=token).status_code == 200
    assert sandbox.messenger_profile(SANDBOX_PAGE_ID) == PROFILE
    assert client.get(API, params={"page_id": SANDBOX_PAGE_ID}).status_code == 401


def test_the_page_renders_for_an_admin(admin: ConsoleClient) -> None:
    page = admin.get("/console/page-profile")
    assert page.status_code == 200
    for words in ("Perfil de Messenger", "Aplicar en Facebook", 'id="page-data"', "{{user_first_name}}",
                  'href="/console/page-profile" aria-current="page"'):
        assert words in page.text, words
    assert "<script>" not in page.text  # the CSP forbids inline scripts: data only, as JSON
    assert admin.get("/console/page-profile", params={"page_id": "999"}).status_code == 422


LEAVES = st.none() | st.booleans() | st.integers() | st.text(max_size=200)
JSON = st.recursive(LEAVES, lambda children: st.lists(children, max_size=4)
                    | st.dictionaries(st.text(max_size=20), children, max_size=4), max_leaves=20)
PROFILE_KEYS = st.sampled_from(["get_started", "greeting", "ice_breakers", "persistent_menu"])


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(body=st.fixed_dictionaries({"page_id": st.just(SANDBOX_PAGE_ID), "profile": st.dictionaries(PROFILE_KEYS, JSON)})
       | st.dictionaries(st.sampled_from(["page_id", "profile", "x"]), JSON | st.dictionaries(PROFILE_KEYS, JSON))
       | JSON)
def test_any_body_is_saved_or_refused_never_a_500(admin: ConsoleClient, body: Any) -> None:
    answer = admin.send("PUT", API, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    assert answer.status_code in (200, 422), (answer.status_code, answer.text)
    if answer.status_code == 422:
        assert answer.json()["error"]["message"]
