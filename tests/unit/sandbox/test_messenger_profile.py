"""The Graph sandbox's Messenger Profile API (`/{version}/me/messenger_profile`), through its HTTP routes in-process.

Would catch: the sandbox taking a body Meta refuses (a greeting of 161 characters, 5 ice breakers, 21 menu items, a
menu without a Get Started button, no default locale, unknown keys), an error that is not Meta's shape (code 100,
the param named), POST replacing fields it does not name, DELETE or GET not honouring `fields`, a call left out of
`/sandbox/requests` or recorded with its token, and a token acting for another page."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.settings import SANDBOX_PAGE_ID, SANDBOX_PAGE_TOKEN
from sandbox import graph as sandbox

OTHER_PAGE_ID = "200000000000002"
OTHER_PAGE_TOKEN = "other-page-token"
PATH = "/v21.0/me/messenger_profile"
TOKEN = {"access_token": SANDBOX_PAGE_TOKEN}
GET_STARTED = {"get_started": {"payload": "/greet"}}


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = FastAPI()
    app.state.sandbox = sandbox.GraphSandbox({SANDBOX_PAGE_ID: SANDBOX_PAGE_TOKEN, OTHER_PAGE_ID: OTHER_PAGE_TOKEN})
    app.include_router(sandbox.router)
    with TestClient(app) as http:
        yield http


def post(client: TestClient, body: Any, **params: str) -> Any:
    return client.post(PATH, params={**TOKEN, **params}, json=body)


def fields_of(client: TestClient, fields: str, token: str = SANDBOX_PAGE_TOKEN) -> Any:
    return client.get(PATH, params={"access_token": token, "fields": fields})


def menu(count: int = 1, **item: Any) -> dict[str, Any]:
    entry = {"type": "postback", "title": "Menú", "payload": "/menu", **item}
    return {"persistent_menu": [{"locale": "default", "call_to_actions": [entry] * count}]}


def test_a_profile_is_set_read_and_deleted_like_metas(client: TestClient) -> None:
    body = {**GET_STARTED, "greeting": [{"locale": "default", "text": "¡Hola {{user_first_name}}!"}],
            "ice_breakers": [{"call_to_actions": [{"question": "¿Horario?", "payload": "/horario"}],
                              "locale": "default"}]}
    answer = post(client, body)
    assert (answer.status_code, answer.json()) == (200, {"result": "success"})
    assert fields_of(client, "get_started,greeting,ice_breakers,persistent_menu").json() == {"data": [body]}
    # POST replaces what it names only.
    assert post(client, menu()).status_code == 200
    assert fields_of(client, "get_started,persistent_menu").json()["data"][0] == {**GET_STARTED, **menu()}
    deleted = client.request("DELETE", PATH, params=TOKEN, json={"fields": ["greeting", "persistent_menu"]})
    assert (deleted.status_code, deleted.json()) == (200, {"result": "success"})
    assert fields_of(client, "greeting,persistent_menu").json() == {"data": []}
    assert "ice_breakers" in fields_of(client, "ice_breakers").json()["data"][0]
    # The other page's profile is its own.
    assert fields_of(client, "get_started", OTHER_PAGE_TOKEN).json() == {"data": []}


REFUSED = [
    ({"greeting": [{"locale": "default", "text": "x" * 161}]},
     "(#100) Length of param greeting[0][text] must be less than or equal to 160"),
    ({"greeting": [{"locale": "es_LA", "text": "Hola"}]}, "greeting"),
    ({"get_started": {"payload": "x" * 1001}}, "get_started[payload]"),
    ({"get_started": {}}, "(#100) The parameter get_started[payload] is required"),
    ({"ice_breakers": [{"call_to_actions": [{"question": "q", "payload": "p"}] * 5, "locale": "default"}]},
     "ice_breakers[0][call_to_actions]"),
    ({"ice_breakers": [{"question": "q", "payload": "p"}] * 5}, "param ice_breakers has too many elements"),
    ({"ice_breakers": [{"question": "q", "payload": "p"}, {"call_to_actions": [], "locale": "default"}]},
     "ice_breakers"),
    ({**GET_STARTED, **menu(21)}, "persistent_menu[0][call_to_actions]"),
    ({**GET_STARTED, **menu(title="t" * 31)}, "persistent_menu[0][call_to_actions][0][title]"),
    ({**GET_STARTED, **menu(type="nested")}, "persistent_menu[0][call_to_actions][0][type]"),
    ({**GET_STARTED, "persistent_menu": [{"locale": "default", "type": "postback", "title": "t", "url": "u"}]},
     '(#100) Invalid keys "type, title, url" were found in param "persistent_menu[0]".'),
    (menu(), "(#100) You must set a Get Started button if you also wish to use persistent menu."),
    ({"home_url": {"url": "https://ejemplo.ec"}}, "messenger_profile"),
    ({}, "Requires one of the params"),
    (["greeting"], "messenger_profile"),
]


@pytest.mark.parametrize(("body", "named"), REFUSED)
def test_the_sandbox_refuses_what_meta_refuses_with_code_100_naming_the_param(client: TestClient, body: Any,
                                                                              named: str) -> None:
    answer = post(client, body)
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert (error["code"], error["type"]) == (100, "OAuthException")
    assert named in error["message"] and error["message"].startswith("(#100) ")
    assert fields_of(client, "get_started,greeting,ice_breakers,persistent_menu").json() == {"data": []}


def test_a_menu_needs_a_get_started_button_set_before_or_in_the_same_call(client: TestClient) -> None:
    refused = post(client, menu()).json()["error"]
    assert refused["error_subcode"] == 2018145
    assert post(client, GET_STARTED).status_code == 200
    assert post(client, menu()).status_code == 200


def test_get_and_delete_name_known_fields(client: TestClient) -> None:
    assert "fields is required" in client.get(PATH, params=TOKEN).json()["error"]["message"]
    assert "fields[0] must be one of" in fields_of(client, "gretting").json()["error"]["message"]
    assert client.request("DELETE", PATH, params=TOKEN, json={"fields": []}).status_code == 400
    assert client.request("DELETE", PATH, params=TOKEN, json={}).status_code == 400


def test_tokens_act_for_their_own_page_only(client: TestClient) -> None:
    assert client.post(PATH, json=GET_STARTED).json()["error"]["code"] == 2500
    assert client.post(PATH, params={"access_token": "nope"}, json=GET_STARTED).json()["error"]["code"] == 190
    other = client.post(f"/v21.0/{OTHER_PAGE_ID}/messenger_profile", params=TOKEN, json=GET_STARTED)
    assert (other.status_code, other.json()["error"]["error_subcode"]) == (400, 33)


def test_every_call_is_recorded_without_its_token_and_reset_forgets_the_profiles(client: TestClient) -> None:
    post(client, {**GET_STARTED, "access_token": SANDBOX_PAGE_TOKEN})
    form = client.post(PATH, data={"access_token": SANDBOX_PAGE_TOKEN,
                                   "greeting": '[{"locale": "default", "text": "Hola"}]'})
    assert form.status_code == 200  # Meta takes form-encoded JSON params too
    post(client, {"greeting": []})
    fields_of(client, "greeting")
    records = client.get("/sandbox/requests", params={"page_id": SANDBOX_PAGE_ID}).json()
    assert [(r["method"], r["accepted"]) for r in records] == [
        ("POST", True), ("POST", True), ("POST", False), ("GET", True)]
    assert records[0]["body"] == GET_STARTED and records[0]["path"] == PATH
    assert records[3]["body"] == {"fields": ["greeting"]}
    assert SANDBOX_PAGE_TOKEN not in str(records)
    assert client.post("/sandbox/reset").status_code == 200
    assert fields_of(client, "get_started,greeting").json() == {"data": []}
