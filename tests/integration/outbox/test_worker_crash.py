"""kill -9 a worker process mid-batch, start another: every message ends sent, none is sent twice
except those in flight at the kill (the documented at-least-once window)."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx

from bot.app import create_app
from core.settings import ROOT, Settings
from outbox.model import MessageFilter, NewMessage, Status
from outbox.store import open_store
from tests.support.servers import serve_asgi

PAGE = "100000000000001"


def start_worker(store_url: str, sandbox_url: str, name: str, log: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "OUTBOX_URL": store_url,
        "GRAPH_API_BASE": sandbox_url,
        "OUTBOX_LEASE_SECONDS": "2",
        "OUTBOX_BATCH_SIZE": "8",
        "OUTBOX_PAGE_RATE": "0",
    }
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "outbox", "worker", "--id", name], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def test_kill_9_mid_batch_then_restart(tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'outbox.sqlite3'}"
    store = open_store(store_url)
    now = datetime.now(timezone.utc)
    texts = []
    for n in range(60):
        user = f"user-{n % 15}"
        store.record_user_message(PAGE, user, now)
        text = f"mensaje {n:03d}"
        texts.append((user, text))
        store.enqueue(NewMessage(PAGE, user, {"text": text}), now)
    settings = Settings(data_dir=tmp_path / "sandbox")
    with serve_asgi(create_app(settings)) as sandbox, httpx.Client(base_url=sandbox.base_url, timeout=10) as http:
        http.post("/sandbox/latency", json={"ms": 150})
        first = start_worker(store_url, sandbox.base_url, "first", tmp_path / "worker.log")
        try:
            deadline = time.monotonic() + 60
            while len(http.get("/sandbox/sent").json()) < 12:
                assert time.monotonic() < deadline, "the first worker never got going"
                time.sleep(0.05)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        in_flight = len(store.find(MessageFilter(statuses=(Status.SENDING,), limit=1000)))
        http.post("/sandbox/latency", json={"ms": 0})
        second = start_worker(store_url, sandbox.base_url, "second", tmp_path / "worker.log")
        try:
            deadline = time.monotonic() + 60
            while store.counts().get(Status.SENT.value, 0) < len(texts):
                assert second.poll() is None, (tmp_path / "worker.log").read_text()
                assert time.monotonic() < deadline, store.counts()
                time.sleep(0.1)
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=20)
        sent = http.get("/sandbox/sent").json()
    store.close()
    delivered = collections.Counter((item["body"]["recipient"]["id"], item["body"]["message"]["text"]) for item in sent)
    assert set(delivered) == set(texts), "every message reached the Send API"
    duplicates = sum(count - 1 for count in delivered.values())
    assert duplicates <= in_flight, (duplicates, in_flight)
    for user in {user for user, _ in texts}:
        order = [item["body"]["message"]["text"] for item in sent if item["body"]["recipient"]["id"] == user]
        expected = [text for who, text in texts if who == user]
        assert list(dict.fromkeys(order)) == expected, "per-recipient order survives the crash"
