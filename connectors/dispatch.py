"""In-order processing per conversation, concurrency across conversations.

One user's burst is handled in sequence (the second message never overtakes the first);
different users run concurrently up to `max_concurrency`.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ConversationDispatcher(Generic[T]):
    def __init__(self, handler: Callable[[T], Awaitable[None]], max_concurrency: int = 32) -> None:
        self._handler = handler
        self._queues: dict[str, deque[T]] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._idle = asyncio.Event()
        self._idle.set()

    def submit(self, key: str, item: T) -> None:
        queue = self._queues.setdefault(key, deque())
        queue.append(item)
        if key not in self._tasks:
            self._idle.clear()
            self._tasks[key] = asyncio.get_running_loop().create_task(self._drain(key))

    async def _drain(self, key: str) -> None:
        queue = self._queues[key]
        try:
            while queue:
                item = queue[0]
                async with self._semaphore:
                    try:
                        await self._handler(item)
                    except Exception:  # the handler records its own failures; keep the queue moving
                        logger.exception("conversation handler failed", extra={"conversation": key})
                queue.popleft()
        finally:
            del self._tasks[key]
            del self._queues[key]
            if not self._tasks:
                self._idle.set()

    @property
    def pending_count(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    async def wait_idle(self) -> None:
        await self._idle.wait()

    async def stop(self) -> None:
        running = list(self._tasks.items())
        for _key, task in running:
            task.cancel()
        await asyncio.gather(*(task for _key, task in running), return_exceptions=True)
        # A task cancelled before its first step never runs `_drain`'s `finally`: forget it here,
        # or its key would accept items that no task drains and `wait_idle` would never return.
        for key, task in running:
            if self._tasks.get(key) is task:
                del self._tasks[key]
                self._queues.pop(key, None)
        if not self._tasks:
            self._idle.set()
