"""The scale profile's services for the tests: are PostgreSQL, Redis and RabbitMQ here, names unique to one test
(a RabbitMQ exchange and queue, a Redis key prefix, a PostgreSQL schema for Rasa's tracker store), and small
clients to look inside them (Redis keys, a message on Rasa's exchange, Rasa's tracker events).

Unavailable → skipped, or failed with REQUIRE_SERVICES=1 (`tests.conftest.require_or_skip`).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import psycopg2

from core.postgres import with_schema
from core.settings import DEFAULT_RABBITMQ_URL, DEFAULT_REDIS_URL
from tests.conftest import require_or_skip
from tests.support.postgres import POSTGRES_URL, drop_schemas, postgres_available

REDIS_URL = os.environ.get("TEST_REDIS_URL") or DEFAULT_REDIS_URL
RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL") or DEFAULT_RABBITMQ_URL


def reachable(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2).close()
    except OSError:
        return False
    return True


def redis_available() -> bool:
    return reachable(REDIS_URL, 6379)


def rabbitmq_available() -> bool:
    return reachable(RABBITMQ_URL, 5672)


def require_rabbitmq() -> None:
    require_or_skip(rabbitmq_available(), "RabbitMQ")


def require_scale_services() -> None:
    require_or_skip(postgres_available(), "PostgreSQL")
    require_or_skip(redis_available(), "Redis")
    require_or_skip(rabbitmq_available(), "RabbitMQ")


@dataclass(frozen=True)
class ScaleNames:
    """One test's own corner of the shared services."""

    token: str

    @property
    def exchange(self) -> str:
        return f"test-rasa-{self.token}"

    @property
    def queue(self) -> str:
        return f"test_rasa_events_{self.token}"

    @property
    def key_prefix(self) -> str:
        return f"test{self.token}"  # letters and digits only (Rasa's rule)

    @property
    def tracker_schema(self) -> str:
        return f"test_rasa_{self.token}"

    @property
    def stores_prefix(self) -> str:
        return f"test_{self.token}_"

    @property
    def tracker_url(self) -> str:
        return with_schema(POSTGRES_URL, self.tracker_schema)

    def env(self, rasa_instances: int = 2, outbox_workers: int = 2) -> dict[str, str]:
        """The scale profile's settings for a stack that uses only this corner."""
        return {
            "BOT_PROFILE": "scale",
            "RASA_INSTANCES": str(rasa_instances),
            "OUTBOX_WORKERS": str(outbox_workers),
            "RASA_TRACKER_DB_URL": self.tracker_url,
            "BOT_DATABASE_URL": POSTGRES_URL,
            "BOT_DATABASE_SCHEMA_PREFIX": self.stores_prefix,
            "REDIS_URL": REDIS_URL,
            "RASA_LOCK_KEY_PREFIX": self.key_prefix,
            "RABBITMQ_URL": RABBITMQ_URL,
            "RASA_EVENTS_EXCHANGE": self.exchange,
            "RASA_EVENTS_QUEUE": self.queue,
        }


@contextmanager
def scale_names() -> Iterator[ScaleNames]:
    """Unique names, and everything made under them removed afterwards (schemas, the queue and exchange, keys)."""
    names = ScaleNames(uuid.uuid4().hex[:10])
    try:
        yield names
    finally:
        if postgres_available():
            drop_schemas(*_schemas_starting(names.tracker_schema), *_schemas_starting(names.stores_prefix))
        if rabbitmq_available():
            asyncio.run(_delete_rabbit(names))
        if redis_available():
            for key in redis_keys(f"{names.key_prefix}:*"):
                redis_command("DEL", key)


def create_schema(schema: str) -> None:
    """Rasa's SQL tracker store creates its table, not the schema named in its URL's search_path."""
    admin = psycopg2.connect(POSTGRES_URL)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    finally:
        admin.close()


def _schemas_starting(prefix: str) -> list[str]:
    admin = psycopg2.connect(POSTGRES_URL)
    try:
        with admin.cursor() as cursor:
            cursor.execute("SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", (prefix,))
            return [row[0] for row in cursor.fetchall()]
    finally:
        admin.close()


def tracker_events(names: ScaleNames, sender_id: str) -> list[dict[str, Any]]:
    """Rasa's stored events of one conversation, in the order Rasa wrote them (its `events` table)."""
    connection = psycopg2.connect(names.tracker_url)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT data FROM events WHERE sender_id = %s ORDER BY id", (sender_id,))
            return [json.loads(row[0]) for row in cursor.fetchall()]
    finally:
        connection.close()


