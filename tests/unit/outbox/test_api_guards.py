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
from hypothesis import given, settings
from hypothesis import strategies as st

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


# --- public replies (purpose public_reply: the recipient is the comment id, the message its text only) ---------------

COMMENT_ID, REFUSED_ID, FUZZ_ID = "880011223344_5", "880011223344_6", "880011223344_7"


@pytest.fixture(scope="module")
def dev_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    """One app for the public-reply tests (each uses its own comment id): building the app takes half a second."""
    made = App(Settings(data_dir=tmp_path_factory.mktemp("public_reply"), service_token="dev-token"))
    for comment_id in (COMMENT_ID, REFUSED_ID, FUZZ_ID):  # the comments, on record
        made.store.record_user_message(PAGE, comment_id, datetime.now(timezone.utc))
    yield made
    made.client.close()


def queued_for(app: App, recipient_id: str) -> list[Any]:
    return [message for message in app.queued() if message.recipient_id == recipient_id]


DEV_AUTH = {"Authorization": "Bearer dev-token"}


def test_a_public_reply_is_queued_as_a_comment_under_the_comment(dev_app: App) -> None:
    answer = dev_app.enqueue(DEV_AUTH, recipient_id=COMMENT_ID, purpose="public_reply", sender="bot",
                             text="¡Te escribimos por interno! 📩")

    assert answer.status_code == 201, answer.text
    assert answer.json()["decision"]["messaging_type"] == "COMMENT"
    [queued] = queued_for(dev_app, COMMENT_ID)
    assert (queued.purpose.value, queued.recipient_id, queued.message) == (
        "public_reply", COMMENT_ID, {"text": "¡Te escribimos por interno! 📩"})


@pytest.mark.parametrize(("fields", "words"), [
    ({"message": {"text": "Mira", "quick_replies": [{"content_type": "text", "title": "Sí", "payload": "SI"}]}},
     "solo texto; quite quick_replies"),
    ({"message": {"attachment": {"type": "image", "payload": {"url": "https://example.com/a.png"}}}},
     "solo texto; quite attachment"),
    ({"text": "   "}, "necesita un texto"),
])
def test_a_public_reply_with_more_than_text_or_blank_is_refused_in_spanish(
    dev_app: App, fields: dict[str, Any], words: str
) -> None:
    answer = dev_app.enqueue(DEV_AUTH, recipient_id=REFUSED_ID, purpose="public_reply", sender="bot",
                             **{"text": None, **fields})

    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["reason_code"] == "invalid_message" and words in error["reason_es"]
    assert queued_for(dev_app, REFUSED_ID) == []


def test_a_public_reply_to_a_comment_not_on_record_is_refused(dev_app: App) -> None:
    answer = dev_app.enqueue(DEV_AUTH, recipient_id="880011223344_404", purpose="public_reply", sender="bot",
                             text="Hola")

    assert 400 <= answer.status_code < 500 and answer.json()["error"]["reason_code"] == "never_wrote", answer.text
    assert queued_for(dev_app, "880011223344_404") == []


@settings(max_examples=40, deadline=None)
@given(message=st.dictionaries(st.sampled_from(["text", "quick_replies", "attachment", "metadata", ""]),
                               st.one_of(st.none(), st.integers(), st.text(max_size=30), st.lists(st.text()))))
def test_any_public_reply_body_is_a_4xx_or_queued_never_a_500(dev_app: App, message: dict[str, Any]) -> None:
    answer = dev_app.enqueue(DEV_AUTH, recipient_id=FUZZ_ID, purpose="public_reply", sender="bot", text=None,
                             message=message, idempotency_key=str(hash(repr(message))))

    assert answer.status_code in (200, 201) or 400 <= answer.status_code < 500, answer.text
    if answer.status_code in (200, 201):
        assert set(message) == {"text"} and isinstance(message["text"], str) and message["text"].strip()


@pytest.mark.parametrize("purpose", ["public_reply", "private_reply"])
@pytest.mark.parametrize("recipient", ["../me/messages", "880011223344_5/comments", "1?fields=x", "1#x", "me", "１２"])
def test_a_comment_id_that_is_not_metas_shape_is_refused_before_it_reaches_a_graph_path(
    dev_app: App, purpose: str, recipient: str
) -> None:
    answer = dev_app.enqueue(DEV_AUTH, recipient_id=recipient, purpose=purpose, sender="bot", text="Hola")

    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert error["reason_code"] == "invalid_recipient" and "id del comentario" in error["reason_es"]
    assert queued_for(dev_app, recipient) == []


@pytest.mark.parametrize("content_type", [["text"], {"type": "text"}, 5, None])
def test_a_quick_reply_content_type_that_is_no_string_is_a_422(dev_app: App, content_type: Any) -> None:
    """meta.validate guards the outbox API: a list or an object there is Meta's (#100), not a TypeError (500)."""
    message = {"text": "¿Algo más?", "quick_replies": [{"content_type": content_type, "title": "Sí", "payload": "SI"}]}
    answer = dev_app.enqueue(DEV_AUTH, text=None, message=message, sender="bot")

    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["reason_code"] == "invalid_message" and "content_type" in answer.text
