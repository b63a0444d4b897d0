"""The app started as `bot run` starts it (uvicorn, `bot.app:create_app`, settings from the environment) with
BOT_DATABASE_URL set: the console, the handoff and the outbox live in their own schemas on PostgreSQL and no
SQLite file of theirs appears in the data directory. The console serves its pages and JSON API from there
(demo users seeded into PostgreSQL, a snippet saved and read back, a paused conversation listed), and
`python -m bot users list` sees the same users. The webhook process journals a signed delivery in its own schema.

Rasa is not started (nothing here needs it). A schema prefix of the test's own keeps parallel runs apart;
no PostgreSQL → skipped (failed with REQUIRE_SERVICES=1)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import httpx
import psycopg2
import pytest

from core.postgres import schema_in_url
from core.settings import ROOT, SANDBOX_PAGE_ID, load_settings
from handoff.model import PauseReason, conversation_id_of
from handoff.service import open_handoff_store
from sandbox import simulate
from tests.support.console_client import ConsoleSession
from tests.support.postgres import POSTGRES_URL, fresh_schemas
from tests.support.servers import free_socket

STARTUP_SECONDS = 60


def free_port() -> int:
    sock = free_socket()
    port = int(sock.getsockname()[1])
    sock.close()
    return port


@pytest.fixture
def app_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    with fresh_schemas("app_pg") as prefix:
        port = free_port()
        yield {
            **os.environ,
            "BOT_DATA_DIR": str(tmp_path / "data"),
            "BOT_DATABASE_URL": POSTGRES_URL,
            "BOT_DATABASE_SCHEMA_PREFIX": f"{prefix}_",
            "APP_PORT": str(port),
            "BOT_APP_URL": f"http://127.0.0.1:{port}",
            "WEBHOOK_PORT": str(free_port()),
        }


@contextmanager
def running(command: list[str], env: dict[str, str], health_url: str, log_path: Path) -> Iterator[None]:
    """A process of the stack, until its health URL answers 200; terminated afterwards."""
    log = log_path.open("wb")
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            assert process.poll() is None, log_path.read_text(errors="replace")
            try:
                if httpx.get(health_url, timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"not healthy: {health_url}"
            time.sleep(0.2)
        yield
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture
def app_url(app_env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    url = app_env["BOT_APP_URL"]
    command = [sys.executable, "-m", "uvicorn", "bot.app:create_app", "--factory", "--host", "127.0.0.1",
               "--port", app_env["APP_PORT"], "--log-level", "warning"]
    with running(command, app_env, url + "/health", tmp_path / "app.log"):
        yield url


def tables(schema: str) -> set[str]:
    conn = psycopg2.connect(POSTGRES_URL)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema,))
            return {row[0] for row in cursor.fetchall()}
    finally:
        conn.close()


def test_the_app_serves_the_console_from_postgresql(app_env: dict[str, str], app_url: str) -> None:
    settings = load_settings(app_env)
    prefix = app_env["BOT_DATABASE_SCHEMA_PREFIX"]
    assert schema_in_url(settings.console_store_url) == f"{prefix}console"

    admin = ConsoleSession(app_url, "admin")  # a demo user seeded into PostgreSQL at start
    try:
        assert admin.get("/console/inbox").status_code == 200 and admin.get("/console/snippets").status_code == 200
        saved = admin.send("PUT", "/api/console/snippets/horario", json={"text": "De 8 a 18"})
        assert saved.status_code == 200, saved.text
        assert [s["name"] for s in admin.get("/api/console/snippets").json()["snippets"]] == ["horario"]
        assert admin.conversations() == []

        # A pause recorded by another process (the action server's notice, here the store itself) is listed.
        handoff = open_handoff_store(settings.handoff_store_url)
        try:
            handoff.pause("100000000000001", "u1", PauseReason.USER_ASKED, "bot", datetime.now(timezone.utc))
        finally:
            handoff.close()
        listed = admin.conversations()
        assert [c["id"] for c in listed] == [conversation_id_of("100000000000001", "u1")]
    finally:
        admin.close()

    assert {"users", "sessions", "snippets", "schema_migrations"} <= tables(f"{prefix}console")
    assert {"conversations", "handoff_log", "messages"} <= tables(f"{prefix}handoff")
    assert "messages" in tables(f"{prefix}outbox")
    data_dir = Path(app_env["BOT_DATA_DIR"])
    assert not any((data_dir / name).exists() for name in ("console.sqlite3", "handoff.sqlite3", "outbox.sqlite3"))

    listed_users = subprocess.run([sys.executable, "-m", "bot", "users", "list"], cwd=ROOT, env=app_env,
                                  capture_output=True, text=True, timeout=60)
    assert listed_users.returncode == 0, listed_users.stderr
    assert {line.split()[0] for line in listed_users.stdout.splitlines()} == {"admin", "agente", "editor"}


def test_the_webhook_process_journals_deliveries_in_its_postgresql_schema(app_env: dict[str, str],
                                                                          tmp_path: Path) -> None:
    settings = load_settings(app_env)
    base = f"http://127.0.0.1:{app_env['WEBHOOK_PORT']}"
    item = simulate.text_message(SANDBOX_PAGE_ID, "u-webhook", "hola")
    raw, headers = simulate.signed_request(simulate.webhook_body(SANDBOX_PAGE_ID, [item]), settings.app_secret)
    with running([sys.executable, "-m", "connectors.webhook_server"], app_env, base + "/health",
                 tmp_path / "webhook.log"):
        answer = httpx.post(base + "/webhooks/messenger/webhook", content=raw, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    schema = schema_in_url(settings.ingest_store_url)
    assert schema == f"{app_env['BOT_DATABASE_SCHEMA_PREFIX']}ingest"
    conn = psycopg2.connect(settings.ingest_store_url)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM inbound_events")
            assert cursor.fetchone()[0] == 1
    finally:
        conn.close()
    assert not (Path(app_env["BOT_DATA_DIR"]) / "messenger.sqlite3").exists()
