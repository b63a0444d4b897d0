"""`OUTBOX_PAGE_RATE` as Meta sees it: the times sends of one page reach the Graph sandbox, over real HTTP.

Meta limits a page, whichever process sends for it. So the rate is kept by the outbox store (outbox/rate.py,
`reserve_send_slot`), and this module counts, per page, the arrivals the sandbox recorded in every one-second
window: with one worker, and with several `python -m outbox worker` processes on one SQLite file and on one
PostgreSQL database. Before the rate was shared, each process kept its own (a token bucket with a burst of one
second's worth), so three workers at 5/s put 15 or more sends of a page into one second; those tests fail there.

The counts are of a rate (behaviour), not limits on our speed. Tolerance: one send per window. The store's slots
are exactly 1/rate apart (checked without any timing in `test_concurrent_reservations_never_share_a_slot`), but
an arrival is the slot plus the worker's wake-up and the HTTP hop, which vary by milliseconds on a busy machine:
a send that arrives late lands closer to the next one, and a window can catch one more arrival than it holds
slots (the first send of a worker, on a new connection, is the usual one). The same single send of tolerance
holds for windows of 2, 3, 4 and 5 seconds, so a rate steadily above the limit (6/s for 5/s) still fails.
"""

from __future__ import annotations

import asyncio
import bisect
import math
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from meta.graph import GraphClient
from outbox.model import MessageFilter, NewMessage, OutboxStore, Purpose, Status
from outbox.policy_file import load_policy
from outbox.rate import send_interval
from outbox.store import open_store
from outbox.worker import OutboxWorker
from tests.integration.faults.support import start_worker, stop, wait_until
from tests.integration.outbox.conftest import PAGE_A, PAGE_B, TOKENS
from tests.integration.outbox.test_store_contract import database_url
from tests.support.servers import RunningServer

RATE = 5.0
ONE_SECOND = timedelta(seconds=1)
ARRIVAL_TOLERANCE = 1  # sends per window, see the module docstring
WINDOW_SECONDS = (1, 2, 3, 4, 5)


def enqueue_replies(store: OutboxStore, page_id: str, count: int, prefix: str) -> None:
    """`count` replies to as many customers (one each: a customer's own messages go one at a time anyway)."""
    now = datetime.now(timezone.utc)
    for number in range(count):
        user = f"{prefix}-{number:02d}"
        store.record_user_message(page_id, user, now)
        store.enqueue(NewMessage(page_id, user, {"text": f"{prefix} {number}"}, purpose=Purpose.REPLY), now)


def arrivals(http: httpx.Client, page_id: str) -> list[datetime]:
    """When the sandbox received each accepted send of the page, in order."""
    answer = http.get("/sandbox/sent", params={"page_id": page_id})
    answer.raise_for_status()
    return sorted(datetime.fromisoformat(item["received_at"]) for item in answer.json())


def max_in_window(times: list[datetime], window: timedelta = ONE_SECOND) -> int:
    """The most arrivals in any half-open window [t, t + window) (windows starting at an arrival suffice)."""
    return max((bisect.bisect_left(times, start + window) - i for i, start in enumerate(times)), default=0)


def mean_rate(times: list[datetime]) -> float:
    return (len(times) - 1) / (times[-1] - times[0]).total_seconds()


def assert_within_rate(times: list[datetime], what: str) -> None:
    for seconds in WINDOW_SECONDS:
        most = max_in_window(times, timedelta(seconds=seconds))
        allowed = math.ceil(seconds * RATE) + ARRIVAL_TOLERANCE
        assert most <= allowed, (
            f"{what}: {most} sends reached Meta within {seconds} s, the page allows {RATE:g}/s "
            f"(arrivals, s: {[round((time - times[0]).total_seconds(), 3) for time in times]})"
        )


