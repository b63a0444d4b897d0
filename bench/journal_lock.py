"""The ingest journal's write lock under a campaign, without Rasa: the webhook's commits against the feeder's.

Two processes share one SQLite journal, as in the embedded profile:
- the webhook (this process): deliveries of one event each, open loop at `--rate`/s (`record_async`: the group
  commit, synchronous=FULL); each delivery's time until durable;
- the feeder (a child process, as Rasa's channel): claims the pending events, and for each one "runs a turn"
  (`--turn-ms` of sleep: Rasa's CPU is elsewhere) then `finish` and `release_claim`: the writes Rasa's side makes.

Variants, alternated (`--rounds`) so both meet the same machine load:
- `before`: both sides as before issue 11's item 1: every commit FULL, SQLite's busy handler (sleeps 1…100 ms);
- `after`: `ROLE_WEBHOOK` / `ROLE_FEEDER` (the feeder's own writes synchronous=NORMAL, short waits for the lock).

Usage: .venv/bin/python bench/journal_lock.py [--rate 200] [--events 1000] [--turn-ms 20] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.webhook import describe  # noqa: E402
from connectors.ingest import DONE, ROLE_ALL, ROLE_FEEDER, ROLE_WEBHOOK, IngestStore  # noqa: E402
from meta.events import parse_webhook  # noqa: E402
from tests.support import meta_payloads as meta  # noqa: E402

LEASE = timedelta(seconds=30)


def open_store(path: Path, variant: str, role: str) -> IngestStore:
    store = IngestStore(path, role=role if variant == "after" else ROLE_ALL)
    if variant == "before":
        store._db.short_waits = False  # SQLite's busy handler, as before
    return store


def feeder(path: str, variant: str, turn_ms: float, stop_at: float) -> None:
    store = open_store(Path(path), variant, ROLE_FEEDER)
    owner = f"bench-{os.getpid()}"
    while time.time() < stop_at:
        claimed = store.claim_pending(owner, datetime.now(timezone.utc), LEASE)
        if not claimed:
            time.sleep(0.02)
            continue
        for stored in claimed:
            time.sleep(turn_ms / 1000)
            store.finish(stored.id, DONE)
        for conversation in {stored.event.conversation_key for stored in claimed}:
            store.release_claim(owner, conversation)
    store.close()


async def webhook(store: IngestStore, rate: float, events: int, tag: str) -> list[float]:
    latencies: list[float] = []
    deliveries = [
        parse_webhook(meta.webhook(meta.entry([meta.text_message(mid=f"{tag}-{i}", text="hola",
                                                                 sender=f"{7000000000000000 + i % 50}")])))
        for i in range(events)
    ]

    async def deliver(number: int) -> None:
        await asyncio.sleep(max(0.0, begun + number / rate - time.perf_counter()))
        started = time.perf_counter()
        await store.record_async(deliveries[number])
        latencies.append((time.perf_counter() - started) * 1000)

    begun = time.perf_counter()
    await asyncio.gather(*(deliver(number) for number in range(events)))
    return latencies


def run(variant: str, rate: float, events: int, turn_ms: float, tmp: Path, tag: str) -> list[float]:
    path = tmp / f"{tag}.sqlite3"
    store = open_store(path, variant, ROLE_WEBHOOK)
    child = multiprocessing.get_context("spawn").Process(
        target=feeder, args=(str(path), variant, turn_ms, time.time() + events / rate + 2)
    )
    child.start()
    time.sleep(1.0)  # the child imports and opens the journal
    try:
        return asyncio.run(webhook(store, rate, events, tag))
    finally:
        child.join()
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--turn-ms", type=float, default=20.0, help="the feeder's time per event between writes")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for number in range(args.rounds):
            for variant in ("before", "after"):
                latencies = run(variant, args.rate, args.events, args.turn_ms, Path(tmp), f"{variant}{number}")
                load = " ".join(f"{x:.2f}" for x in os.getloadavg())
                print(f"round {number + 1} {variant:6}: {args.events} deliveries at {args.rate:g}/s, feeder turn "
                      f"{args.turn_ms:g} ms: {describe(latencies)} (load {load})", flush=True)


if __name__ == "__main__":
    main()
