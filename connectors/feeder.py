"""The feeder process (`MESSENGER_FEEDER=process`): claims the ingest journal and drives each event's turn on a Rasa
server over HTTP, so that Rasa's process only runs turns.

Everything the channel does around a turn runs here, as it does in Rasa's process with `MESSENGER_FEEDER=rasa`: the
journal's claims (order per user; a conversation on one instance at a time), the window, the pause, the sender
actions, the outbox's writes and keys, the verdicts. Rasa gets each turn as `POST /webhooks/messenger/turns/run`
(connectors/turns.py) and answers with the turn's responses. One feeder per Rasa instance: `bot run` starts
"feeder" beside "rasa" ("feeder-2" beside "rasa-2" …) and restarts it with backoff; its journal claims are its own
(`RASA_INSTANCE_ID`, kept across restarts). Runs in Rasa's environment (Python 3.10), without Rasa's server.

    .venv-rasa/bin/python -m connectors.feeder        # RASA_URL: the Rasa instance it feeds
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from connectors.messenger import MessengerInput
from connectors.turns import RemoteTurns
from core.settings import Settings, SettingsError, load_settings

logger = logging.getLogger(__name__)


async def serve(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Feed until `stop` is set (SIGTERM or SIGINT when run as a program)."""
    stop = stop or asyncio.Event()
    turns = RemoteTurns(settings.rasa_url, settings.service_token, settings.action_timeout_seconds)
    channel = MessengerInput(settings, turns=turns)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    logger.info("waiting for Rasa at %s", settings.rasa_url)
    await turns.ready()  # claims wait for Rasa: another instance's feeder may take them meanwhile
    await channel.start_feeding()
    logger.info("feeding Rasa at %s as %s", settings.rasa_url, channel.owner)
    try:
        await stop.wait()
    finally:
        await channel.stop_feeding()
        logger.info("stopped; Rasa's heartbeat was checked %d times", turns.heartbeats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.feeder", description=__doc__.split("\n")[0])
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
