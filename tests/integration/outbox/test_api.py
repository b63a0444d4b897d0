"""The outbox HTTP API over real HTTP: auth, enqueue, clear 4xx for bad input, list, cancel, retry."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from bot.app import create_app
from core.settings import Settings
from outbox.model import NewMessage, Purpose, SenderKind, Status
from outbox.store import open_store
from tests.support.servers import RunningServer, serve_asgi

PAGE = "100000000000001"
AUTH = {"Authorization": "Bearer test-service-token"}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with serve_asgi(create_app(Settings(data_dir=tmp_path_factory.mktemp("sandbox")))) as server:
        yield server


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def api(sandbox: RunningServer, data_dir: Path) -> Iterator[httpx.Client]:
    settings = Settings(data_dir=data_dir, graph_api_base=sandbox.base_url, service_token="test-service-token")
    with serve_asgi(create_app(settings)) as server, httpx.Client(base_url=server.base_url, timeout=10) as client:
        yield client


def user_wrote(data_dir: Path, user: str, hours_ago: float = 0) -> None:
    store = open_store(f"sqlite:///{data_dir / 'outbox.sqlite3'}")
    try:
        store.record_user_message(PAGE, user, datetime.now(timezone.utc) - timedelta(hours=hours_ago))
    finally:
        store.close()


def enqueue(api: httpx.Client, **fields: object) -> httpx.Response:
    body = {"page_id": PAGE, "recipient_id": "u1", "text": "hola", **fields}
    return api.post("/api/outbox", json=body, headers=AUTH)


def wait_status(api: httpx.Client, message_id: int, status: str, timeout: float = 15) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = api.get(f"/api/outbox/{message_id}", headers=AUTH).json()["message"]
        if message["status"] == status:
            return message
        time.sleep(0.05)
    raise AssertionError(f"message {message_id} never reached {status}: {message}")


def test_requires_the_service_token(api: httpx.Client) -> None:
    assert api.get("/api/outbox").status_code == 401
    assert api.get("/api/outbox", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert api.post("/api/outbox", json={}).status_code == 401


def test_enqueue_sends_and_is_idempotent(api: httpx.Client, data_dir: Path, sandbox: RunningServer) -> None:
    user_wrote(data_dir, "u1")
    first = enqueue(api, idempotency_key="k-1", sender="human", purpose="reply")
    assert first.status_code == 201, first.text
    assert first.json()["decision"] == {"messaging_type": "RESPONSE", "tag": None}
    again = enqueue(api, idempotency_key="k-1", sender="human", purpose="reply")
    assert again.status_code == 200 and again.json()["created"] is False
    assert again.json()["message"]["id"] == first.json()["message"]["id"]
    sent = wait_status(api, first.json()["message"]["id"], Status.SENT.value)
    assert sent["graph_message_id"]
    delivered = httpx.get(sandbox.url("/sandbox/sent"), params={"recipient_id": "u1"}).json()
    assert [item["body"]["message"]["text"] for item in delivered].count("hola") >= 1


@pytest.mark.parametrize(
    ("fields", "reason_code"),
    [
        ({"tag": "NOT_A_TAG"}, "unknown_tag"),
        ({"tag": "HUMAN_AGENT", "promotional": True, "sender": "human"}, "promotional_with_tag"),
        ({"recipient_id": "never-wrote"}, "never_wrote"),
        ({"text": "x" * 2001}, "invalid_message"),
        ({"text": None, "message": {"text": "a", "attachment": {"type": "image"}}}, "invalid_message"),
        ({"text": None}, "invalid_message"),
        ({"not_before": "mañana a las 9"}, "invalid_date"),
        ({"not_before": "2020-01-01T00:00:00Z"}, "date_in_past"),
        ({"not_before": "2030-01-01T00:00:00"}, "invalid_date"),
        ({"page_id": "999"}, "unknown_page"),
    ],
)
def test_bad_input_is_a_clear_4xx_and_nothing_is_queued(
    api: httpx.Client, data_dir: Path, fields: dict, reason_code: str
) -> None:
    user_wrote(data_dir, "u1")
    answer = enqueue(api, **fields)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["reason_code"] == reason_code
    assert answer.json()["error"]["message"]
    assert api.get("/api/outbox", headers=AUTH).json()["messages"] == []


def test_outside_the_window_the_bot_is_refused_but_an_agent_may_use_human_agent(
    api: httpx.Client, data_dir: Path
) -> None:
    user_wrote(data_dir, "u1", hours_ago=30)
    refused = enqueue(api, sender="bot")
    assert refused.status_code == 422
    assert refused.json()["error"]["reason_code"] == "outside_window"
    assert refused.json()["error"]["reason_es"]
    human = enqueue(api, sender="human", text="Hola, soy Ana")
    assert human.status_code == 201, human.text
    assert human.json()["decision"] == {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}


def test_list_filter_cancel_and_retry(api: httpx.Client, data_dir: Path) -> None:
    user_wrote(data_dir, "u1")
    later = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    scheduled = enqueue(api, not_before=later).json()["message"]
    assert scheduled["status"] == "pending"
    listed = api.get("/api/outbox", params={"recipient_id": "u1", "status": "pending"}, headers=AUTH).json()
    assert [m["id"] for m in listed["messages"]] == [scheduled["id"]]
    assert api.get("/api/outbox", params={"status": "nonsense"}, headers=AUTH).status_code == 422
    cancelled = api.post(f"/api/outbox/{scheduled['id']}/cancel", headers=AUTH)
    assert cancelled.status_code == 200 and cancelled.json()["message"]["status"] == "cancelled"
    assert api.post(f"/api/outbox/{scheduled['id']}/cancel", headers=AUTH).status_code == 409
    assert api.post(f"/api/outbox/{scheduled['id']}/retry", headers=AUTH).status_code == 409
    assert api.post("/api/outbox/999999/cancel", headers=AUTH).status_code == 404
    assert api.get("/api/outbox/999999", headers=AUTH).status_code == 404


def test_a_dead_message_shows_why_and_retry_sends_it(
    api: httpx.Client, data_dir: Path, sandbox: RunningServer
) -> None:
    """Graph keeps failing transiently (code 2, HTTP 500) for more sends than the message may attempt: it ends
    `dead` after exactly `max_attempts` attempts, with the reason; `retry` gives it a fresh set of attempts and it
    is sent. Fails if transient errors were never given up (no `dead`), were given up early or late (attempts),
    if the API hid why (reason_code, reason, last_error_code), or if retry did not revive it.

    The API always asks for 8 attempts (about 2 to 3 minutes of backoff); the message is written through the
    store contract, as the Rasa connector writes its replies, with 2 attempts (one backoff of 1 to 1.5 s). The
    app's own worker sends it and the API shows it."""
    user_wrote(data_dir, "u-dead")
    max_attempts = 2
    # One failure more than the attempts: the first send after the retry fails too, and is retried again.
    failure = {"code": 2, "count": max_attempts + 1, "recipient_id": "u-dead"}
    assert httpx.post(sandbox.url("/sandbox/failures"), json=failure).status_code == 200
    store = open_store(f"sqlite:///{data_dir / 'outbox.sqlite3'}")
    try:
        new = NewMessage(page_id=PAGE, recipient_id="u-dead", message={"text": "su pedido está listo"},
                         sender=SenderKind.BOT, purpose=Purpose.REPLY, max_attempts=max_attempts)
        stored, created = store.enqueue(new, datetime.now(timezone.utc))
    finally:
        store.close()
    assert created
    dead = wait_status(api, stored.id, Status.DEAD.value)
    assert dead["attempts"] == max_attempts and dead["max_attempts"] == max_attempts, dead
    assert dead["reason_code"] == "graph_2" and dead["last_error_code"] == 2, dead
    assert f"Se agotaron los {max_attempts} intentos" in dead["reason"], dead["reason"]
    assert "unexpected error" in dead["reason"], "the reason carries Meta's last error message"
    listed = api.get("/api/outbox", params={"status": "dead", "recipient_id": "u-dead"}, headers=AUTH).json()
    assert [m["id"] for m in listed["messages"]] == [stored.id], "the dead message is listed as dead"
    assert sent_texts(sandbox, "u-dead") == [], "nothing was delivered while Graph failed"

    retried = api.post(f"/api/outbox/{stored.id}/retry", headers=AUTH)
    assert retried.status_code == 200, retried.text
    assert retried.json()["message"]["status"] == "pending" and retried.json()["message"]["attempts"] == 0
    sent = wait_status(api, stored.id, Status.SENT.value)
    assert sent["attempts"] == 2, "after the retry: one more transient failure, then sent (fresh attempts)"
    assert sent["reason_code"] is None and sent["graph_message_id"], sent
    assert sent_texts(sandbox, "u-dead") == ["su pedido está listo"], "sent exactly once"
    assert api.post(f"/api/outbox/{stored.id}/retry", headers=AUTH).status_code == 409, "a sent message stays sent"


