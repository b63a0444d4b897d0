"""In-process fan-out of events to any number of listeners (the handoff service's live updates).

Each listener has its own bounded queue, so `publish` never blocks and never grows memory without bound: a
listener that falls `max_queued` events behind loses its backlog and receives one `overflow()` event instead
(the console reloads what it shows). A listener exists only while its iterator runs: leaving the `async for`,
cancelling the task that reads it (a browser disconnecting) or closing the generator removes its queue.
Call `publish` from the event loop's thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

logger = logging.getLogger(__name__)


class Broadcaster(Generic[T]):
    def __init__(self, overflow: Callable[[], T], max_queued: int = 1000) -> None:
        if max_queued < 1:
            raise ValueError("max_queued must be at least 1")
        self._overflow = overflow
        self._max_queued = max_queued
        self._queues: set[asyncio.Queue[T]] = set()

    @property
    def listener_count(self) -> int:
        return len(self._queues)

    def publish(self, item: T) -> None:
        for queue in list(self._queues):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                logger.warning("a live-update listener fell behind; its backlog was dropped",
                               extra={"max_queued": self._max_queued})
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(self._overflow())

    async def subscribe(self) -> AsyncGenerator[T, None]:
        """Every item published from the first `__anext__` on, in order."""
        queue: asyncio.Queue[T] = asyncio.Queue(maxsize=self._max_queued)
        self._queues.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.discard(queue)
