"""Broadcast policy as properties (Hypothesis) on the real SQLite stores, the outbox's worker sending to a scripted
Send API: no promotional content outside the 24-hour window, never a tag on promotional content, paused
conversations skipped, the dry run agreeing with what is sent, and nobody getting it twice when the runner dies at
any point of any batch (between writing the recipients, enqueuing, saving their outbox ids and saving the cursor)
and a fresh runner carries on."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from broadcasts import service as service_module
from broadcasts.model import BroadcastDraft
from broadcasts.service import Broadcasts
from meta.limits import MESSAGE_TAGS
from tests.integration.broadcasts.conftest import PAGE, T0, StoreHandoff, World, close_world, draft, open_world

STANDARD = timedelta(hours=24)


@dataclass(frozen=True)
class Person:
    psid: str
    hours_ago: float | None  # None: imported, never wrote
    paused: bool
    tagged: bool


people_strategy = st.lists(
    st.builds(Person, psid=st.just(""), hours_ago=st.one_of(st.none(), st.floats(0, 24 * 9)),
              paused=st.booleans(), tagged=st.booleans()),
    min_size=1, max_size=25,
).map(lambda people: [Person(f"u{index:03d}", p.hours_ago, p.paused, p.tagged) for index, p in enumerate(people)])

# Any claim an admin (or an API caller skipping from_dict) could make: promotional or not, with or without a tag.
claims = st.tuples(st.booleans(), st.one_of(st.none(), st.sampled_from(sorted(MESSAGE_TAGS))))


def set_scene(world: World, people: list[Person]) -> None:
    for person in people:
        tags = ["clientes"] if person.tagged else []
        if person.hours_ago is None:
            world.imported(person.psid, tags=tags)
        else:
            world.wrote(person.psid, hours_ago=person.hours_ago, tags=tags)
        if person.paused:
            world.pause(person.psid)


def run(coro_factory: Callable[[Path], Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        asyncio.run(coro_factory(Path(tmp)))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(people=people_strategy, claim=claims, tags_valid=st.booleans())
def test_what_is_sent_keeps_messenger_s_rules_and_agrees_with_the_dry_run(
        people: list[Person], claim: tuple[bool, str | None], tags_valid: bool) -> None:
    promotional, tag = claim

    async def scenario(tmp: Path) -> None:
        world = open_world(tmp, page_rate=50, tags_until=T0 + timedelta(days=365) if tags_valid else None)
        try:
            set_scene(world, people)
            base = draft({"tags_any": ["clientes"]})
            chosen = BroadcastDraft(page_id=PAGE, name=base.name, content=base.content, audience=base.audience,
                                    promotional=promotional, tag=tag)
            dry = await world.service.dry_run(chosen)
            broadcast = await world.service.create(chosen, "admin")
            await world.service.send(broadcast.id, "admin")
            await world.drain(step_seconds=5)

            audience = {p.psid: p for p in people if p.tagged}
            assert dry.audience == len(audience)
            received = {body["recipient"]["id"] for body in world.graph.sent}
            assert received <= set(audience)
            for body, at in zip(world.graph.sent, world.graph.sent_at, strict=True):
                person = audience[body["recipient"]["id"]]
                assert person.hours_ago is not None  # never to someone who never wrote
                assert not person.paused  # never into a conversation a person holds
                last = T0 - timedelta(hours=person.hours_ago)
                if promotional:
                    assert "tag" not in body  # never a tag on promotional content
                    assert at - last < STANDARD  # never promotional content outside the window
                if "tag" not in body:
                    assert at - last < STANDARD
            assert len(received) == len(world.graph.sent)  # one message each (text only)
            report = await world.service.report(broadcast.id)
            assert report.sent == len(received)
            assert report.total == len(audience)
            # The clock moved a few seconds between the dry run and the sends: only people at the window's edge
            # may differ.
            edge = {p.psid for p in audience.values() if p.hours_ago is not None
                    and abs(p.hours_ago - 24) < 0.1}
            assert abs(dry.will_send - len(received)) <= len(edge)
            if promotional and tag is not None:
                assert received == set()
                assert dry.will_send == 0
            paused = {p.psid for p in audience.values() if p.paused and p.hours_ago is not None}
            assert report.skipped.get("conversation_paused", 0) == len(paused)
        finally:
            await close_world(world)

    run(scenario)


CRASH_POINTS = ("add_recipients", "enqueue_many", "set_outbox_ids", "save_plan")


class Crash(BaseException):
    """The runner's process dying: not an Exception, nothing in it is caught."""


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(count=st.integers(1, 30), batch=st.integers(1, 9), crashes=st.lists(
    st.tuples(st.sampled_from(CRASH_POINTS), st.integers(1, 6), st.booleans()), min_size=1, max_size=4),
    with_image=st.booleans())