# --- the store's slots, without timing ------------------------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_concurrent_reservations_never_share_a_slot(backend: str, tmp_path: Path) -> None:
    """Four stores (four connections, as four processes have) reserving at once, all with the same `now`: every
    slot of the page is its own, exactly one interval after the previous. A read-then-write without the lock
    (or outside one transaction) hands two workers the same slot."""
    with database_url(backend, tmp_path) as url:
        stores = [open_store(url) for _ in range(4)]
        now = datetime.now(timezone.utc)
        try:
            with ThreadPoolExecutor(len(stores)) as pool:
                batches = list(
                    pool.map(lambda store: [store.reserve_send_slot(PAGE_A, now, RATE) for _ in range(40)], stores)
                )
        finally:
            for store in stores:
                store.close()
    slots = sorted(slot.send_at for batch in batches for slot in batch)
    assert all(slot.granted for batch in batches for slot in batch)
    assert slots == [now + n * send_interval(RATE) for n in range(160)]


# --- one worker -------------------------------------------------------------------------------------------


async def test_one_worker_keeps_each_pages_rate_and_pages_do_not_wait_for_each_other(
    http: httpx.Client, sandbox: RunningServer, tmp_path: Path
) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'outbox.sqlite3'}")
    client = GraphClient(TOKENS, base_url=sandbox.base_url)
    worker = OutboxWorker(store, client, load_policy(), page_rate=RATE, poll_seconds=0.2)
    enqueue_replies(store, PAGE_A, 20, "busy")  # first in the queue: 4 s of sends at 5/s
    enqueue_replies(store, PAGE_B, 5, "quiet")
    running = asyncio.create_task(worker.run())
    try:
        while store.counts()["sent"] < 25:
            assert not running.done(), running
            await asyncio.sleep(0.1)
    finally:
        worker.stop()
        await running
        await client.close()
        store.close()
    busy, quiet = arrivals(http, PAGE_A), arrivals(http, PAGE_B)
    print(f"\none worker at {RATE:g}/s: at most {max_in_window(busy)} sends of a page in one second "
          f"(mean {mean_rate(busy):.2f}/s)")
    assert (len(busy), len(quiet)) == (20, 5), "every message sent once"
    assert_within_rate(busy, "one worker, the busy page")
    assert_within_rate(quiet, "one worker, the quiet page")
    assert quiet[-1] < busy[9], (
        "the quiet page sent its 5 messages at its own rate while the busy page was still at its first 10: "
        "the limit is per page, not per worker"
    )


# --- several worker processes -----------------------------------------------------------------------------


def run_workers(store_url: str, sandbox_url: str, workers: int, messages: int, log: Path) -> set[str]:
    """`messages` replies of one page sent by `workers` processes (`python -m outbox worker`, OUTBOX_PAGE_RATE
    5); returns the names of the workers seen holding one. Small claims (4) so that every worker gets some; a
    short lease (6 s) so that slots past half of it (3 s, 15 slots) are left: those messages are given back and
    claimed again later, by whichever worker is free."""
    store = open_store(store_url)
    enqueue_replies(store, PAGE_A, messages, "many")
    env = {
        "OUTBOX_URL": store_url,
        "GRAPH_API_BASE": sandbox_url,
        "OUTBOX_PAGE_RATE": f"{RATE:g}",
        "OUTBOX_BATCH_SIZE": "4",
        "OUTBOX_LEASE_SECONDS": "6",
    }
    processes = [start_worker(env, f"rate-{n}", log) for n in range(workers)]
    holders: set[str] = set()

    def all_sent() -> bool:
        for process in processes:
            assert process.poll() is None, log.read_text()
        holding = store.find(MessageFilter(statuses=(Status.SENDING,), limit=messages))
        holders.update(message.claimed_by or "" for message in holding)
        return store.counts()["sent"] == messages

    try:
        wait_until(all_sent, 120, f"{messages} messages sent", every=0.05)
    finally:
        for process in processes:
            stop(process)
        store.close()
    return holders


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_several_worker_processes_together_keep_the_pages_rate(
    backend: str, http: httpx.Client, sandbox: RunningServer, tmp_path: Path
) -> None:
    with database_url(backend, tmp_path) as url:
        holders = run_workers(url, sandbox.base_url, 3, 30, tmp_path / "workers.log")
    times = arrivals(http, PAGE_A)
    print(f"\n3 workers on {backend} at {RATE:g}/s: at most {max_in_window(times)} sends of the page in one "
          f"second (mean {mean_rate(times):.2f}/s)")
    assert len(times) == 30, "every message sent once"
    assert len(holders) >= 2, f"several workers took part ({sorted(holders)})"
    assert_within_rate(times, f"3 workers on {backend}")
