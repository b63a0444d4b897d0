"""`python -m outbox worker`: a standalone outbox worker (more throughput, or a worker per host).

Settings come from the environment like the rest (OUTBOX_URL, GRAPH_API_BASE, page tokens);
OUTBOX_LEASE_SECONDS and OUTBOX_BATCH_SIZE tune the claim.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys

from core.settings import SettingsError, load_settings
from meta.graph import GraphClient
from outbox.policy_file import load_policy
from outbox.store import open_store
from outbox.worker import OutboxWorker


async def run_worker(worker_id: str | None) -> None:
    settings = load_settings()
    store = open_store(settings.outbox_store_url)
    client = GraphClient(settings)
    worker = OutboxWorker(
        store,
        client,
        load_policy(),
        worker_id=worker_id,
        lease_seconds=float(os.environ.get("OUTBOX_LEASE_SECONDS", "30")),
        batch_size=int(os.environ.get("OUTBOX_BATCH_SIZE", "32")),
        page_rate=settings.outbox_page_rate,
    )
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, worker.stop)
    try:
        await worker.run()
    finally:
        await client.close()
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m outbox")
    commands = parser.add_subparsers(dest="command", required=True)
    worker_parser = commands.add_parser("worker", help="claim and send due outbox messages until stopped")
    worker_parser.add_argument("--id", dest="worker_id", help="a name for this worker (default: random)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(run_worker(args.worker_id))
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
