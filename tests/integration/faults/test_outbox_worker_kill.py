"""kill -9 of a standalone outbox worker (`python -m outbox worker`) in the middle of a burst of messages
enqueued through the outbox API, while another standalone worker (and the app's own) keeps running.

What it proves: every message the API accepted reaches the Send API; the only messages sent twice are
the ones the killed worker held at the moment of the kill (its `sending` rows: the at-least-once window,
closed by lease expiry, `OUTBOX_LEASE_SECONDS`); the order per recipient survives; nothing is left
`sending` or `pending`. It fails if a killed worker's claims were never reclaimed (messages lost), or if
a lease expiry re-sent messages that were not in flight.
"""

from __future__ import annotations

import collections
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import httpx

from core.settings import SANDBOX_PAGE_ID
from outbox.store import open_store
from tests.integration.faults.support import (
    SERVICE_TOKEN,
    delivered,
    kill_9,
    per_recipient_order,
    sandbox_sent,
    sent_twice,
    sqlite_rows,
    start_app,
    start_worker,
    stop,
    wait_until,
)

# More recipients than the app's worker claims at once (32), so the standalone workers get heads to send too.
USERS = [f"faults-api-{n:02d}" for n in range(60)]
MESSAGES = 180
LEASE_SECONDS = "2"


def enqueue_burst(app_url: str, count: int) -> list[tuple[str, str]]:
    """`count` messages through `POST /api/outbox`, round-robin over the users; (recipient, text) of each."""
    enqueued = []
    with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {SERVICE_TOKEN}"}) as http:
        for number in range(count):
            user, text = USERS[number % len(USERS)], f"aviso {number:03d}"
            answer = http.post(
                app_url + "/api/outbox",
                json={"page_id": SANDBOX_PAGE_ID, "recipient_id": user, "text": text, "sender": "bot",
                      "purpose": "reply"},
            )
            assert answer.status_code == 201, answer.text
            enqueued.append((user, text))
    return enqueued


def test_kill_9_of_a_standalone_worker_mid_burst_loses_nothing(tmp_path: Path) -> None:
    app = start_app(tmp_path / "app")
    outbox_db = app.data_dir / "outbox.sqlite3"
    store = open_store(f"sqlite:///{outbox_db}")
    workers = {}
    try:
        now = datetime.now(timezone.utc)
        for user in USERS:  # the customers wrote first: the policy allows a RESPONSE
            store.record_user_message(SANDBOX_PAGE_ID, user, now)
        env = {**app.env, "OUTBOX_LEASE_SECONDS": LEASE_SECONDS, "OUTBOX_BATCH_SIZE": "8", "OUTBOX_PAGE_RATE": "0"}
        log = tmp_path / "workers.log"
        workers = {name: start_worker(env, name, log) for name in ("victim", "survivor")}
        with httpx.Client(timeout=30) as http, ThreadPoolExecutor(1) as burst:
            http.post(app.app_url + "/sandbox/latency", json={"ms": 300}).raise_for_status()
            # The burst goes on in the background while the victim is killed (one client per thread).
            sending = burst.submit(enqueue_burst, app.app_url, MESSAGES)

            def victim_holding() -> list[str]:
                rows = sqlite_rows(
                    outbox_db, "SELECT message FROM messages WHERE status = 'sending' AND claimed_by = 'victim'"
                )
                return [row["message"] for row in rows]

            wait_until(lambda: bool(victim_holding()), 60, "the victim worker to hold a message in flight", 0.02)
            kill_9(workers.pop("victim"))
            # Nothing changes the victim's rows until its lease expires: this is exactly what was in flight.
            in_flight = {json.loads(message)["text"] for message in victim_holding()}
            assert in_flight, "the worker was killed while it held messages in flight"
            expected = sending.result(timeout=120)
            assert store.counts()["sent"] < len(expected), "the kill happened mid-burst, before everything was sent"
            http.post(app.app_url + "/sandbox/latency", json={"ms": 0}).raise_for_status()

            def all_sent() -> bool:
                assert workers["survivor"].poll() is None, log.read_text()
                return store.counts()["sent"] == len(expected)

            wait_until(all_sent, 90, f"all {len(expected)} messages sent ({store.counts()})")
            records = sandbox_sent(http, app.app_url)
        counts = delivered(records)
        outbox_counts = collections.Counter(expected)
        assert set(counts) == set(outbox_counts), (
            f"no message lost: each of the {len(expected)} API-enqueued messages reached the Send API although a "
            f"worker was killed -9 holding {len(in_flight)} of them"
        )
        duplicates = sent_twice(counts, outbox_counts)
        assert {text for _, text in duplicates} <= in_flight and all(n == 1 for n in duplicates.values()), (
            f"only messages in flight in the killed worker ({sorted(in_flight)}) were sent twice, once more each "
            f"(the at-least-once window after a lease expiry); sent twice: {duplicates}"
        )
        expected_order = collections.defaultdict(list)
        for user, text in expected:
            expected_order[user].append(text)
        assert per_recipient_order(records) == expected_order, "each recipient got its messages in order"
        states = store.counts()
        assert states["sent"] == len(expected) and states["sending"] == states["pending"] == 0, (
            f"nothing half-done: every message ends sent, none left sending or pending ({states})"
        )
        print(f"\nworker kill -9: {len(expected)} messages, {len(in_flight)} in flight at the kill, "
              f"{sum(duplicates.values())} sent twice")
    finally:
        for process in workers.values():
            stop(process)
        store.close()
        app.stop()
