"""The Graph sandbox answers `GET /{page_id}?fields=name` as Meta does for a page (the console's `{pagina}` variable
reads it), through its HTTP routes in-process; and the console keeps the name it read.

Would catch: a page id answered as a person's profile, another page's token reading the page, a field the node does
not have answered, the console asking Meta on every reply or keeping a failure for a day."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from console.page_names import KEEP_FAILURE, page_name_of
from core.settings import SANDBOX_PAGE_ID, SANDBOX_PAGE_TOKEN
from meta.errors import TransientGraphError
from sandbox import graph as sandbox

OTHER_PAGE_ID = "200000000000002"
OTHER_PAGE_TOKEN = "other-page-token"


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = FastAPI()
    app.state.sandbox = sandbox.GraphSandbox({SANDBOX_PAGE_ID: SANDBOX_PAGE_TOKEN, OTHER_PAGE_ID: OTHER_PAGE_TOKEN})
    app.include_router(sandbox.router)
    with TestClient(app) as http:
        yield http


def test_a_page_is_read_with_its_own_token(client: TestClient) -> None:
    answer = client.get(f"/v21.0/{SANDBOX_PAGE_ID}", params={"access_token": SANDBOX_PAGE_TOKEN, "fields": "name"})
    assert answer.status_code == 200
    assert answer.json() == {"id": SANDBOX_PAGE_ID, "name": sandbox.sandbox_page_name(SANDBOX_PAGE_ID)}
    other = client.get(f"/v21.0/{SANDBOX_PAGE_ID}", params={"access_token": OTHER_PAGE_TOKEN, "fields": "name"})
    assert other.status_code == 400 and other.json()["error"]["code"] == 100
    unknown = client.get(f"/v21.0/{SANDBOX_PAGE_ID}",
                         params={"access_token": SANDBOX_PAGE_TOKEN, "fields": "name,first_name"})
    assert unknown.status_code == 400 and "first_name" in unknown.json()["error"]["message"]
    person = client.get("/v21.0/3000000000000003", params={"access_token": SANDBOX_PAGE_TOKEN,
                                                            "fields": "first_name"})
    assert person.status_code == 200 and "first_name" in person.json(), "a PSID is still a person"


class CountingGraph:
    def __init__(self, answers: list[Any]) -> None:
        self.answers = answers
        self.calls = 0

    async def get_page(self, page_id: str, fields: Any) -> dict[str, Any]:
        self.calls += 1
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return {"id": page_id, **answer}


def request_with(graph: CountingGraph) -> Any:
    return SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(graph=graph)))


def test_the_console_keeps_the_name_and_asks_again_after_a_failure() -> None:
    t0 = datetime(2026, 11, 30, 15, 0, tzinfo=timezone.utc)
    graph = CountingGraph([TransientGraphError("Meta is down"), {"name": "Farmacia La Merced"}])
    request = request_with(graph)
    assert asyncio.run(page_name_of(request, SANDBOX_PAGE_ID, t0)) is None
    assert asyncio.run(page_name_of(request, SANDBOX_PAGE_ID, t0 + timedelta(minutes=1))) is None
    assert graph.calls == 1, "a failure is kept for a while: replies do not wait on Meta each time"
    later = t0 + KEEP_FAILURE + timedelta(seconds=1)
    assert asyncio.run(page_name_of(request, SANDBOX_PAGE_ID, later)) == "Farmacia La Merced"
    assert asyncio.run(page_name_of(request, SANDBOX_PAGE_ID, later + timedelta(hours=1))) == "Farmacia La Merced"
    assert graph.calls == 2
