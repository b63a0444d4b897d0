"""`python -m outbox worker`: a standalone outbox worker (more throughput, or a worker per host).

Settings come from the environment like the rest (core/settings.py: OUTBOX_URL, GRAPH_API_BASE, page tokens,
OUTBOX_LEASE_SECONDS and OUTBOX_BATCH_SIZE for the claim), opened as one `outbox.outbox.Outbox`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from core.settings import SettingsError, load_settings
from meta.graph import GraphClient
from outbox.outbox import open_outbox


async def run_worker(worker_id: str | None) -> None:
    settings = load_settings()
    client = GraphClient(settings.page_tokens, base_url=settings.graph_api_base, version=settings.graph_api_version,
                         timeout_seconds=settings.graph_timeout_seconds)
    try:
        outbox = open_outbox(
            settings.outbox_store_url,
            client,
            policy_file=settings.outbox_policy_file,
            retired_tags_until=settings.outbox_retired_tags_until,
            page_rate=settings.outbox_page_rate,
            lease_seconds=settings.outbox_lease_seconds,
            batch_size=settings.outbox_batch_size,
            worker_id=worker_id,
            poll_seconds=settings.outbox_poll_seconds,
        )
    except BaseException:
        await client.close()
        raise
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, outbox.request_stop)
    try:
        await outbox.run()
    finally:
        await client.close()
        outbox.close()


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
