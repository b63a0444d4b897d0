"""The feeder's heartbeat on Rasa (`RemoteTurns`): a turn call open longer than `heartbeat_seconds` asks Rasa whether
it still answers; a Rasa that does not (stopped, its loop blocked) ends the call with `TurnsUnavailable` long before
the turn's own timeout, and a slow turn on a Rasa that answers is waited for.

Real: a server in its own process standing for Rasa's turns routes (a turn takes as long as the test says), frozen
with SIGSTOP as a hung Rasa is: the kernel still accepts connections, nothing answers.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.turns import RemoteTurns, TurnMessage, TurnsUnavailable
from tests.channel.support import eventually, free_port

SERVER = r"""
import asyncio, json, sys
from pathlib import Path
from aiohttp import web

port, turn_seconds, marks = int(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3])

async def check(request):
    with marks.open("a") as out:
        out.write("check\n")
    return web.json_response({"ready": True})

async def run(request):
    body = await request.json()
    with marks.open("a") as out:
        out.write("run " + body["text"] + "\n")
    await asyncio.sleep(turn_seconds)
    return web.json_response({"messages": [{"text": "eco: " + body["text"]}], "failures": []})

app = web.Application()
app.router.add_get("/webhooks/messenger/turns", check)
app.router.add_post("/webhooks/messenger/turns/run", run)
web.run_app(app, host="127.0.0.1", port=port, print=None)
"""

# Turns of the action timeout below would wait 3 × 100 + 30 s for an answer: the heartbeat must end them first.
ACTION_TIMEOUT_SECONDS = 100.0


class FakeRasa:
    def __init__(self, tmp_path: Path, turn_seconds: float) -> None:
        self.port = free_port()
        self.marks = tmp_path / "marks.txt"
        self.marks.touch()
        with (tmp_path / "server.log").open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", SERVER, str(self.port), str(turn_seconds), str(self.marks)],
                stdout=log, stderr=subprocess.STDOUT,
            )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def seen(self) -> list[str]:
        return self.marks.read_text().splitlines()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGCONT)
        self.process.kill()  # aiohttp would wait for the stuck turn's handler before exiting
        self.process.wait(timeout=10)


@pytest.fixture
def slow_rasa(tmp_path: Path) -> Iterator[FakeRasa]:
    rasa = FakeRasa(tmp_path, turn_seconds=2.0)
    yield rasa
    rasa.stop()


@pytest.fixture
def stuck_rasa(tmp_path: Path) -> Iterator[FakeRasa]:
    rasa = FakeRasa(tmp_path, turn_seconds=3600.0)
    yield rasa
    rasa.stop()


def turns_for(rasa: FakeRasa) -> RemoteTurns:
    return RemoteTurns(rasa.url, "token", ACTION_TIMEOUT_SECONDS, heartbeat_seconds=0.3,
                       heartbeat_timeout_seconds=1.0)


async def test_a_slow_turn_on_a_rasa_that_answers_its_heartbeat_is_waited_for(slow_rasa: FakeRasa) -> None:
    turns = turns_for(slow_rasa)
    try:
        await turns.ready()
        outcome = await asyncio.wait_for(turns.run(TurnMessage("psid-hb-1", "hola"), output=None), 60)
    finally:
        await turns.close()
    assert [message["text"] for message in outcome.messages] == ["eco: hola"]
    # The turn took 2 s: the heartbeat was checked while it ran (ready's check plus at least one more) and passed.
    assert turns.heartbeats >= 1
    assert slow_rasa.seen().count("check") >= 2, slow_rasa.seen()


async def test_a_hung_rasa_ends_the_turn_call_long_before_its_timeout(stuck_rasa: FakeRasa) -> None:
    turns = turns_for(stuck_rasa)
    try:
        await turns.ready()
        call = asyncio.ensure_future(turns.run(TurnMessage("psid-hb-2", "hola"), output=None))
        await eventually(lambda: "run hola" in stuck_rasa.seen(), "the turn reached Rasa", timeout=20)
        os.kill(stuck_rasa.process.pid, signal.SIGSTOP)  # hung: connections are accepted, nothing answers
        # The turn's own timeout is 330 s: only the heartbeat can end the call within this test's minute.
        with pytest.raises(TurnsUnavailable, match="heartbeat"):
            await asyncio.wait_for(call, 60)
        assert turns.heartbeats >= 1
        assert not turns._ready, "the next call waits for Rasa (`ready`) first"
        # Thawed, Rasa answers again: the feeder's wait for it ends and turns run.
        os.kill(stuck_rasa.process.pid, signal.SIGCONT)
        await asyncio.wait_for(turns.ready(), 30)
    finally:
        await turns.close()
