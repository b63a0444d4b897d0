"""core.offload.Offload: the one way store calls leave the event loop (outbox worker, handoff, ingest journal)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time

import pytest

from core.offload import Offload

REQUEST = contextvars.ContextVar("REQUEST", default="none")


async def test_calls_run_off_the_loop_in_one_thread_in_call_order() -> None:
    offload = Offload("test-store")
    loop_thread = threading.get_ident()
    seen: list[tuple[int, int]] = []

    def call(n: int, *, pause: float = 0.0) -> int:
        time.sleep(pause)
        seen.append((n, threading.get_ident()))
        return n * 10

    results = await asyncio.gather(*(offload.run(call, n, pause=0.002 * (5 - n)) for n in range(5)))
    assert results == [0, 10, 20, 30, 40]
    assert [n for n, _ in seen] == [0, 1, 2, 3, 4]  # the slow first call is not overtaken
    threads = {ident for _, ident in seen}
    assert len(threads) == 1 and loop_thread not in threads
    offload.close()


async def test_the_callers_context_and_errors_come_along() -> None:
    offload = Offload("test-store")
    REQUEST.set("req-1")
    assert await offload.run(REQUEST.get) == "req-1"

    def fail() -> None:
        raise LookupError("not there")

    with pytest.raises(LookupError, match="not there"):
        await offload.run(fail)
    assert await offload.run(lambda: "still serving") == "still serving"
    offload.close()


async def test_close_waits_for_submitted_calls_and_a_later_call_starts_again() -> None:
    offload = Offload("test-store")
    done: list[str] = []
    pending = asyncio.ensure_future(offload.run(lambda: (time.sleep(0.02), done.append("slow"))))
    await asyncio.sleep(0)  # submitted
    await asyncio.to_thread(offload.close)
    assert done == ["slow"]
    await pending
    assert await offload.run(lambda: threading.current_thread().name.startswith("test-store"))
    offload.close()
    offload.close()  # twice is harmless
