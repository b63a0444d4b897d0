"""Live updates for open console pages: one subscription to the handoff service, fanned out as server-sent events.

The hub reads `HandoffService.subscribe()` once for the whole app, numbers each event and keeps the latest
ones, so a page whose stream was cut (a proxy, a restart of the stream) reconnects with `Last-Event-ID` and
gets what it missed. A page too slow to keep up is dropped; its browser reconnects and catches up the same way.

Streams end by themselves after `STREAM_SECONDS` (the browser reconnects at once): a server that is shutting
down never waits long for open pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from handoff.model import ConsoleEvent

log = logging.getLogger(__name__)

STREAM_SECONDS = 20.0
KEEPALIVE_SECONDS = 10.0
RETRY_MS = 500
BUFFER_SIZE = 1000
LISTENER_QUEUE = 1000


@dataclass(frozen=True)
class NumberedEvent:
    number: int
    event: ConsoleEvent

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.number,
            "kind": self.event.kind,
            "conversation_id": self.event.conversation_id,
            "at": self.event.at.isoformat(),
            "data": self.event.data,
        }


def sse_frame(numbered: NumberedEvent) -> str:
    payload = json.dumps(numbered.to_dict(), ensure_ascii=False, default=str)
    return f"id: {numbered.number}\nevent: {numbered.event.kind}\ndata: {payload}\n\n"


class EventHub:
    def __init__(
        self,
        source: Callable[[], AsyncIterator[ConsoleEvent]],
        *,
        buffer_size: int = BUFFER_SIZE,
        stream_seconds: float = STREAM_SECONDS,
        keepalive_seconds: float = KEEPALIVE_SECONDS,
        listener_queue: int = LISTENER_QUEUE,
    ) -> None:
        self._source = source
        self._listener_queue = listener_queue
        self.stream_seconds = stream_seconds
        self.keepalive_seconds = keepalive_seconds
        self._buffer: deque[NumberedEvent] = deque(maxlen=buffer_size)
        self._listeners: set[asyncio.Queue[NumberedEvent | None]] = set()
        self._number = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def last_number(self) -> int:
        return self._number

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="console-event-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for queue in list(self._listeners):
            self._offer(queue, None)

    async def _run(self) -> None:
        while True:
            try:
                async for event in self._source():
                    self.publish(event)
            except asyncio.CancelledError:
                raise
            except Exception:  # the handoff service failed: log it, keep serving pages, subscribe again
                log.exception("the console event subscription failed; subscribing again in 1 s")
            await asyncio.sleep(1.0)

    def publish(self, event: ConsoleEvent) -> NumberedEvent:
        self._number += 1
        numbered = NumberedEvent(self._number, event)
        self._buffer.append(numbered)
        for queue in list(self._listeners):
            self._offer(queue, numbered)
        return numbered

    def _offer(self, queue: asyncio.Queue[NumberedEvent | None], item: NumberedEvent | None) -> None:
        try:
            queue.put_nowait(item)
        except asyncio.QueueFull:
            self._listeners.discard(queue)  # too slow: its stream ends and the browser catches up

    def missed_since(self, last_seen: int) -> list[NumberedEvent] | None:
        """Events after `last_seen`, or None when some of them are no longer kept (the page must reload)."""
        if last_seen >= self._number:
            return []
        kept = [item for item in self._buffer if item.number > last_seen]
        if not kept or kept[0].number != last_seen + 1:
            return None
        return kept

    async def stream(
        self,
        last_event_id: str | None,
        *,
        is_disconnected: Callable[[], Any] | None = None,
    ) -> AsyncIterator[str]:
        """SSE text for one page: what it missed, then live events, until `stream_seconds` pass."""
        stream_seconds, keepalive_seconds = self.stream_seconds, self.keepalive_seconds
        queue: asyncio.Queue[NumberedEvent | None] = asyncio.Queue(maxsize=self._listener_queue)
        self._listeners.add(queue)
        try:
            yield f"retry: {RETRY_MS}\n"
            resync = True
            if last_event_id is not None and last_event_id.strip().isdigit():
                missed = self.missed_since(int(last_event_id))
                if missed is not None:
                    resync = False
                    for kept in missed:
                        yield sse_frame(kept)
            # A fresh page, or one that missed more than the hub kept: tell it where the stream starts, so it
            # reloads what it shows once (the page decides how).
            hello = json.dumps({"last_id": self._number, "resync": resync})
            yield f"id: {self._number}\nevent: hello\ndata: {hello}\n\n"
            loop = asyncio.get_running_loop()
            deadline = loop.time() + stream_seconds
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0 or (queue.empty() and queue not in self._listeners):
                    return  # time is up, or this page fell behind: it reconnects and catches up
                try:
                    item: NumberedEvent | None = await asyncio.wait_for(queue.get(), min(keepalive_seconds, remaining))
                except asyncio.TimeoutError:
                    if is_disconnected is not None and await is_disconnected():
                        return
                    yield ": keepalive\n\n"
                    continue
                if item is None:
                    return
                yield sse_frame(item)
        finally:
            self._listeners.discard(queue)