def sent_texts(sandbox: RunningServer, recipient_id: str) -> list[str]:
    delivered = httpx.get(sandbox.url("/sandbox/sent"), params={"recipient_id": recipient_id}).json()
    return [item["body"]["message"].get("text", "") for item in delivered if "message" in item["body"]]


def test_a_failed_message_can_be_retried(api: httpx.Client, data_dir: Path, sandbox: RunningServer) -> None:
    """A permanent error (code 100) fails the message at once, without retrying (`failed`, one attempt); `retry`
    sends it again once the cause is fixed."""
    user_wrote(data_dir, "u-failed")
    failure = {"code": 100, "message": "Invalid parameter", "count": 1, "recipient_id": "u-failed"}
    assert httpx.post(sandbox.url("/sandbox/failures"), json=failure).status_code == 200
    message = enqueue(api, recipient_id="u-failed").json()["message"]
    failed = wait_status(api, message["id"], Status.FAILED.value)
    assert failed["last_error_code"] == 100 and failed["attempts"] == 1 and failed["reason_code"] == "graph_100"
    retried = api.post(f"/api/outbox/{message['id']}/retry", headers=AUTH)
    assert retried.status_code == 200 and retried.json()["message"]["status"] == "pending"
    wait_status(api, message["id"], Status.SENT.value)
    assert sent_texts(sandbox, "u-failed") == ["hola"]
