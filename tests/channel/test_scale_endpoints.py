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

    from connectors.lock_store import AtomicRedisLockStore

    endpoints = read_endpoints_from_path(ROOT / SCALE_ENDPOINTS)
    broker = await EventBroker.create(endpoints.event_broker)
    assert type(broker).__name__ == "PikaEventBroker"
    tracker_store = TrackerStore.create(endpoints.tracker_store, Domain.empty(), broker)
    inner = getattr(tracker_store, "_tracker_store", tracker_store)
    assert isinstance(inner, SQLTrackerStore)
    lock_store = LockStore.create(endpoints.lock_store)
    assert isinstance(lock_store, AtomicRedisLockStore) and isinstance(lock_store, RedisLockStore)

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


def test_tickets_taken_at_once_by_several_clients_are_all_kept_and_served_in_turn(names: ScaleNames) -> None:
    """Four clients (as four Rasa instances) issue and finish tickets on one conversation at the same time: every
    ticket is kept with a number of its own (Rasa's read-then-write store loses some, and a lost ticket stalls the
    conversation for the ticket lifetime), and once all are finished the lock is gone."""
    import threading

    from connectors.lock_store import AtomicRedisLockStore

    stores = [AtomicRedisLockStore(host="127.0.0.1", key_prefix=names.key_prefix) for _ in range(4)]
    issued: list[list[int]] = [[] for _ in stores]
    start = threading.Barrier(len(stores))

    def take(index: int) -> None:
        start.wait()
        for _ in range(50):
            issued[index].append(stores[index].issue_ticket("conv", lock_lifetime=600))

    threads = [threading.Thread(target=take, args=(index,)) for index in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    numbers = [number for mine in issued for number in mine]
    assert sorted(numbers) == list(range(len(numbers))), "two clients got the same ticket number"
    lock = stores[0].get_lock("conv")
    assert lock is not None and sorted(ticket.number for ticket in lock.tickets) == sorted(numbers)

    def finish(index: int) -> None:
        start.wait()
        for number in issued[index]:
            stores[index].cleanup("conv", number)

    threads = [threading.Thread(target=finish, args=(index,)) for index in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert stores[0].get_lock("conv") is None, "a finished ticket came back: the lock was left behind"
