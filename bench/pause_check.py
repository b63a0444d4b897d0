"""The Rasa channel's pause check (`connectors.turns.ever_paused`), timed alone on a tracker store of 200
conversations (10 turns each, one in ten paused) in a temporary SQLite file, as the embedded profile keeps it
(`connectors.tracker_store.LocalSQLTrackerStore`). It runs on Rasa's event loop once per turn.

Usage (Rasa's environment): .venv-rasa/bin/python bench/pause_check.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rasa.shared.core.domain import Domain  # noqa: E402
from rasa.shared.core.events import ActionExecuted, BotUttered, ConversationPaused, UserUttered  # noqa: E402
from rasa.shared.core.trackers import DialogueStateTracker  # noqa: E402

from connectors.tracker_store import LocalSQLTrackerStore  # noqa: E402
from connectors.turns import ever_paused  # noqa: E402

CONVERSATIONS = 200


async def fill(store: LocalSQLTrackerStore) -> None:
    for number in range(CONVERSATIONS):
        tracker = DialogueStateTracker(f"user{number}", [])
        for _ in range(10):
            tracker.update(UserUttered("hola"))
            tracker.update(ActionExecuted("utter_greet"))
            tracker.update(BotUttered("¡Hola!"))
        if number % 10 == 0:
            tracker.update(ConversationPaused())
        await store.save(tracker)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalSQLTrackerStore(Domain.empty(), dialect="sqlite", db=str(Path(tmp) / "trackers.db"))
        asyncio.run(fill(store))
        paused = sum(ever_paused(store, f"user{number}") for number in range(CONVERSATIONS))
        assert paused == CONVERSATIONS // 10, paused  # the check answers right before it is timed
        for repeat in range(1, args.repeats + 1):
            started = time.perf_counter()
            for call in range(args.calls):
                ever_paused(store, f"user{call % CONVERSATIONS}")
            per_call = (time.perf_counter() - started) / args.calls * 1000
            print(f"run {repeat}/{args.repeats}: ever_paused {per_call:.3f} ms a call ({args.calls} calls)")


if __name__ == "__main__":
    main()