def test_nobody_gets_a_broadcast_twice_when_the_runner_dies_mid_broadcast(
        count: int, batch: int, crashes: list[tuple[str, int, bool]], with_image: bool) -> None:
    """Each crash: at the n-th call of one step, before or after the step did its work. A fresh `Broadcasts` over
    the same stores (a restarted app) carries on."""

    async def scenario(tmp: Path) -> None:
        world = open_world(tmp, page_rate=1000)
        original_batch = service_module.PLAN_BATCH
        service_module.PLAN_BATCH = batch
        try:
            for index in range(count):
                world.wrote(f"u{index:03d}", hours_ago=1, tags=["clientes"])
            content = {"text": "Novedades"}
            if with_image:
                content["image"] = {"url": "https://example.com/a.png"}  # type: ignore[assignment]
            broadcast = await world.service.create(draft({"tags_any": ["clientes"]}, content=content), "admin")
            await world.service.send(broadcast.id, "admin")
            for point, nth, after in crashes:
                runner = fresh_runner(world)
                arm(runner, point, nth, after)
                try:
                    for _ in range(100):
                        await runner.run_once()
                        await world.outbox.run_once()
                        world.clock.advance(seconds=1)
                except Crash:
                    pass
                runner.close()
            world.service = fresh_runner(world)
            await world.drain(step_seconds=1, rounds=200)

            parts = 2 if with_image else 1
            for index in range(count):
                psid = f"u{index:03d}"
                assert len(world.graph.received_by(psid)) == parts, psid
                stored = [m for m in await world.messages_to(psid) if m.idempotency_key.startswith("broadcast:")]
                assert len(stored) == parts
            report = await world.service.report(broadcast.id)
            assert (report.total, report.sent, report.queued) == (count, count, 0)
            assert report.broadcast.status.value == "done"
        finally:
            service_module.PLAN_BATCH = original_batch
            await close_world(world)

    run(scenario)


def fresh_runner(world: World) -> Broadcasts:
    return Broadcasts(world.store, world.contacts, world.outbox, StoreHandoff(world.handoff_store),
                      page_rate=1000, clock=world.clock)


def arm(runner: Broadcasts, point: str, nth: int, after: bool) -> None:
    """Make the `nth` call of `point` die, before or after it did its work (only for this runner)."""
    target: Any = runner.outbox if point == "enqueue_many" else runner.store
    real = getattr(target, point)
    calls = {"n": 0}

    if asyncio.iscoroutinefunction(real):
        async def crashing_async(*args: Any) -> Any:
            calls["n"] += 1
            if calls["n"] == nth and not after:
                raise Crash
            result = await real(*args)
            if calls["n"] == nth:
                raise Crash
            return result
        runner.outbox = _Wrapped(runner.outbox, point, crashing_async)  # type: ignore[assignment]
        return

    def crashing(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == nth and not after:
            raise Crash
        result = real(*args)
        if calls["n"] == nth:
            raise Crash
        return result
    runner.store = _Wrapped(runner.store, point, crashing)  # type: ignore[assignment]


class _Wrapped:
    """`inner` with one method replaced (the stores and the outbox stay shared with the next runner, unarmed)."""

    def __init__(self, inner: Any, name: str, replacement: Callable[..., Any]) -> None:
        self._inner = inner
        self._name = name
        self._replacement = replacement

    def __getattr__(self, name: str) -> Any:
        if name == self._name:
            return self._replacement
        return getattr(self._inner, name)
