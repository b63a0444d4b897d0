"""The two profiles' processes and what Rasa needs to reach its distributed parts (used by `bot/stack.py`).

- embedded (default): app, action server, webhook, one Rasa (`endpoints.yml`: SQLite tracker, in-memory lock); the
  app and the Rasa channel each run an outbox worker.
- scale (`BOT_PROFILE=scale`): the same, with `RASA_INSTANCES` Rasa processes ("rasa", "rasa-2", …) on
  `endpoints-scale.yml` (SQL tracker store on PostgreSQL, Redis lock store, Pika event broker on RabbitMQ) and
  `OUTBOX_WORKERS` standalone outbox workers ("outbox-1", …; then none inside the app or Rasa).

The app's calls to Rasa's HTTP API (pause, resume, transcripts) go to the first instance, "rasa" (`RASA_URL`): the
Redis lock store serialises them with the turns another instance runs for the same conversation, so any instance
would do; one keeps the app's configuration to one URL.

`bot run` checks the three services first and names the one it cannot reach (`unreachable_services`).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from core.postgres import create_schema_of, redacted
from core.settings import EXTRA_RASA_PORT_STEP, Settings

EMBEDDED_ENDPOINTS = "endpoints.yml"
SCALE_ENDPOINTS = "endpoints-scale.yml"


def endpoints_file(settings: Settings) -> str:
    return SCALE_ENDPOINTS if settings.is_scale else EMBEDDED_ENDPOINTS


def rasa_names(instances: int) -> list[str]:
    """"rasa", "rasa-2", "rasa-3", …"""
    return ["rasa"] + [f"rasa-{number}" for number in range(2, instances + 1)]


def feeder_names(rasa: list[str]) -> list[str]:
    """The feeder process beside each Rasa instance: "feeder" beside "rasa", "feeder-2" beside "rasa-2" …"""
    return [name.replace("rasa", "feeder", 1) for name in rasa]


def feeder_of(feeder: str) -> str:
    """The Rasa instance a feeder process drives: "feeder-2" → "rasa-2"."""
    return feeder.replace("feeder", "rasa", 1)


def outbox_worker_names(workers: int) -> list[str]:
    return [f"outbox-{number}" for number in range(1, workers + 1)]


def extra_rasa_ports(first: int, instances: int) -> tuple[int, ...]:
    """The ports of "rasa-2" onwards when only the first one is configured (RASA_PORT)."""
    return tuple(first + EXTRA_RASA_PORT_STEP * number for number in range(1, instances))


def process_names(settings: Settings) -> list[str]:
    """Every long-running process of the profile, in start order."""
    rasa = rasa_names(settings.rasa_instances)
    # With MESSENGER_FEEDER=rasa, Rasa's own process feeds itself: no feeder.
    feeders = feeder_names(rasa) if settings.messenger_feeder == "process" else []
    return ["app", "actions", "webhook", *rasa, *feeders, *outbox_worker_names(settings.outbox_workers)]


def rasa_instance_id(name: str, host: str | None = None) -> str:
    """The journal claims' owner for one Rasa process of `bot run` (RASA_INSTANCE_ID): stable across its restarts,
    distinct across hosts."""
    return f"{host or socket.gethostname()}:{name}"


def rasa_endpoints_env(settings: Settings) -> dict[str, str]:
    """Pure: the variables `endpoints-scale.yml` reads, from the settings (empty in the embedded profile). Rasa
    substitutes ${VAR} only, so each URL is split into the parts its store takes."""
    if not settings.is_scale:
        return {}
    redis = urlsplit(settings.redis_url)
    rabbit = urlsplit(settings.rabbitmq_url)
    return {
        "RASA_TRACKER_DB_URL": settings.rasa_tracker_store_url,
        "RASA_REDIS_HOST": redis.hostname or "127.0.0.1",
        "RASA_REDIS_PORT": str(redis.port or 6379),
        "RASA_REDIS_DB": (redis.path or "/0").strip("/") or "0",
        "RASA_REDIS_PASSWORD": unquote(redis.password or ""),
        "RASA_LOCK_KEY_PREFIX": settings.rasa_lock_key_prefix,
        "RASA_RABBITMQ_HOST": rabbit.hostname or "127.0.0.1",
        "RASA_RABBITMQ_PORT": str(rabbit.port or 5672),
        "RASA_RABBITMQ_USER": unquote(rabbit.username or "guest"),
        "RASA_RABBITMQ_PASSWORD": unquote(rabbit.password or "guest"),
        "RASA_EVENTS_EXCHANGE": settings.rasa_events_exchange,
        "RASA_EVENTS_QUEUE": settings.rasa_events_queue,
    }


@dataclass(frozen=True)
class Service:
    name: str  # what the operator installs: "PostgreSQL", "Redis", "RabbitMQ"
    variable: str  # where its address is set
    url: str

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.url)
        default = {"PostgreSQL": 5432, "Redis": 6379, "RabbitMQ": 5672}[self.name]
        return parts.hostname or "127.0.0.1", parts.port or default


def scale_services(settings: Settings) -> list[Service]:
    """The services the scale profile needs, each with the variable that says where it is."""
    if not settings.is_scale:
        return []
    tracker_variable = "RASA_TRACKER_DB_URL" if settings.rasa_tracker_db_url else "BOT_DATABASE_URL"
    services = [Service("PostgreSQL", tracker_variable, settings.rasa_tracker_store_url)]
    if settings.database_url and urlsplit(settings.database_url).netloc != urlsplit(
            settings.rasa_tracker_store_url).netloc:
        services.append(Service("PostgreSQL", "BOT_DATABASE_URL", settings.database_url))
    services += [Service("Redis", "REDIS_URL", settings.redis_url), Service("RabbitMQ", "RABBITMQ_URL",
                                                                          settings.rabbitmq_url)]
    return services


def tcp_reachable(address: tuple[str, int], timeout: float = 3.0) -> str | None:
    """None when something accepts a connection there, else why not."""
    try:
        socket.create_connection(address, timeout=timeout).close()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


def unreachable_services(
    settings: Settings, reach: Callable[[tuple[str, int]], str | None] = tcp_reachable
) -> list[str]:
    """One sentence per service `bot run --profile scale` cannot reach (none: all there)."""
    problems = []
    for service in scale_services(settings):
        host, port = service.address
        why = reach((host, port))
        if why is not None:
            problems.append(f"{service.name} is not reachable at {host}:{port} ({why}); start it or set "
                            f"{service.variable} (now {redacted(service.url)})")
    return problems


def prepare_tracker_schema(settings: Settings) -> None:
    """Rasa's SQL tracker store creates its table but not the schema named in its URL's search_path: create it."""
    if settings.is_scale:
        create_schema_of(settings.rasa_tracker_store_url)
