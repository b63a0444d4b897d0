"""The "Contactos" API and pages through the real app under uvicorn, over HTTP, with the real contact store (a SQLite
file the test seeds as the contact sync would): an agent finds contacts (by name without accents, tag, campaign, open
window, page by page), tags and untags them, edits fields and notes; the service token does the same; an editor is
refused; bad bodies are a 422 in Spanish and no body at all is a 500 (Hypothesis); the pages show what the API says.

Would catch: a cursor that repeats or skips a contact, a tag kept twice in another spelling, a field or note the API
accepts but the page cannot show, the window's time left missing, the service token refused where the design admits
it, an editor reaching contacts, a NUL or a lone surrogate reaching the database (a 500)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import create_app
from contacts.store import ContactsStore, open_contacts_store
from core.settings import DEMO_SERVICE_TOKEN, SANDBOX_PAGE_ID, Settings
from tests.support.console_client import ConsoleSession
from tests.support.servers import RunningServer, serve_asgi

PAGE = SANDBOX_PAGE_ID
API = "/api/console/contacts"
NOW = datetime.now(timezone.utc)


@pytest.fixture(scope="module")
def app_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(data_dir=tmp_path_factory.mktemp("contacts-api"), comments_poll_seconds=3600.0)


@pytest.fixture(scope="module")
def store(app_settings: Settings) -> Iterator[ContactsStore]:
    opened = open_contacts_store(app_settings.store_url("contacts"))
    seed(opened)
    yield opened
    opened.close()


def seed(store: ContactsStore) -> None:
    """Three people: Andrés wrote an hour ago by an m.me link, Lucía three days ago, one without a profile."""
    store.upsert_seen(PAGE, "1001", NOW - timedelta(hours=1), campaign="menu_mesas")
    store.record_profile(PAGE, "1001", "Andrés", "Pazmiño", "https://example.invalid/a.jpg", "es_LA", "fetched",
                         None, NOW)
    store.upsert_seen(PAGE, "1002", NOW - timedelta(days=3))
    store.record_profile(PAGE, "1002", "Lucía", "Ortega", None, "es_LA", "fetched", None, NOW)
    store.upsert_seen(PAGE, "1003", NOW - timedelta(days=10), campaign="ad:6123")
    store.record_profile(PAGE, "1003", None, None, None, None, "no_permission",
                         "La página no tiene permiso para leer el perfil (pages_messaging).", NOW)


@pytest.fixture(scope="module")
def server(app_settings: Settings, store: ContactsStore) -> Iterator[RunningServer]:
    with serve_asgi(create_app(app_settings)) as running:
        yield running


@pytest.fixture(scope="module")
def agent(server: RunningServer) -> Iterator[ConsoleSession]:
    session = ConsoleSession(server.base_url, "agente")
    yield session
    session.close()


def contact(session: ConsoleSession, psid: str) -> dict[str, Any]:
    answer = session.get(f"{API}/{PAGE}/{psid}")
    assert answer.status_code == 200, answer.text
    return dict(answer.json()["contact"])


def test_an_agent_finds_contacts_page_by_page(agent: ConsoleSession) -> None:
    found = agent.get(API, params={"q": "andres pazmino"}).json()
    assert [c["psid"] for c in found["contacts"]] == ["1001"] and found["total"] == 1
    andres = found["contacts"][0]
    assert (andres["display_name"], andres["has_name"], andres["campaign_es"]) == (
        "Andrés Pazmiño", True, "Enlace m.me «menu_mesas»")
    assert andres["window"]["open"] is True and 22 * 3600 < andres["window"]["standard_seconds_left"] <= 23 * 3600
    assert andres["conversation_url"] == f"/console/conversations/{PAGE}:1001"

    seen: list[str] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = agent.get(API, params=params).json()
        assert page["total"] >= 3
        seen += [c["psid"] for c in page["contacts"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(set(seen) & {"1001", "1002", "1003"}) == ["1001", "1002", "1003"] and len(seen) == len(set(seen))

    assert [c["psid"] for c in agent.get(API, params={"campaign": "ad:6123"}).json()["contacts"]] == ["1003"]
    open_now = {c["psid"] for c in agent.get(API, params={"window_open": "true"}).json()["contacts"]}
    assert "1001" in open_now and not open_now & {"1002", "1003"}
    lucia = contact(agent, "1002")["window"]
    assert lucia["open"] is False and lucia["standard_seconds_left"] is None
    assert 3 * 86400 < lucia["human_agent_seconds_left"] <= 4 * 86400 and "HUMAN_AGENT" in lucia["human_agent_es"]
    nameless = contact(agent, "1003")
    assert nameless["has_name"] is False and nameless["display_name"].startswith("Sin nombre")
    assert "pages_messaging" in nameless["profile_reason"] and nameless["window"]["summary_es"] == "Cerrada"

    bad = agent.get(API, params={"cursor": "no-es-un-cursor"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "cursor"


def test_an_agent_tags_edits_fields_and_writes_notes(agent: ConsoleSession) -> None:
    tagged = agent.post(f"{API}/{PAGE}/1002/tags", json={"tags": ["Cliente VIP", "cliente vip", "Quito"]})
    assert tagged.status_code == 200, tagged.text
    assert sorted(tagged.json()["contact"]["tags"]) == ["Cliente VIP", "Quito"]
    again = agent.post(f"{API}/{PAGE}/1002/tags", json={"tags": ["CLIENTE VÍP"]}).json()["contact"]
    assert sorted(again["tags"]) == ["Cliente VIP", "Quito"]
    assert [c["psid"] for c in agent.get(API, params={"tag": "cliente vip"}).json()["contacts"]] == ["1002"]
    tags = {t["tag"]: t["count"] for t in agent.get("/api/console/tags").json()["tags"]}
    assert tags["Cliente VIP"] == 1
    removed = agent.send("DELETE", f"{API}/{PAGE}/1002/tags/quito").json()["contact"]
    assert removed["tags"] == ["Cliente VIP"]

    fields = agent.send("PATCH", f"{API}/{PAGE}/1002/fields", json={"fields": {"ciudad": "Quito", "pedido": "A-17"}})
    assert fields.status_code == 200 and fields.json()["contact"]["fields"] == {"ciudad": "Quito", "pedido": "A-17"}
    deleted = agent.send("PATCH", f"{API}/{PAGE}/1002/fields", json={"fields": {"pedido": None}}).json()["contact"]
    assert deleted["fields"] == {"ciudad": "Quito"}
    assert [c["psid"] for c in agent.get(API, params={"q": "quito"}).json()["contacts"]] == ["1002"]

    first = agent.post(f"{API}/{PAGE}/1002/notes", json={"text": "Prefiere que le escriban por la tarde."})
    assert first.status_code == 201, first.text
    assert first.json()["note"]["author"] == "agente" and first.json()["contact"]["notes_count"] == 1
    agent.post(f"{API}/{PAGE}/1002/notes", json={"text": "Pidió el catálogo\ncon precios 😀"})
    notes = agent.get(f"{API}/{PAGE}/1002/notes").json()["notes"]
    assert [n["text"] for n in notes] == ["Pidió el catálogo\ncon precios 😀", "Prefiere que le escriban por la tarde."]

    page = agent.get(f"/console/contacts/{PAGE}/1002")
    assert page.status_code == 200
    for shown in ("Lucía Ortega", "Cliente VIP", "ciudad", "Prefiere que le escriban por la tarde.", "HUMAN_AGENT",
                  f"/console/conversations/{PAGE}:1002"):
        assert shown in page.text, shown
    listing = agent.get("/console/contacts", params={"q": "lucia"})
    assert listing.status_code == 200 and "Lucía Ortega" in listing.text and "Andrés" not in listing.text


def test_tags_a_path_cannot_carry_are_removed_through_the_body(agent: ConsoleSession) -> None:
    odd = ["1/2 pollo", "Quito/Norte", "..", ".", "a%2Fb"]
    tagged = agent.post(f"{API}/{PAGE}/1003/tags", json={"tags": [*odd, "se queda"]})
    assert tagged.status_code == 200, tagged.text
    assert sorted(tagged.json()["contact"]["tags"]) == sorted([*odd, "se queda"])
    removed = agent.post(f"{API}/{PAGE}/1003/tags/remove", json={"tags": ["QUITO/norte", "..", "1/2 pollo"]})
    assert removed.status_code == 200, removed.text
    assert sorted(removed.json()["contact"]["tags"]) == [".", "a%2Fb", "se queda"]
    rest = agent.post(f"{API}/{PAGE}/1003/tags/remove", json={"tags": [".", "a%2Fb", "se queda", "nunca tuvo"]})
    assert rest.status_code == 200 and rest.json()["contact"]["tags"] == []
    refused = agent.post(f"{API}/{PAGE}/1003/tags/remove", json={"tags": ["a\nb"]})
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "tags"
    assert agent.post(f"{API}/{PAGE}/999999/tags/remove", json={"tags": ["x"]}).status_code == 404


@pytest.mark.parametrize(("method", "path", "body", "field", "words"), [
    ("POST", f"{API}/{PAGE}/1001/tags", {"tags": ["x" * 41]}, "tags", "más de 40"),
    ("POST", f"{API}/{PAGE}/1001/tags", {"tags": ["   "]}, "tags", "vacía"),
    ("POST", f"{API}/{PAGE}/1001/tags", {"tags": ["a\nb"]}, "tags", "saltos de línea"),
    ("PATCH", f"{API}/{PAGE}/1001/fields", {"fields": {"Ciudad": "Quito"}}, "fields.Ciudad", "minúsculas"),
    ("PATCH", f"{API}/{PAGE}/1001/fields", {"fields": {"ciudad": "x" * 501}}, "fields.ciudad", "más de 500"),
    ("POST", f"{API}/{PAGE}/1001/notes", {"text": "x" * 5001}, "note", "más de 5000"),
    ("POST", f"{API}/{PAGE}/1001/notes", {"text": "con \u0000 nulo"}, "note", "nulo"),
    ("GET", f"{API}/pagina/1001", None, "page_id", "dígitos"),
    ("GET", f"{API}/{PAGE}/a_b", None, "psid", "PSID"),
])
def test_bad_values_are_a_422_in_spanish(agent: ConsoleSession, method: str, path: str, body: Any, field: str,
                                         words: str) -> None:
    answer = agent.send(method, path, json=body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert (error["reason_code"], error["field"]) == ("contact_invalid", field)
    assert words in error["message"]


def test_unknown_contacts_and_shapeless_bodies(agent: ConsoleSession) -> None:
    missing = agent.post(f"{API}/{PAGE}/999999/tags", json={"tags": ["vip"]})
    assert missing.status_code == 404 and missing.json()["error"]["reason_code"] == "contact_not_found"
    assert "999999" in missing.json()["error"]["message"]
    assert agent.get(f"/console/contacts/{PAGE}/999999").status_code == 404
    for body in ({"tags": "vip"}, {"fields": ["ciudad"]}, {"text": 5}, [], {"tags": []}):
        path = "notes" if "text" in body else "fields" if "fields" in body else "tags"
        method = "PATCH" if path == "fields" else "POST"
        answer = agent.send(method, f"{API}/{PAGE}/1001/{path}", json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert answer.json()["error"]["message"].startswith("La solicitud no es válida")


def test_an_editor_is_refused_and_the_service_token_admitted(server: RunningServer, agent: ConsoleSession) -> None:
    editor = ConsoleSession(server.base_url, "editor")
    try:
        for method, path, body in (("GET", API, None), ("GET", f"{API}/{PAGE}/1001", None),
                                   ("POST", f"{API}/{PAGE}/1001/tags", {"tags": ["x"]}),
                                   ("POST", f"{API}/{PAGE}/1001/tags/remove", {"tags": ["x"]}),
                                   ("PATCH", f"{API}/{PAGE}/1001/fields", {"fields": {"a": "b"}}),
                                   ("POST", f"{API}/{PAGE}/1001/notes", {"text": "x"}),
                                   ("GET", "/api/console/tags", None), ("GET", "/console/contacts", None)):
            answer = editor.send(method, path, json=body)
            assert answer.status_code == 403, (method, path, answer.status_code)
    finally:
        editor.close()
    bearer = {"Authorization": f"Bearer {DEMO_SERVICE_TOKEN}"}
    with httpx.Client(base_url=server.base_url, headers=bearer, timeout=10) as http:
        noted = http.post(f"{API}/{PAGE}/1001/notes", json={"text": "Desde el CRM"})
        assert noted.status_code == 201 and noted.json()["note"]["author"] == "service"
        assert http.post(f"{API}/{PAGE}/1001/tags", json={"tags": ["crm"]}).json()["contact"]["tags"] == ["crm"]
        assert http.get(API, params={"tag": "crm"}).json()["total"] == 1
    with httpx.Client(base_url=server.base_url, timeout=10) as anonymous:
        assert anonymous.get(API).status_code == 401


def test_the_openapi_schema_documents_the_contacts_api(server: RunningServer) -> None:
    schema = httpx.get(server.base_url + "/openapi.json", timeout=10).json()
    listed = schema["paths"][API]["get"]
    assert {p["name"] for p in listed["parameters"]} >= {"q", "tag", "campaign", "window_open", "limit", "cursor"}
    assert listed["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("ContactListOut")
    contact_schema = schema["components"]["schemas"]["ContactOut"]["properties"]
    assert {"tags", "fields", "window", "profile_reason", "campaign"} <= set(contact_schema)
    assert "TagsBody" in json.dumps(schema["paths"][f"{API}/{{page_id}}/{{psid}}/tags"]["post"])


TEXT = st.text(st.characters(codec="utf-8") | st.sampled_from(["\x00", "\ud800", "=", ";", "\n", "é"]), max_size=60)
JSON_VALUE = st.recursive(st.none() | st.booleans() | st.integers() | TEXT,
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
                          max_leaves=6)
BODIES = st.one_of(
    st.tuples(st.just(("POST", "tags")), st.fixed_dictionaries({"tags": st.lists(TEXT | JSON_VALUE, max_size=4)})),
    st.tuples(st.just(("PATCH", "fields")), st.fixed_dictionaries({"fields": st.dictionaries(
        TEXT | st.sampled_from(["ciudad", "pedido_1"]), st.none() | TEXT | JSON_VALUE, max_size=4)})),
    st.tuples(st.just(("POST", "notes")), st.fixed_dictionaries({"text": TEXT | JSON_VALUE})),
    st.tuples(st.just(("POST", "tags/remove")),
              st.fixed_dictionaries({"tags": st.lists(TEXT | JSON_VALUE, max_size=4)})),
    st.tuples(st.sampled_from([("POST", "tags"), ("PATCH", "fields"), ("POST", "notes"), ("POST", "tags/remove")]),
              JSON_VALUE),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=BODIES)
def test_no_body_is_a_500(agent: ConsoleSession, case: tuple[tuple[str, str], Any]) -> None:
    (method, path), body = case
    content = json.dumps(body, ensure_ascii=True).encode()  # lone surrogates travel as \ud800 escapes
    answer = agent.send(method, f"{API}/{PAGE}/1003/{path}", content=content,
                        headers={"Content-Type": "application/json"})
    assert answer.status_code in (200, 201, 422), (body, answer.status_code, answer.text[:300])
    if answer.status_code == 422:
        assert answer.json()["error"]["message"]


def test_the_tags_and_the_last_message_are_in_the_apps_openapi_schema(server: RunningServer,
                                                                      agent: ConsoleSession) -> None:
    schema = httpx.get(f"{server.base_url}/openapi.json", timeout=10).json()
    assert "get" in schema["paths"]["/api/console/tags"]
    assert "post" in schema["paths"]["/api/console/contacts/{page_id}/{psid}/tags"]
    assert "post" in schema["paths"]["/api/console/contacts/{page_id}/{psid}/tags/remove"]
    models = schema["components"]["schemas"]
    assert {"tags", "last_text", "message_count"} <= set(models["ContactOut"]["properties"])
    assert {"unread_count", "last_message_text"} <= set(models["InboxRow"]["properties"])
    assert "unread_conversations" in models["InboxOut"]["properties"]
    inbox = agent.get("/api/console/inbox").json()
    assert inbox["unread_conversations"] == sum(1 for row in inbox["conversations"] if row["unread"])
