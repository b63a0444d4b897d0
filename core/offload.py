"""Store calls off the event loop: one thread per store, in call order.

The stores are synchronous (SQLite, psycopg2) and serialize on their own lock, so more threads would only wait
on that lock; one thread keeps the calls of a store in the order the event loop made them. The caller's
context variables go with the call (as `asyncio.to_thread`).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class Offload:
    """`await offload.run(fn, *args, **kwargs)` runs `fn` in this runner's single thread. The thread starts on the
    first call; `close()` waits for the calls already submitted, and a later `run` starts a new thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._executor: ThreadPoolExecutor | None = None
        self._guard = threading.Lock()

    def _pool(self) -> ThreadPoolExecutor:
        with self._guard:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)
            return self._executor

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._pool(), call)

    def close(self) -> None:
        with self._guard:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)
