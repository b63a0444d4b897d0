"""One conversation in order, different conversations concurrently, bounded by max_concurrency."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.dispatch import ConversationDispatcher

TIMEOUT = 2.0  # seconds; generous, only reached when the dispatcher is wrong


async def test_items_of_one_key_are_handled_in_order_despite_random_delays() -> None:
    rng = random.Random(20260101)
    handled: list[int] = []
    active: list[int] = []
    overlapped: list[tuple[int, int]] = []

    async def handler(item: int) -> None:
        if active:
            overlapped.append((active[0], item))
        active.append(item)
        await asyncio.sleep(rng.uniform(0, 0.004))
        handled.append(item)
        active.remove(item)

    dispatcher: ConversationDispatcher[int] = ConversationDispatcher(handler)
    for item in range(25):
        dispatcher.submit("page:user", item)
        if item % 5 == 0:
            await asyncio.sleep(rng.uniform(0, 0.003))  # some arrive while the queue is draining
    await asyncio.wait_for(dispatcher.wait_idle(), TIMEOUT)

    assert handled == list(range(25))
    assert overlapped == []


async def test_different_keys_run_concurrently() -> None:
    """A handshake: each handler waits for the other to start, which only works if they overlap."""
    started = {"a": asyncio.Event(), "b": asyncio.Event()}
    finished: list[str] = []

    async def handler(key: str) -> None:
        other = "b" if key == "a" else "a"
        started[key].set()
        await asyncio.wait_for(started[other].wait(), TIMEOUT)
        finished.append(key)

    dispatcher: ConversationDispatcher[str] = ConversationDispatcher(handler)
    dispatcher.submit("page:a", "a")
    dispatcher.submit("page:b", "b")
    await asyncio.wait_for(dispatcher.wait_idle(), 2 * TIMEOUT)

    assert sorted(finished) == ["a", "b"]


async def test_one_slow_conversation_does_not_hold_up_another() -> None:
    release_slow = asyncio.Event()
    handled: list[str] = []

    async def handler(item: str) -> None:
        if item == "slow":
            await release_slow.wait()
        handled.append(item)

    dispatcher: ConversationDispatcher[str] = ConversationDispatcher(handler)
    dispatcher.submit("page:1", "slow")
    dispatcher.submit("page:2", "fast-1")
    dispatcher.submit("page:2", "fast-2")
    for _ in range(20):
        await asyncio.sleep(0)

    assert handled == ["fast-1", "fast-2"]
    release_slow.set()
    await asyncio.wait_for(dispatcher.wait_idle(), TIMEOUT)
    assert handled == ["fast-1", "fast-2", "slow"]


async def test_a_failing_item_does_not_stop_the_rest_of_its_conversation(caplog: pytest.LogCaptureFixture) -> None:
    handled: list[int] = []

    async def handler(item: int) -> None:
        if item == 2:
            raise RuntimeError("Rasa answered 500")
        handled.append(item)

    dispatcher: ConversationDispatcher[int] = ConversationDispatcher(handler)
    with caplog.at_level(logging.ERROR, logger="connectors.dispatch"):
        for item in (1, 2, 3, 4):
            dispatcher.submit("page:user", item)
        await asyncio.wait_for(dispatcher.wait_idle(), TIMEOUT)

    assert handled == [1, 3, 4]
    failures = [record for record in caplog.records if record.name == "connectors.dispatch"]
    assert len(failures) == 1
    assert failures[0].conversation == "page:user"  # type: ignore[attr-defined]
    assert failures[0].exc_info is not None and "Rasa answered 500" in str(failures[0].exc_info[1])


async def test_wait_idle_returns_at_once_when_nothing_was_submitted() -> None:
    async def handler(item: int) -> None:
        raise AssertionError("never called")

    dispatcher: ConversationDispatcher[int] = ConversationDispatcher(handler)

    await asyncio.wait_for(dispatcher.wait_idle(), 0.1)
    assert dispatcher.pending_count == 0


async def test_wait_idle_waits_for_every_conversation() -> None:
    gate = asyncio.Event()
    handled: list[str] = []

    async def handler(item: str) -> None:
        await gate.wait()
        handled.append(item)

    dispatcher: ConversationDispatcher[str] = ConversationDispatcher(handler)
    for key, item in (("a", "a1"), ("a", "a2"), ("b", "b1")):
        dispatcher.submit(key, item)
    waiter = asyncio.ensure_future(dispatcher.wait_idle())
    for _ in range(10):
        await asyncio.sleep(0)

    assert not waiter.done()
    assert dispatcher.pending_count == 3  # the items being handled count until they are done

    gate.set()
    await asyncio.wait_for(waiter, TIMEOUT)
    assert sorted(handled) == ["a1", "a2", "b1"]
    assert dispatcher.pending_count == 0


async def test_stop_cancels_running_handlers_and_leaves_the_dispatcher_idle() -> None:
    cancelled: list[str] = []
    blocked = asyncio.Event()

    async def handler(item: str) -> None:
        try:
            blocked.set()
            await asyncio.Event().wait()  # never set: only cancellation ends this
        except asyncio.CancelledError:
            cancelled.append(item)
            raise

    dispatcher: ConversationDispatcher[str] = ConversationDispatcher(handler)
    dispatcher.submit("a", "first")
    dispatcher.submit("a", "second")
    await asyncio.wait_for(blocked.wait(), TIMEOUT)

    await asyncio.wait_for(dispatcher.stop(), TIMEOUT)

    assert cancelled == ["first"]
    assert dispatcher.pending_count == 0
    await asyncio.wait_for(dispatcher.wait_idle(), 0.1)


async def test_stop_right_after_submit_leaves_no_stuck_conversation() -> None:
    """Tasks cancelled before their first step must not leave their key claimed."""
    handled: list[str] = []

    async def handler(item: str) -> None:
        handled.append(item)

    dispatcher: ConversationDispatcher[str] = ConversationDispatcher(handler)
    dispatcher.submit("a", "dropped-on-stop")
    dispatcher.submit("b", "dropped-on-stop-too")

    await dispatcher.stop()  # awaited directly: the drain tasks have not had a step yet

    assert dispatcher.pending_count == 0
    await asyncio.wait_for(dispatcher.wait_idle(), 0.1)

    dispatcher.submit("a", "after-stop")
    await asyncio.wait_for(dispatcher.wait_idle(), TIMEOUT)
    assert handled == ["after-stop"]


async def test_stop_with_nothing_running() -> None:
    handled: list[int] = []

    async def handler(item: int) -> None:
        handled.append(item)

    dispatcher: ConversationDispatcher[int] = ConversationDispatcher(handler)

    await asyncio.wait_for(dispatcher.stop(), 0.1)
    await asyncio.wait_for(dispatcher.wait_idle(), 0.1)
    assert dispatcher.pending_count == 0 and handled == []
    # Stopping is not the end: the dispatcher still takes work (as after a Sanic reload).
    dispatcher.submit("a", 7)
    await asyncio.wait_for(dispatcher.wait_idle(), TIMEOUT)
    assert handled == [7]


@pytest.mark.parametrize("max_concurrency", [1, 3])
async def test_max_concurrency_is_respected_and_reached(max_concurrency: int) -> None:
    running = 0
    peak = 0
    handled: list[str] = []

    async def handler(item: str) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.005)
        running -= 1
        handled.append(item)

    dispatcher: ConversationDispatcher[str] = ConversationDispatcher(handler, max_concurrency=max_concurrency)
    for key in range(10):
        for n in range(2):
            dispatcher.submit(f"page:{key}", f"{key}-{n}")
    await asyncio.wait_for(dispatcher.wait_idle(), TIMEOUT)

    assert peak == max_concurrency
    assert len(handled) == 20


# --- property: exactly once, per-key order ----------------------------------------------------------

operations = st.lists(
    st.one_of(
        st.tuples(st.just("submit"), st.sampled_from(["p:1", "p:2", "p:3", "q:1"])),
        st.tuples(st.just("yield"), st.integers(min_value=1, max_value=5)),
    ),
    max_size=60,
)


@settings(max_examples=100, deadline=None)
@given(
    ops=operations,
    max_concurrency=st.integers(min_value=1, max_value=4),
    handler_yields=st.lists(st.integers(min_value=0, max_value=4), min_size=1, max_size=16),
    fail_every=st.integers(min_value=0, max_value=5),
)
def test_every_item_is_handled_exactly_once_in_per_key_order(
    ops: list[tuple[str, object]], max_concurrency: int, handler_yields: list[int], fail_every: int
) -> None:
    submitted: dict[str, list[int]] = defaultdict(list)
    handled: dict[str, list[int]] = defaultdict(list)

    async def scenario() -> None:
        async def handler(item: tuple[str, int]) -> None:
            key, number = item
            for _ in range(handler_yields[number % len(handler_yields)]):
                await asyncio.sleep(0)
            handled[key].append(number)
            if fail_every and number % fail_every == 0:
                raise ValueError(f"item {number} fails after being handled")

        dispatcher: ConversationDispatcher[tuple[str, int]] = ConversationDispatcher(handler, max_concurrency)
        logging.getLogger("connectors.dispatch").disabled = True
        try:
            for number, (op, arg) in enumerate(ops):
                if op == "submit":
                    key = str(arg)
                    submitted[key].append(number)
                    dispatcher.submit(key, (key, number))
                else:
                    for _ in range(int(str(arg))):
                        await asyncio.sleep(0)
            await asyncio.wait_for(dispatcher.wait_idle(), 5.0)
        finally:
            logging.getLogger("connectors.dispatch").disabled = False
        assert dispatcher.pending_count == 0

    asyncio.run(scenario())

    assert dict(handled) == dict(submitted)


async def test_waiting_for_slot_counts_conversations_no_slot_runs() -> None:
    """Two slots, three conversations (one with two messages): one conversation waits for a slot, and a second
    message of a running conversation is not counted (it waits for its own conversation, not for a slot). Zero again
    once the waiting one runs."""
    gates = {key: asyncio.Event() for key in ("a", "b", "c")}
    started: list[str] = []

    async def handler(item: str) -> None:
        started.append(item)
        await gates[item[0]].wait()

    dispatcher: ConversationDispatcher[str] = ConversationDispatcher(handler, max_concurrency=2)
    assert dispatcher.waiting_for_slot == 0
    for key, item in (("a", "a1"), ("a", "a2"), ("b", "b1"), ("c", "c1")):
        dispatcher.submit(key, item)
    for _ in range(10):
        await asyncio.sleep(0)
    assert started == ["a1", "b1"]
    assert dispatcher.waiting_for_slot == 1, "c waits; a2 waits behind a1, not for a slot"

    gates["b"].set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert started == ["a1", "b1", "c1"]
    assert dispatcher.waiting_for_slot == 0, "a and c run: no conversation waits"

    for gate in gates.values():
        gate.set()
    await asyncio.wait_for(dispatcher.wait_idle(), TIMEOUT)
    assert started == ["a1", "b1", "c1", "a2"] and dispatcher.waiting_for_slot == 0
