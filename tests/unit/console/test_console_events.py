"""The console's live-update hub: numbering, fan-out, catching up with Last-Event-ID, ending streams."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime, timezone

from console.events import EventHub, NumberedEvent, sse_frame
from handoff.model import ConsoleEvent
from handoff.pubsub import Broadcaster

AT = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)


def event(number: int, kind: str = "user_message") -> ConsoleEvent:
    return ConsoleEvent(kind, f"p:u{number}", AT, {"text": f"mensaje {number}"})


def frames(text: str) -> list[dict[str, str]]:
    parsed = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            if name and not line.startswith(":"):
                fields[name] = value
        if "event" in fields:
            parsed.append(fields)
    return parsed


async def collect(stream: AsyncIterator[str]) -> str:
    return "".join([chunk async for chunk in stream])


def test_a_frame_is_valid_server_sent_events() -> None:
    text = sse_frame(NumberedEvent(7, event(1)))
    assert text.startswith("id: 7\nevent: user_message\ndata: ") and text.endswith("\n\n")
    assert json.loads(text.split("data: ", 1)[1]) == {
        "id": 7, "kind": "user_message", "conversation_id": "p:u1", "at": AT.isoformat(),
        "data": {"text": "mensaje 1"}}


async def test_live_events_reach_every_open_stream_in_order() -> None:
    source: Broadcaster[ConsoleEvent] = Broadcaster(lambda: event(0, "resync"))
    hub = EventHub(source.subscribe, stream_seconds=0.3, keepalive_seconds=0.1)
    hub.start()
    await asyncio.sleep(0)  # the hub subscribes
    streams = [asyncio.create_task(collect(hub.stream(None))) for _ in range(2)]
    await asyncio.sleep(0.05)
    for number in (1, 2, 3):
        source.publish(event(number))
    for text in await asyncio.gather(*streams):
        parsed = frames(text)
        assert parsed[0]["event"] == "hello" and json.loads(parsed[0]["data"])["resync"] is True
        assert [json.loads(f["data"])["data"]["text"] for f in parsed[1:]] == ["mensaje 1", "mensaje 2", "mensaje 3"]
        assert [f["id"] for f in parsed[1:]] == ["1", "2", "3"]
        assert text.startswith("retry: ") and ": keepalive" in text
    await hub.stop()


async def test_a_reconnecting_page_gets_what_it_missed_and_no_resync() -> None:
    hub = EventHub(_never, stream_seconds=0.05)
    for number in range(1, 6):
        hub.publish(event(number))
    parsed = frames(await collect(hub.stream("2")))
    assert [f["id"] for f in parsed if f["event"] == "user_message"] == ["3", "4", "5"]
    assert json.loads(parsed[-1]["data"]) == {"last_id": 5, "resync": False}


async def test_a_page_that_missed_more_than_was_kept_must_resync() -> None:
    hub = EventHub(_never, buffer_size=3, stream_seconds=0.05)
    for number in range(1, 8):
        hub.publish(event(number))
    assert hub.missed_since(1) is None and hub.missed_since(4) is not None
    parsed = frames(await collect(hub.stream("1")))
    assert [f["event"] for f in parsed] == ["hello"] and json.loads(parsed[0]["data"])["resync"] is True
    assert json.loads(frames(await collect(hub.stream("junk")))[0]["data"])["resync"] is True


async def test_a_slow_page_is_dropped_and_catches_up_later() -> None:
    hub = EventHub(_never, stream_seconds=5, listener_queue=2)
    stream = hub.stream(None)
    assert (await stream.__anext__()).startswith("retry")
    await stream.__anext__()  # hello
    for number in range(1, 6):
        hub.publish(event(number))
    rest = [chunk async for chunk in stream]  # what fitted, then the stream ends at once
    assert [frames(chunk)[0]["id"] for chunk in rest] == ["1", "2"]
    assert [item.number for item in hub.missed_since(2) or []] == [3, 4, 5]  # what the reconnect gets


async def test_the_hub_survives_a_failing_source() -> None:
    calls = 0

    async def flaky() -> AsyncIterator[ConsoleEvent]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the service went away")
        yield event(1)
        await asyncio.Event().wait()

    hub = EventHub(flaky)
    hub.start()
    for _ in range(60):
        if hub.last_number:
            break
        await asyncio.sleep(0.05)
    assert hub.last_number == 1 and calls == 2
    await hub.stop()
    assert not hub.running


async def _never() -> AsyncIterator[ConsoleEvent]:
    await asyncio.Event().wait()
    yield event(0)
