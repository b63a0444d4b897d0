"""PostgreSQL restarted in the middle of a burst, with the outbox on PostgreSQL (`OUTBOX_URL=postgresql://…`).

A standalone worker (`python -m outbox worker`) sends a burst from a fresh schema to the Graph sandbox
(the app's, in its own process); the cluster is restarted with `pg_ctlcluster … restart` once part of the
burst is out. What it proves: the worker survives the restart (same process, it reconnects and sends the
rest), every message reaches the Send API, and a message is sent twice only if it was in flight when the
database went away and stayed away longer than the worker's lease (the at-least-once window); with a
restart shorter than the lease, nothing is sent twice: the worker retries recording the outcome until the
database is back. Before that fix, a message in flight at the restart stayed `sending` and was sent again
when its lease expired.

Other tests may use the same cluster at that moment: the restart is one `fast` restart (a second or two),
done once per run.
"""

from __future__ import annotations

import collections
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import psycopg2.extras

from core.settings import SANDBOX_PAGE_ID
from outbox.model import NewMessage
from outbox.store import open_store
from tests.conftest import require_or_skip
from tests.integration.faults.support import (
    delivered,
    per_recipient_order,
    sandbox_sent,
    sent_twice,
    start_app,
    start_worker,
    stop,
    wait_until,
)
from tests.integration.outbox.test_store_contract import POSTGRES_DSN, postgres_available, with_search_path

USERS = [f"faults-pg-{n:02d}" for n in range(20)]
MESSAGES = 300
LEASE_SECONDS = "30"  # the default; longer than a restart, so a worker that reconnects records its outcomes


def cluster_version() -> str | None:
    """The local cluster `pg_ctlcluster` can restart (Debian's layout), or None."""
    if shutil.which("pg_ctlcluster") is None or not Path("/etc/postgresql").is_dir():
        return None
    versions = sorted(path.name for path in Path("/etc/postgresql").iterdir() if (path / "main").is_dir())
    return versions[-1] if versions else None


def restart_postgres(version: str) -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart", "--", "-m", "fast"],
        check=True,
        capture_output=True,
        timeout=120,
    )


@contextmanager
def fresh_schema() -> Iterator[str]:
    """A store URL whose search_path is a schema of its own, dropped afterwards."""
    schema = f"faults_{uuid.uuid4().hex[:12]}"
    with closing(psycopg2.connect(POSTGRES_DSN)) as admin:
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_search_path(POSTGRES_DSN, schema)
    finally:
        with closing(connect_when_up(POSTGRES_DSN, 60)) as admin:
            admin.autocommit = True
            with admin.cursor() as cursor:
                cursor.execute(f"DROP SCHEMA {schema} CASCADE")


def connect_when_up(url: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return psycopg2.connect(url, connect_timeout=3)
        except psycopg2.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def rows(url: str, sql: str) -> list[dict[str, Any]]:
    """A read on a fresh connection, waiting for the server if it is coming back."""
    with closing(connect_when_up(url, 60)) as conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def texts_in_flight(url: str) -> set[str]:
    return {row["message"]["text"] for row in rows(url, "SELECT message FROM messages WHERE status = 'sending'")}


def test_postgres_restart_mid_burst_the_worker_reconnects_and_loses_nothing(tmp_path: Path) -> None:
    require_or_skip(postgres_available(), "PostgreSQL")
    version = cluster_version()
    require_or_skip(version is not None, "pg_ctlcluster and a local cluster (to restart PostgreSQL)")
    assert version is not None
    app = start_app(tmp_path / "app")  # the Graph sandbox; its own outbox stays on SQLite, unused here
    worker = None
    try:
        with fresh_schema() as url, httpx.Client(timeout=30) as http:
            store = open_store(url)
            now = datetime.now(timezone.utc)
            expected = []
            for number in range(MESSAGES):
                user, text = USERS[number % len(USERS)], f"pg {number:03d}"
                store.record_user_message(SANDBOX_PAGE_ID, user, now)
                store.enqueue(NewMessage(SANDBOX_PAGE_ID, user, {"text": text}), now)
                expected.append((user, text))
            store.close()
            http.post(app.app_url + "/sandbox/latency", json={"ms": 100}).raise_for_status()
            log = tmp_path / "worker.log"
            env = {**app.env, "OUTBOX_URL": url, "OUTBOX_LEASE_SECONDS": LEASE_SECONDS, "OUTBOX_BATCH_SIZE": "8",
                   "OUTBOX_PAGE_RATE": "0"}
            worker = start_worker(env, "pg-worker", log)
            wait_until(lambda: len(sandbox_sent(http, app.app_url)) >= 40, 60, "the worker to get going", 0.02)

            in_flight = texts_in_flight(url)  # what the restart may cut off: held now, or claimed until it lands
            restart_started = time.monotonic()
            restart_postgres(version)
            restart_seconds = time.monotonic() - restart_started
            sent_before = len(sandbox_sent(http, app.app_url))
            in_flight |= texts_in_flight(url)  # still held once the server is back: outcome not yet recorded
            assert sent_before < MESSAGES, "PostgreSQL was restarted mid-burst, before everything was sent"

            def all_sent() -> bool:
                assert worker.poll() is None, "the worker died with the database:\n" + log.read_text()[-3000:]
                states = rows(url, "SELECT status, count(*) AS n FROM messages GROUP BY status")
                return {row["status"]: row["n"] for row in states} == {"sent": MESSAGES}

            wait_until(all_sent, 120, f"all {MESSAGES} messages sent after the restart")
            finish_seconds = time.monotonic() - restart_started
            records = sandbox_sent(http, app.app_url)
        assert worker.poll() is None, "the worker survived the PostgreSQL restart (same process, still running)"
        assert "outbox store unavailable" in log.read_text(), (
            "the restart did reach the worker: its connection was cut and it said the store was unavailable"
        )
        counts = delivered(records)
        outbox_counts = collections.Counter(expected)
        assert set(counts) == set(outbox_counts), (
            f"no message lost: all {MESSAGES} messages reached the Send API across a PostgreSQL restart, "
            f"{sent_before} of them before it and the rest after the worker reconnected"
        )
        duplicates = sent_twice(counts, outbox_counts)
        if restart_seconds < float(LEASE_SECONDS) / 2:
            assert not duplicates, (
                f"exactly once: the restart ({restart_seconds:.1f} s) was shorter than the lease, so the worker "
                f"recorded the outcome of the {len(in_flight)} messages in flight once the database was back instead "
                f"of leaving them to be sent again; sent twice: {duplicates}"
            )
        assert {text for _, text in duplicates} <= in_flight, (
            f"only messages in flight at the restart ({len(in_flight)}) may be sent twice; sent twice: {duplicates}"
        )
        expected_order = collections.defaultdict(list)
        for user, text in expected:
            expected_order[user].append(text)
        assert per_recipient_order(records) == expected_order, "each recipient got its messages in order"
        print(
            f"\npostgres restart: {MESSAGES} messages, {sent_before} sent before the restart, {len(in_flight)} in "
            f"flight around it, {sum(duplicates.values())} sent twice; restart {restart_seconds:.1f} s, all sent "
            f"{finish_seconds:.1f} s after it began"
        )
    finally:
        if worker is not None:
            stop(worker)
        app.stop()

