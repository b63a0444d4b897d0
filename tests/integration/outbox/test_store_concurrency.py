"""Several workers, each with its own store (its own connection), draining one outbox at once, on
PostgreSQL and on SQLite (stores sharing one file), while a producer keeps enqueueing.

What must hold: every message is claimed exactly once, a recipient never has two messages in flight,
and each recipient gets its messages in the order they were enqueued.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import psycopg2
import pytest

from outbox.model import NewMessage, Outcome, Status
from outbox.store import open_store
from tests.integration.outbox.test_store_contract import PAGE, T0, database_url

MESSAGES = 2400
RECIPIENTS = 50
WORKERS = 4
PREQUEUED = MESSAGES // 2  # the rest is enqueued while the workers run
CLAIM_AT = T0 + timedelta(hours=1)  # everything is due; leases (60 s) never run out
DEADLINE_SECONDS = 45


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database_url(request.param, tmp_path) as url:
        yield url


class Ledger:
    """What the workers saw, checked as it happens (a lock, so the record order is the claim order)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.claims: Counter[str] = Counter()
        self.order: dict[str, list[str]] = defaultdict(list)
        self.in_flight: set[str] = set()
        self.overlaps: list[str] = []
        self.by_worker: Counter[str] = Counter()
        self.finished = 0

    def claimed(self, worker: str, recipient: str, key: str) -> None:
        with self.lock:
            if recipient in self.in_flight:
                self.overlaps.append(f"{recipient}: {key}")
            self.in_flight.add(recipient)
            self.claims[key] += 1
            self.order[recipient].append(key)
            self.by_worker[worker] += 1

    def releasing(self, recipient: str) -> None:
        """Called before `complete`: until it commits, the recipient's next message cannot be claimed."""
        with self.lock:
            self.in_flight.discard(recipient)

    def done(self) -> None:
        with self.lock:
            self.finished += 1


def test_workers_claim_every_message_once_and_in_order_per_recipient(database: str) -> None:
    rng = random.Random(20240501)
    plan = [(f"m{index:05d}", f"u{rng.randrange(RECIPIENTS):02d}") for index in range(MESSAGES)]
    expected: dict[str, list[str]] = defaultdict(list)
    for key, recipient in plan:
        expected[recipient].append(key)
    ledger = Ledger()
    stop = threading.Event()
    started = time.monotonic()

    def enqueue(store_url: str, part: list[tuple[int, tuple[str, str]]]) -> None:
        store = open_store(store_url)
        try:
            for index, (key, recipient) in part:
                # Enqueue times increase with the plan, so (due_at, id) is the plan's order.
                store.enqueue(
                    NewMessage(PAGE, recipient, {"text": key}, idempotency_key=key),
                    T0 + timedelta(milliseconds=index),
                )
        except BaseException:
            stop.set()
            raise
        finally:
            store.close()

    def work(worker: str) -> None:
        store = open_store(database)
        try:
            while ledger.finished < MESSAGES and not stop.is_set():
                if time.monotonic() - started > DEADLINE_SECONDS:
                    raise AssertionError(f"{worker}: not drained in {DEADLINE_SECONDS}s ({ledger.finished} done)")
                batch = store.claim(worker, CLAIM_AT, 60, 8)
                for message in batch:
                    assert message.status is Status.SENDING and message.claimed_by == worker
                    ledger.claimed(worker, message.recipient_id, message.idempotency_key)
                for message in batch:
                    ledger.releasing(message.recipient_id)
                    final = Status.FAILED if message.id % 11 == 0 else Status.SENT
                    store.complete(message.id, worker, Outcome(final, sent_at=CLAIM_AT))
                    ledger.done()
                # A real worker spends a Send API call on each message between its claims; without that pause a
                # thread that releases SQLite's write lock takes it straight back (SQLite's busy handler lets the
                # waiting ones sleep), and one worker can drain everything alone on a loaded machine.
                time.sleep(0.001)
        except BaseException:
            stop.set()
            raise
        finally:
            store.close()

    numbered = list(enumerate(plan))
    enqueue(database, numbered[:PREQUEUED])
    with ThreadPoolExecutor(max_workers=WORKERS + 1) as pool:
        producer = pool.submit(enqueue, database, numbered[PREQUEUED:])
        workers = [pool.submit(work, f"worker-{number}") for number in range(WORKERS)]
        producer.result()
        for future in workers:
            future.result()

    assert ledger.overlaps == [], "a recipient had two messages in flight"
    assert ledger.claims == Counter({key: 1 for key, _ in plan}), "every message claimed exactly once"
    assert dict(ledger.order) == dict(expected), "each recipient's messages in enqueue order"
    assert len([worker for worker, count in ledger.by_worker.items() if count]) >= 2, "the workers did overlap"
    check = open_store(database)
    try:
        counts = check.counts()
    finally:
        check.close()
    assert counts["sent"] + counts["failed"] == MESSAGES
    assert counts["pending"] == counts["sending"] == 0


def test_the_database_refuses_a_second_message_in_flight_for_one_recipient(database: str) -> None:
    """The safety net under the claim: a partial unique index, whatever a query decides."""
    store = open_store(database)
    try:
        for text in ("one", "two"):
            store.enqueue(NewMessage(PAGE, "u1", {"text": text}), T0)
        store.enqueue(NewMessage(PAGE, "u2", {"text": "other"}), T0)
    finally:
        store.close()
    both_of_u1 = "UPDATE messages SET status = 'sending' WHERE recipient_id = 'u1'"
    one_each = "UPDATE messages SET status = 'sending' WHERE id IN (1, 3)"

    if database.startswith("sqlite:///"):
        with closing(sqlite3.connect(database[len("sqlite:///") :], isolation_level=None)) as conn:
            with pytest.raises(sqlite3.IntegrityError):
                conn.execute(both_of_u1)
            assert conn.execute(one_each).rowcount == 2
    else:
        with closing(psycopg2.connect(database)) as conn:
            with pytest.raises(psycopg2.errors.UniqueViolation), conn.cursor() as cursor:
                cursor.execute(both_of_u1)
            conn.rollback()
            with conn.cursor() as cursor:
                cursor.execute(one_each)
                assert cursor.rowcount == 2
            conn.rollback()
