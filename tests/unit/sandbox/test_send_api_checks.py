"""The Graph sandbox's Send API (`POST /{version}/{page_id}/messages`) in-process: a body Meta refuses gets Meta's
(#100) error, never a 500 from the sandbox itself (meta.validate, shared with the outbox API and the rules API)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from core.settings import SANDBOX_PAGE_ID, SANDBOX_PAGE_TOKEN
from sandbox import graph as sandbox


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    app = FastAPI()
    app.state.sandbox = sandbox.GraphSandbox({SANDBOX_PAGE_ID: SANDBOX_PAGE_TOKEN})
    app.include_router(sandbox.router)
    with TestClient(app, raise_server_exceptions=False) as http:
        yield http


@pytest.mark.parametrize("content_type", [["text"], {"type": "text"}])
def test_a_quick_reply_content_type_that_is_a_list_or_object_is_metas_100(client: TestClient,
                                                                          content_type: Any) -> None:
    body = {"recipient": {"id": "6123456789012345"}, "messaging_type": "RESPONSE",
            "message": {"text": "¿Algo más?", "quick_replies": [{"content_type": content_type, "title": "Sí",
                                                                  "payload": "SI"}]}}
    answer = client.post(f"/v21.0/{SANDBOX_PAGE_ID}/messages", params={"access_token": SANDBOX_PAGE_TOKEN}, json=body)

    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["code"] == 100 and "content_type" in answer.json()["error"]["message"]
