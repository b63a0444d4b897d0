"""The sandbox's comment form (`POST /sandbox/comments`, demo only): fuzzed bodies get a 4xx or, when valid, the
webhook's answer (here nothing listens: 502 in Spanish), never a 500; a valid comment teaches the Graph sandbox whose
comment it is, so the private reply answers that PSID, and only within 7 days of the comment.

The app is not started (no lifespan): only the route and the sandbox are exercised; the real path is
tests/integration/comments/test_comment_replies_flow.py."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import create_app
from core.settings import SANDBOX_PAGE_ID, SANDBOX_PAGE_TOKEN, Settings

DEAD_PORT = 9  # discard: nothing listens, the delivery is refused at once


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    data_dir: Path = tmp_path_factory.mktemp("sandbox-comments")
    app = create_app(Settings(data_dir=data_dir, webhook_port=DEAD_PORT))
    with TestClient(app, raise_server_exceptions=False) as opened:  # the lifespan too: the app as it runs
        yield opened


def private_reply(client: TestClient, comment_id: str) -> Any:
    body = {"recipient": {"comment_id": comment_id}, "messaging_type": "RESPONSE", "message": {"text": "Hola"}}
    return client.post(f"/v21.0/{SANDBOX_PAGE_ID}/messages", params={"access_token": SANDBOX_PAGE_TOKEN}, json=body)


def test_a_comment_is_registered_with_its_author_and_age(client: TestClient) -> None:
    fresh = client.post("/sandbox/comments", json={"user_id": "ana-1", "text": "¿precio?"})
    old = client.post("/sandbox/comments", json={"user_id": "ana-2", "text": "¿precio?", "days_ago": 8})

    assert fresh.status_code == old.status_code == 502  # the comment is made; nobody took the delivery
    assert "no respondió" in fresh.json()["detail"]
    sandbox = client.app.state.sandbox  # type: ignore[attr-defined]
    [(fresh_id, fresh_comment)] = [(k, v) for k, v in sandbox._comments.items() if v.author_psid == "ana-1"]
    [(old_id, _)] = [(k, v) for k, v in sandbox._comments.items() if v.author_psid == "ana-2"]
    assert fresh_comment.page_id == SANDBOX_PAGE_ID

    first, second = private_reply(client, fresh_id), private_reply(client, fresh_id)
    late = private_reply(client, old_id)
    assert (first.status_code, first.json()["recipient_id"]) == (200, "ana-1")
    assert (second.status_code, second.json()["error"]["code"]) == (400, 10900)
    assert "Activity already replied to" in second.json()["error"]["message"]
    assert (late.status_code, late.json()["error"]["code"]) == (400, 10903)
    public = client.post(f"/v21.0/{fresh_id}/comments", params={"access_token": SANDBOX_PAGE_TOKEN},
                         json={"message": "¡Te escribimos! 📩"})
    empty = client.post(f"/v21.0/{fresh_id}/comments", params={"access_token": SANDBOX_PAGE_TOKEN}, json={})
    stranger = client.post(f"/v21.0/{fresh_id}/comments", params={"access_token": "not-a-token"},
                           json={"message": "hola"})
    assert public.status_code == 200 and public.json()["id"].startswith(fresh_id.split("_")[0] + "_")
    assert (empty.status_code, empty.json()["error"]["code"]) == (400, 100)
    assert (stranger.status_code, stranger.json()["error"]["code"]) == (400, 190)


def test_a_simulated_post_answers_its_text_and_an_unknown_one_metas_error(client: TestClient) -> None:
    """The comment processor reads a post's text with GET /{post_id}?fields=message (rules by post text)."""
    post_id, bare_post = f"{SANDBOX_PAGE_ID}_5550001", f"{SANDBOX_PAGE_ID}_5550002"
    client.post("/sandbox/comments", json={"user_id": "ana-4", "text": "¿precio?", "post_id": post_id,
                                           "post_message": "Promo 2x1 en pizzas"})
    client.post("/sandbox/comments", json={"user_id": "ana-4", "text": "hola", "post_id": bare_post,
                                           "post_message": ""})

    def read(object_id: str, token: str | None = SANDBOX_PAGE_TOKEN) -> Any:
        params = {"fields": "message", **({"access_token": token} if token else {})}
        return client.get(f"/v21.0/{object_id}", params=params)

    known, bare, unknown = read(post_id), read(bare_post), read(f"{SANDBOX_PAGE_ID}_5550999")
    assert (known.status_code, known.json()) == (200, {"id": post_id, "message": "Promo 2x1 en pizzas"})
    assert (bare.status_code, bare.json()) == (200, {"id": bare_post}), "Meta leaves out an empty message"
    error = unknown.json()["error"]
    assert (unknown.status_code, error["code"], error["error_subcode"]) == (400, 100, 33)
    assert error["message"].startswith("Unsupported get request. Object with ID")
    assert read(post_id, token=None).json()["error"]["code"] == 104
    assert read(post_id, token="not-a-token").json()["error"]["code"] == 190


def test_an_empty_comment_is_refused_in_spanish(client: TestClient) -> None:
    answer = client.post("/sandbox/comments", json={"user_id": "ana", "text": "   "})
    assert answer.status_code == 422 and answer.json()["detail"] == "El comentario está vacío."


FINITE = st.floats(allow_nan=False, allow_infinity=False)
JSON = st.recursive(st.none() | st.booleans() | FINITE | st.integers() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
                    max_leaves=8)
FIELDS = st.fixed_dictionaries({}, optional={
    "user_id": st.text(max_size=70) | JSON, "text": st.text(max_size=50) | JSON, "from_name": st.text(max_size=120),
    "post_id": st.from_regex(r"[0-9]{1,3}_[0-9]{1,3}", fullmatch=True) | st.text(max_size=10),
    "parent_id": st.text(max_size=10) | st.none(), "days_ago": FINITE | st.integers() | JSON,
    "page_id": st.text(max_size=20), "post_message": st.text(max_size=30) | JSON,
})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=FIELDS | JSON)
def test_fuzzed_bodies_never_get_a_500(client: TestClient, body: Any) -> None:
    # Finite numbers only: JSON has no NaN or Infinity (the client refuses to encode them; `raw` below sends them).
    answer = client.post("/sandbox/comments", json=body)
    assert answer.status_code in (200, 422, 502), (body, answer.status_code, answer.text)


@pytest.mark.parametrize("raw", [b'{"user_id": "ana", "text": "hola", "days_ago": NaN}',
                                 b'{"user_id": "ana", "text": "hola", "days_ago": Infinity}',
                                 b'{"user_id": "ana", "text": "hola", "days_ago": 1e999}'])
def test_non_finite_numbers_are_a_422(client: TestClient, raw: bytes) -> None:
    answer = client.post("/sandbox/comments", content=raw, headers={"content-type": "application/json"})
    assert answer.status_code == 422, answer.text
