"""Rasa's distributed parts as `endpoints-scale.yml` configures them, inside Rasa's environment (Python 3.10, Rasa
3.6): the SQL tracker store on PostgreSQL, the Redis lock store and the Pika event broker load from the file with the
variables the launcher sets (bot/profile.py) and work against this machine's services.

Skipped without the services, failed under REQUIRE_SERVICES=1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from bot.profile import SCALE_ENDPOINTS, rasa_endpoints_env
from core.postgres import create_schema_of
from core.settings import ROOT, load_settings
from tests.support.scale import (
    RABBITMQ_URL,
    ScaleNames,
    redis_keys,
    require_scale_services,
    scale_names,
    tracker_events,
)

# Run alone, Rasa's endpoint reading is the first to import pkg_resources (in a full run Rasa's scheduler is).
pytestmark = pytest.mark.filterwarnings(
    "ignore:pkg_resources is deprecated as an API:DeprecationWarning:rasa.shared.utils.validation")


@pytest.fixture
def names(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScaleNames]:
    require_scale_services()
    with scale_names() as made:
        settings = load_settings(made.env())
        for name, value in {**rasa_endpoints_env(settings), "ACTION_SERVER_URL": "http://127.0.0.1:1/webhook",
                            "ACTION_SERVER_TOKEN": "unused"}.items():
            monkeypatch.setenv(name, value)
        create_schema_of(settings.rasa_tracker_store_url)
        yield made


async def test_the_scale_endpoints_give_rasa_its_postgres_tracker_redis_lock_and_pika_broker(
    names: ScaleNames,
) -> None:
    import aio_pika
    from rasa.core.brokers.broker import EventBroker
    from rasa.core.lock_store import LockStore, RedisLockStore
    from rasa.core.tracker_store import SQLTrackerStore, TrackerStore
    from rasa.core.utils import read_endpoints_from_path
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import UserUttered

    endpoints = read_endpoints_from_path(ROOT / SCALE_ENDPOINTS)
    broker = await EventBroker.create(endpoints.event_broker)
    assert type(broker).__name__ == "PikaEventBroker"
    tracker_store = TrackerStore.create(endpoints.tracker_store, Domain.empty(), broker)
    inner = getattr(tracker_store, "_tracker_store", tracker_store)
    assert isinstance(inner, SQLTrackerStore)
    lock_store = LockStore.create(endpoints.lock_store)
    assert isinstance(lock_store, RedisLockStore)

    connection = await aio_pika.connect(RABBITMQ_URL, timeout=10)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(names.queue, durable=True)  # Rasa declared and bound it
        async with lock_store.lock("user-1"):
            assert redis_keys(f"{names.key_prefix}:lock:*") == [f"{names.key_prefix}:lock:user-1"]
            tracker = await tracker_store.get_or_create_tracker("user-1")
            tracker.update(UserUttered("hola", metadata={"page_id": "1"}))
            await tracker_store.save(tracker)
        assert redis_keys(f"{names.key_prefix}:lock:*") == []  # released with the turn
        assert [event["event"] for event in tracker_events(names, "user-1")][-1] == "user"  # in the test's schema
        published = []
        deadline = asyncio.get_running_loop().time() + 30  # Rasa's broker publishes once its connection is up
        while asyncio.get_running_loop().time() < deadline:
            message = await queue.get(no_ack=True, fail=False)
            if message is not None:
                published.append(json.loads(message.body))
                if published[-1]["event"] == "user":
                    break
            else:
                await asyncio.sleep(0.05)
        assert published and published[-1] == {**published[-1], "sender_id": "user-1", "event": "user",
                                               "text": "hola"}
    finally:
        await connection.close()
        await broker.close()