# --- Redis, spoken directly (RESP): the app's environment has no Redis client ----------------------------------


def redis_command(*parts: str) -> Any:
    parsed = urlsplit(REDIS_URL)
    with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 6379), timeout=5) as sock:
        database = (parsed.path or "/0").strip("/") or "0"
        request = b""
        for command in (("SELECT", database), parts):
            request += f"*{len(command)}\r\n".encode()
            for part in command:
                encoded = part.encode()
                request += b"$%d\r\n%s\r\n" % (len(encoded), encoded)
        sock.sendall(request)
        reader = sock.makefile("rb")
        _read_reply(reader)  # SELECT's +OK
        return _read_reply(reader)


def _read_reply(reader: Any) -> Any:
    line = reader.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        data = reader.read(size + 2)[:-2]
        return data.decode()
    if kind == b"*":
        return [_read_reply(reader) for _ in range(int(rest))]
    raise RuntimeError(f"unexpected Redis reply {line!r}")


def redis_keys(pattern: str) -> list[str]:
    return list(redis_command("KEYS", pattern))


# --- RabbitMQ ------------------------------------------------------------------------------------------------


async def publish_to_exchange(exchange: str, bodies: list[bytes]) -> None:
    """Publish as Rasa's Pika broker does (its fanout exchange, persistent messages)."""
    import aio_pika

    connection = await aio_pika.connect(RABBITMQ_URL, timeout=10)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_exchange(exchange, aio_pika.ExchangeType.FANOUT)
        for body in bodies:
            await declared.publish(aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), "")


async def _delete_rabbit(names: ScaleNames) -> None:
    import aio_pika

    connection = await aio_pika.connect(RABBITMQ_URL, timeout=10)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(names.queue)
        await channel.exchange_delete(names.exchange)


# --- watching a scale stack while it works -----------------------------------------------------------------------


class StackWatcher:
    """Polls, in a thread, who holds a conversation's journal claim (ingest_claims) and which Rasa lock keys exist in
    Redis, so a test can say which instances processed a user and that the lock store was in use."""

    def __init__(self, names: ScaleNames, every: float = 0.01) -> None:
        import threading

        self.names = names
        self.every = every
        self.owners: dict[str, set[str]] = {}  # conversation key → owners seen (the stack's process names)
        self.lock_keys: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="scale-watcher", daemon=True)

    def __enter__(self) -> StackWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        import time

        connection = psycopg2.connect(with_schema(POSTGRES_URL, f"{self.names.stores_prefix}ingest"))
        connection.autocommit = True
        try:
            while not self._stop.is_set():
                try:
                    with connection.cursor() as cursor:
                        cursor.execute("SELECT conversation_key, owner FROM ingest_claims")
                        for key, owner in cursor.fetchall():  # "<host>:rasa-2" → "rasa-2" (bot/profile.py)
                            self.owners.setdefault(key, set()).add(owner.rsplit(":", 1)[-1])
                except psycopg2.Error:  # the table is not there yet (the first claim creates nothing: migrations)
                    pass
                self.lock_keys.update(redis_keys(f"{self.names.key_prefix}:lock:*"))
                time.sleep(self.every)
        finally:
            connection.close()


def journal_state(names: ScaleNames, user_id: str) -> str:
    """A user's events (id, status, attempts, last error) and every conversation claim, as text."""
    connection = psycopg2.connect(with_schema(POSTGRES_URL, f"{names.stores_prefix}ingest"))
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, status, attempts, last_error FROM inbound_events WHERE user_id = %s "
                           "ORDER BY id", (user_id,))
            events = cursor.fetchall()
            cursor.execute("SELECT conversation_key, owner, lease_until, now() FROM ingest_claims")
            claims = cursor.fetchall()
    finally:
        connection.close()
    return f"journal events {events}; claims {claims}"


def journal_rows(names: ScaleNames, user_id: str) -> list[tuple[int, str]]:
    """(id, status) of a user's events in the PostgreSQL journal."""
    connection = psycopg2.connect(with_schema(POSTGRES_URL, f"{names.stores_prefix}ingest"))
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, status FROM inbound_events WHERE user_id = %s ORDER BY id", (user_id,))
            return [(int(row[0]), str(row[1])) for row in cursor.fetchall()]
    finally:
        connection.close()
