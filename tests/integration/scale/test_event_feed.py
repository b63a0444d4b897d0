"""Rasa's event broker feeding the console's live stream, on this machine's RabbitMQ: the app (scale profile) consumes
the queue bound to Rasa's fanout exchange and open console pages get the events as server-sent events; a bad message
never stops it, and a message for a paused conversation is left to the handoff service.

The events are published as Rasa's Pika broker publishes them (tests/integration/scale/test_scale_stack.py has Rasa
itself publish them)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import create_app
from core.settings import DEMO_SERVICE_TOKEN, SANDBOX_PAGE_ID, load_settings
from tests.support.console_client import ConsoleSession, EventListener
from tests.support.scale import RABBITMQ_URL, ScaleNames, publish_to_exchange, require_rabbitmq, scale_names
from tests.support.servers import RunningServer, serve_asgi


def rasa_event(kind: str, sender: str, **fields: Any) -> bytes:
    return json.dumps({"sender_id": sender, "event": kind, "timestamp": time.time(), **fields}).encode()


@pytest.fixture
def names() -> Iterator[ScaleNames]:
    require_rabbitmq()
    with scale_names() as made:
        yield made


@pytest.fixture
def app_server(names: ScaleNames, tmp_path: Path) -> Iterator[RunningServer]:
    # The scale profile's broker; the stores on SQLite here (their PostgreSQL has its own tests).
    settings = load_settings({
        "BOT_DATA_DIR": str(tmp_path), "BOT_PROFILE": "scale",
        "HANDOFF_DB_URL": f"sqlite:///{tmp_path}/handoff.sqlite3",
        "CONSOLE_DB_URL": f"sqlite:///{tmp_path}/console.sqlite3",
        "INGEST_DB_URL": f"sqlite:///{tmp_path}/messenger.sqlite3",
        "OUTBOX_URL": f"sqlite:///{tmp_path}/outbox.sqlite3",
        "RABBITMQ_URL": RABBITMQ_URL, "RASA_EVENTS_EXCHANGE": names.exchange, "RASA_EVENTS_QUEUE": names.queue,
    })
    app = create_app(settings)
    with serve_asgi(app) as server:
        feed = app.state.rasa_events
        deadline = time.monotonic() + 20
        while not feed.connected.is_set():  # the queue is declared and bound: nothing published now is lost
            assert time.monotonic() < deadline, "the app did not connect to RabbitMQ"
            time.sleep(0.05)
        yield server


@pytest.fixture
def live(app_server: RunningServer) -> Iterator[EventListener]:
    session = ConsoleSession(app_server.base_url, "agente")
    listener = EventListener(session).start()
    yield listener
    listener.stop()
    session.close()


def test_rasa_events_reach_an_open_console_page_as_server_sent_events(names: ScaleNames, live: EventListener) -> None:
    user = f"feed-{names.token}"
    conversation_id = f"{SANDBOX_PAGE_ID}:{user}"
    asyncio.run(publish_to_exchange(names.exchange, [
        b"this is not a Rasa event",  # logged and acknowledged: the feed goes on
        rasa_event("user", user, text="hola", metadata={"page_id": SANDBOX_PAGE_ID, "mid": "m.1"}),
        rasa_event("action", user, name="utter_greet"),
        rasa_event("bot", user, text="¡Hola! ¿En qué le ayudo?", data={}, metadata={"utter_action": "utter_greet"}),
        rasa_event("pause", user),
    ]))
    paused = live.wait_for(lambda e: e.kind == "paused" and e.conversation_id == conversation_id, 20, "the pause")
    mine = [e for e in live.events if e.conversation_id == conversation_id]
    assert [(e.kind, e.data.get("text")) for e in mine] == [
        ("user_message", "hola"), ("bot_message", "¡Hola! ¿En qué le ayudo?"), ("paused", None)]
    assert paused.data["by"] == "rasa" and mine[0].data["source"] == "rasa"


def test_a_message_written_while_paused_is_shown_once_by_the_handoff_service(
    names: ScaleNames, app_server: RunningServer, live: EventListener
) -> None:
    import httpx

    user = f"paused-{names.token}"
    conversation_id = f"{SANDBOX_PAGE_ID}:{user}"
    service = {"Authorization": f"Bearer {DEMO_SERVICE_TOKEN}"}
    # The Rasa channel's notice of a message written while paused (the handoff service keeps it and tells pages).
    answer = httpx.post(app_server.url("/internal/handoff/user-message"), headers=service, timeout=10,
                        json={"page_id": SANDBOX_PAGE_ID, "user_id": user, "text": "¿hay alguien?",
                              "at": "2026-03-02T15:00:00+00:00"})
    assert answer.status_code == 200, answer.text
    live.wait_for(lambda e: e.kind == "user_message" and e.conversation_id == conversation_id, 20, "the notice")
    # Rasa's copy of the same message on the broker, then a later event that proves the feed read past it.
    asyncio.run(publish_to_exchange(names.exchange, [
        rasa_event("user", user, text="¿hay alguien?", metadata={"page_id": SANDBOX_PAGE_ID}),
        rasa_event("resume", user),
    ]))
    live.wait_for(lambda e: e.kind == "resumed" and e.conversation_id == conversation_id, 20, "the resume")
    shown = [e for e in live.events if e.conversation_id == conversation_id and e.kind == "user_message"]
    assert len(shown) == 1
