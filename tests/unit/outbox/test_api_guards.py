"""The outbox API's guards without services: the app over an in-memory outbox, no worker loop, no network.

Who may enqueue what: a human sender (which may use HUMAN_AGENT outside the 24 hours) only from the console in
production, and never without a service token, even one configured empty.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from bot.app import create_app
from core.settings import Settings
from meta.graph import GraphClient, GraphRequest, GraphResponse
from outbox.model import MessageFilter
from outbox.outbox import Outbox
from outbox.policy_file import load_policy
from outbox.store import InMemoryOutboxStore
from tests.support.console_routes import PAGE, PRODUCTION


class OfflineTransport:
    """Nothing here may reach the Graph API: the worker loop never runs."""

    async def send(self, request: GraphRequest) -> GraphResponse:
        raise AssertionError(f"a unit test tried to call the Graph API: {request.path}")

    async def close(self) -> None:
        return None


class App:
    def __init__(self, settings: Settings) -> None:
        self.store = InMemoryOutboxStore()
        self.store.record_user_message(PAGE, "u1", datetime.now(timezone.utc))
        app = create_app(settings)  # not entered: the lifespan (real store, worker, Rasa) does not run
        client = GraphClient(settings.page_tokens, transport=OfflineTransport())
        app.state.outbox = Outbox(self.store, client, load_policy())
        self.client = TestClient(app)

    def enqueue(self, headers: dict[str, str], **fields: Any) -> Any:
        body = {"page_id": PAGE, "recipient_id": "u1", "text": "Hola, soy Ana", **fields}
        return self.client.post("/api/outbox", json=body, headers=headers)

    def queued(self) -> list[Any]:
        return self.store.find(MessageFilter())


@pytest.fixture
def production(tmp_path: Path) -> Iterator[App]:
    settings = Settings(data_dir=tmp_path, **PRODUCTION)
    settings.check_production_safe()
    made = App(settings)
    yield made
    made.client.close()


PRODUCTION_AUTH = {"Authorization": f"Bearer {PRODUCTION['service_token']}"}


@pytest.mark.parametrize("tag", [None, "HUMAN_AGENT"])
def test_in_production_the_api_refuses_a_human_sender(production: App, tag: str | None) -> None:
    answer = production.enqueue(PRODUCTION_AUTH, sender="human", sender_name="ana", tag=tag)

    assert answer.status_code == 403, answer.text
    assert answer.json()["error"]["reason_code"] == "human_sender_required"
    assert production.queued() == []


def test_in_production_the_api_still_queues_for_the_bot_and_the_system(production: App) -> None:
    for sender in ("bot", "system"):
        answer = production.enqueue(PRODUCTION_AUTH, sender=sender, idempotency_key=sender)
        assert answer.status_code == 201, answer.text
    assert sorted(m.sender.value for m in production.queued()) == ["bot", "system"]


def test_outside_production_a_human_sender_is_accepted(tmp_path: Path) -> None:
    app = App(Settings(data_dir=tmp_path, service_token="dev-token"))
    answer = app.enqueue({"Authorization": "Bearer dev-token"}, sender="human", sender_name="ana")
    assert answer.status_code == 201, answer.text
    app.client.close()


@pytest.mark.parametrize("authorization", ["Bearer", "Bearer ", "bearer "])
def test_an_empty_token_never_matches_an_empty_configured_one(tmp_path: Path, authorization: str) -> None:
    # Production refuses an empty BOT_SERVICE_TOKEN at start-up; the check must not lean on that alone.
    app = App(Settings(data_dir=tmp_path, service_token=""))
    headers = {"Authorization": authorization}

    assert app.client.get("/api/outbox", headers=headers).status_code == 401
    assert app.enqueue(headers, sender="bot").status_code == 401
    assert app.queued() == []
    app.client.close()
