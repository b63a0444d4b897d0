"""The webhook process's limits on unsigned clients (connectors/webhook_server.py): uvicorn serves it with
`limit_concurrency` (a connection beyond `MAX_CONNECTIONS` is answered 503) and a keep-alive timeout, and the app
gives a body `body_deadline` to arrive (408, connection closed) so a stalled sender cannot hold its buffer forever."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from connectors import webhook_server
from connectors.ingest import IngestStore
from connectors.webhook_server import (
    HEALTH_PATH,
    KEEP_ALIVE_SECONDS,
    MAX_CONNECTIONS,
    WEBHOOK_PATH,
    WebhookApp,
    server_config,
)

SECRET = "webhook-limits-test-secret-0123456789"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[IngestStore]:
    journal = IngestStore(tmp_path / "messenger.sqlite3")
    yield journal
    journal.close()


def test_uvicorn_is_configured_with_a_connection_limit_and_a_keep_alive_timeout(store: IngestStore) -> None:
    app = WebhookApp(store, app_secret=SECRET, verify_token="v")

    config = server_config(app, "127.0.0.1", 5006)

    assert config.limit_concurrency == MAX_CONNECTIONS == 512
    assert config.timeout_keep_alive == KEEP_ALIVE_SECONDS and 0 < KEEP_ALIVE_SECONDS <= 30
    assert (config.host, config.port, config.access_log, config.server_header) == ("127.0.0.1", 5006, False, False)


def test_a_body_that_does_not_arrive_in_time_is_answered_408_and_the_connection_closes(store: IngestStore) -> None:
    app = WebhookApp(store, app_secret=SECRET, verify_token="v", body_deadline=0.05)
    sent: list[MutableMapping[str, Any]] = []
    first = True

    async def receive() -> dict[str, Any]:
        nonlocal first
        if first:  # a first chunk, then nothing more: a stalled sender
            first = False
            return {"type": "http.request", "body": b'{"object":', "more_body": True}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": WEBHOOK_PATH, "headers": [(b"content-length", b"200")]}
    asyncio.run(asyncio.wait_for(app(scope, receive, send), 5))

    assert sent[0]["status"] == 408
    assert (b"connection", b"close") in sent[0]["headers"]
    assert store.pending() == []


def test_a_connection_beyond_the_limit_is_answered_503(store: IngestStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real uvicorn with the process's configuration, its limit lowered to 2: two idle connections held open, a
    third client's request gets 503."""
    monkeypatch.setattr(webhook_server, "MAX_CONNECTIONS", 2)
    app = WebhookApp(store, app_secret=SECRET, verify_token="v")
    config = server_config(app, "127.0.0.1", 0)
    config.lifespan = "off"

    async def scenario() -> tuple[bytes, bytes]:
        server = uvicorn.Server(config)
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        request = f"GET {HEALTH_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
        idle = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        try:
            while len(server.server_state.connections) < 2:
                await asyncio.sleep(0.01)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            beyond = await asyncio.wait_for(reader.read(), 10)
            writer.close()
        finally:
            for _, idle_writer in idle:
                idle_writer.close()
        while len(server.server_state.connections) > 0:  # the idle ones gone: served again
            await asyncio.sleep(0.01)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        within = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        server.should_exit = True
        await serving
        return beyond, within

    beyond, within = asyncio.run(scenario())

    assert beyond.startswith(b"HTTP/1.1 503"), beyond[:200]
    assert within.startswith(b"HTTP/1.1 200"), within[:200]

