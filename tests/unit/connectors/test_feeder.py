"""The journal feeder (`connectors.dispatch.JournalFeeder`) on a real SQLite ingest journal: what the webhook
process recorded is claimed, dispatched per conversation in order, processed once, and released when drained;
two feeders (two Rasa instances) on one journal never work on one conversation at the same time."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from connectors.dispatch import BACKLOG_POLL_SECONDS, BACKLOG_TURNS_PER_SLOT, JournalFeeder
from connectors.ingest import DONE, IngestStore, StoredEvent
from meta.events import InboundEvent, parse_messaging_item
from sandbox import simulate

PAGE = "100000000000001"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[IngestStore]:
    journal = IngestStore(tmp_path / "messenger.sqlite3")
    yield journal
    journal.close()


def message(user: str, text: str) -> InboundEvent:
    return parse_messaging_item(simulate.text_message(PAGE, user, text), PAGE)


def key_of(stored: StoredEvent) -> str:
    return stored.event.conversation_key


class Recorder:
    """A handler: notes (owner, user, text) and finishes the event, optionally holding it on a gate. Two handlers
    on one user at once are noted in `violations` (an assertion here would be swallowed: the dispatcher logs a
    handler's exception and moves on), which the tests check."""

    def __init__(self, store: IngestStore, owner: str, log: list[tuple[str, str, str]],
                 active: dict[str, str] | None = None, violations: list[str] | None = None) -> None:
        self.store, self.owner, self.log = store, owner, log
        self.active = active if active is not None else {}
        self.violations = violations if violations is not None else []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, stored: StoredEvent) -> None:
        user = stored.event.user_id
        other = self.active.get(user)
        if other is not None:
            self.violations.append(f"{self.owner} works on {user} while {other} does")
        self.active[user] = self.owner
        try:
            await self.gate.wait()
            await asyncio.sleep(0.001)
            self.log.append((self.owner, user, stored.event.text or ""))
            await self.store.run(self.store.finish, stored.id, DONE, None)
        finally:
            self.active.pop(user, None)


async def until(condition: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_a_burst_is_processed_once_in_order_and_released(store: IngestStore) -> None:
    async def scenario() -> None:
        log: list[tuple[str, str, str]] = []
        handler = Recorder(store, "rasa", log)
        feeder = JournalFeeder(store, "rasa", handler, key_of, poll_seconds=0.005)
        feeder.start()
        for number in range(30):
            await store.record_async([message(f"u{number % 3}", f"m{number}")])
            if number % 7 == 0:
                feeder.wake()
        await until(lambda: len(log) == 30)
        await until(lambda: not store.claims())
        await feeder.stop()
        for user in ("u0", "u1", "u2"):
            texts = [text for _owner, who, text in log if who == user]
            assert texts == [f"m{n}" for n in range(30) if n % 3 == int(user[1])]
        assert store.counts_by_status() == {DONE: 30}
        assert handler.violations == [], "one conversation's messages overlapped"

    asyncio.run(scenario())


def test_a_message_in_its_turn_is_not_dispatched_again_by_later_rounds(store: IngestStore) -> None:
    async def scenario() -> None:
        log: list[tuple[str, str, str]] = []
        handler = Recorder(store, "rasa", log)
        handler.gate.clear()
        feeder = JournalFeeder(store, "rasa", handler, key_of, poll_seconds=0.002)
        await store.record_async([message("u", "hola")])
        feeder.start()
        await until(lambda: "u" in handler.active)
        rounds = feeder.rounds
        await until(lambda: feeder.rounds >= rounds + 5)  # each round reads the message as pending
        handler.gate.set()
        await until(lambda: store.counts_by_status() == {DONE: 1})
        await asyncio.sleep(0.05)
        await feeder.stop()
        assert log == [("rasa", "u", "hola")]

    asyncio.run(scenario())


class StaleClaims(IngestStore):
    """A journal whose claim read runs before the handler's verdict lands (the race of two threads): the claim
    returns the event as pending although it was finished during the read."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.during_claim: asyncio.Event | None = None
        self.release_claim_read = asyncio.Event()

    async def run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if getattr(fn, "__name__", "") == "_claim_and_read_journal" and self.during_claim is not None:
            result = await super().run(fn, *args, **kwargs)  # read while the event is still pending
            self.during_claim.set()
            await self.release_claim_read.wait()  # the handler finishes the event meanwhile
            return result
        return await super().run(fn, *args, **kwargs)


def test_an_event_finished_while_a_claim_read_it_is_not_dispatched_again(tmp_path: Path) -> None:
    async def scenario() -> None:
        journal = StaleClaims(tmp_path / "stale.sqlite3")
        log: list[tuple[str, str, str]] = []
        handler = Recorder(journal, "rasa", log)
        handler.gate.clear()
        feeder = JournalFeeder(journal, "rasa", handler, key_of, poll_seconds=0.002)
        await journal.record_async([message("u", "hola")])
        await feeder.round()  # dispatched; the handler waits at its gate
        await until(lambda: "u" in handler.active)
        journal.during_claim = asyncio.Event()
        second = asyncio.get_running_loop().create_task(feeder.round())
        await journal.during_claim.wait()  # the claim read the event as pending
        handler.gate.set()
        await until(lambda: journal.counts_by_status() == {DONE: 1} and "u" not in handler.active)
        journal.release_claim_read.set()
        assert await second == 0, "the stale copy is not dispatched"
        await feeder.dispatcher.wait_idle()
        assert log == [("rasa", "u", "hola")]
        await feeder.stop()
        journal.close()

    asyncio.run(scenario())


def test_two_instances_share_a_journal_without_sharing_a_conversation(store: IngestStore, tmp_path: Path) -> None:
    """Two feeders, each with its own connection to the file (two Rasa processes): every event processed once, each
    user's messages in order, never two instances on one user at once (the handler notes it in `violations`)."""

    async def scenario() -> None:
        second_store = IngestStore(tmp_path / "messenger.sqlite3")
        log: list[tuple[str, str, str]] = []
        active: dict[str, str] = {}
        violations: list[str] = []
        feeders = [
            JournalFeeder(journal, owner, Recorder(journal, owner, log, active, violations), key_of,
                          poll_seconds=0.003)
            for journal, owner in ((store, "rasa"), (second_store, "rasa-2"))
        ]
        for feeder in feeders:
            feeder.start()
        for number in range(60):
            await store.record_async([message(f"u{number % 5}", f"m{number}")])
            if number % 10 == 0:
                await asyncio.sleep(0.01)
        await until(lambda: len(log) == 60, timeout=30)
        for feeder in feeders:
            await feeder.stop()
        second_store.close()
        for user_number in range(5):
            texts = [text for _owner, user, text in log if user == f"u{user_number}"]
            assert texts == [f"m{n}" for n in range(60) if n % 5 == user_number]
        assert len(log) == 60 and {owner for owner, _user, _text in log} <= {"rasa", "rasa-2"}
        assert violations == [], "two instances worked on one conversation at once"

    asyncio.run(scenario())


def test_journaled_windows_and_notices_are_handed_over_in_the_round(store: IngestStore) -> None:
    async def scenario() -> None:
        seen: list[list[StoredEvent]] = []

        async def apply(rows: list[StoredEvent]) -> None:
            seen.append(rows)

        feeder = JournalFeeder(store, "rasa", Recorder(store, "rasa", []), key_of, apply_journaled=apply)
        reaction = parse_messaging_item(
            simulate.messaging(PAGE, "u", reaction={"reaction": "love", "action": "react", "mid": "m.1"}), PAGE)
        [stored] = await store.record_async([reaction])
        assert stored.window_pending
        await feeder.round()
        await until(lambda: bool(seen))
        assert [row.id for row in seen[0]] == [stored.id]
        await feeder.stop()

    asyncio.run(scenario())


def test_a_stopped_feeder_releases_its_claims(store: IngestStore) -> None:
    async def scenario() -> None:
        handler = Recorder(store, "rasa", [])
        handler.gate.clear()
        feeder = JournalFeeder(store, "rasa", handler, key_of)
        await store.record_async([message("u", "hola")])
        await feeder.round()
        assert list(store.claims()) == [f"{PAGE}:u"]
        await feeder.stop()
        assert store.claims() == {}
        now = datetime.now(timezone.utc)
        [again] = store.claim_pending("rasa-2", now, timedelta(seconds=30))
        assert again.event.text == "hola", "another instance takes it over at once"

    asyncio.run(scenario())


class CountingClaims(IngestStore):
    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.claims_made = 0

    def claim_pending(self, owner: str, now: datetime, lease: timedelta, limit: int = 200) -> list[StoredEvent]:
        self.claims_made += 1
        return super().claim_pending(owner, now, lease, limit)


def test_rounds_claim_only_when_a_pending_event_is_new_to_the_feeder(tmp_path: Path) -> None:
    """A claim is a write (an fsync the webhook process's commits queue behind): while its events are in flight the
    feeder only reads the pending ids; a new event is claimed in the next round; a full claim still comes every
    `full_claim_every` (claims of another instance that ran out)."""

    async def scenario() -> None:
        journal = CountingClaims(tmp_path / "counting.sqlite3")
        handler = Recorder(journal, "rasa", [])
        handler.gate.clear()
        feeder = JournalFeeder(journal, "rasa", handler, key_of)
        feeder.full_claim_every = timedelta(hours=1)
        await journal.record_async([message("u", "uno")])
        assert await feeder.round() == 1 and journal.claims_made == 1
        for _ in range(5):
            assert await feeder.round() == 0
        assert journal.claims_made == 1, "no claim while the only pending event is in flight"
        await journal.record_async([message("u", "dos")])
        assert await feeder.round() == 1 and journal.claims_made == 2, "a new event: claimed"
        feeder.full_claim_every = timedelta(0)
        await feeder.round()
        assert journal.claims_made == 3, "the periodic full claim"
        handler.gate.set()
        await until(lambda: journal.counts_by_status() == {DONE: 2})
        await feeder.stop()
        journal.close()

    asyncio.run(scenario())


def test_an_idle_journal_is_not_claimed_between_full_claims(tmp_path: Path) -> None:
    """Nothing pending, nothing in flight: a round reads the pending ids and makes no claim (a write) until the next
    full claim; a message recorded meanwhile is claimed in the next round."""

    async def scenario() -> None:
        journal = CountingClaims(tmp_path / "idle.sqlite3")
        feeder = JournalFeeder(journal, "rasa", Recorder(journal, "rasa", []), key_of)
        feeder.full_claim_every = timedelta(hours=1)
        assert await feeder.round() == 0 and journal.claims_made == 1, "the first round is a full claim"
        for _ in range(5):
            assert await feeder.round() == 0
        assert journal.claims_made == 1, "no claim on an idle journal"
        await journal.record_async([message("u", "hola")])
        assert await feeder.round() == 1 and journal.claims_made == 2
        await until(lambda: journal.counts_by_status() == {DONE: 1})
        await feeder.stop()
        journal.close()

    asyncio.run(scenario())


def test_a_lost_claim_drops_the_conversations_queued_events(tmp_path: Path) -> None:
    """This instance stood still past its lease and another instance claimed the conversation: at the renewal, the
    events queued behind the running one are dropped (left to the new holder), so both never run them."""

    async def scenario() -> None:
        journal = IngestStore(tmp_path / "lost.sqlite3")
        log: list[tuple[str, str, str]] = []
        handler = Recorder(journal, "rasa", log)
        handler.gate.clear()
        now = datetime.now(timezone.utc)
        clock = [now]
        feeder = JournalFeeder(journal, "rasa", handler, key_of, lease_seconds=30, clock=lambda: clock[0])
        await journal.record_async([message("u", "uno"), message("u", "dos"), message("u", "tres")])
        assert await feeder.round() == 3
        await until(lambda: "u" in handler.active)
        clock[0] = now + timedelta(seconds=31)  # the lease ran out while "uno" was in the handler
        taken = journal.claim_pending("rasa-2", clock[0], timedelta(seconds=30))
        assert [stored.event.text for stored in taken] == ["uno", "dos", "tres"], "'uno' is still pending too"
        await feeder.round()  # the renewal finds the claim lost
        assert feeder.pending_count == 1, "only the running event is left"
        handler.gate.set()
        await feeder.dispatcher.wait_idle()
        assert log == [("rasa", "u", "uno")]
        assert journal.claims()[f"{PAGE}:u"][0] == "rasa-2", "the new holder keeps its claim"
        await feeder.stop()
        journal.close()

    asyncio.run(scenario())


def test_a_journaled_row_is_handed_over_once_and_retries_are_left_to_the_upkeep(store: IngestStore) -> None:
    async def scenario() -> None:
        seen: list[int] = []

        async def apply(rows: list[StoredEvent]) -> None:  # the app is down: nothing is applied
            seen.extend(row.id for row in rows)

        feeder = JournalFeeder(store, "rasa", Recorder(store, "rasa", []), key_of, apply_journaled=apply)
        reaction = parse_messaging_item(
            simulate.messaging(PAGE, "u", reaction={"reaction": "love", "action": "react", "mid": "m.2"}), PAGE)
        [stored] = await store.record_async([reaction])
        for _ in range(5):
            await feeder.round()
            await asyncio.sleep(0)
        assert seen == [stored.id], "handed over once, although still journaled"
        await feeder.stop()

    asyncio.run(scenario())


async def test_an_idle_feeder_polls_less_often_and_is_back_to_its_poll_with_work(store: IngestStore) -> None:
    from connectors.dispatch import IDLE_POLL_MAX_SECONDS

    feeder = JournalFeeder(store, "rasa", Recorder(store, "rasa", []), key_of, poll_seconds=0.02)
    waits = [0.02]
    for _ in range(6):
        waits.append(feeder.next_wait(waits[-1], dispatched=0))
    assert waits == [0.02, 0.04, 0.08, IDLE_POLL_MAX_SECONDS, IDLE_POLL_MAX_SECONDS, IDLE_POLL_MAX_SECONDS,
                     IDLE_POLL_MAX_SECONDS]
    assert feeder.next_wait(IDLE_POLL_MAX_SECONDS, dispatched=1) == 0.02, "work: back to the poll at once"
    await store.record_async([message("u-idle", "hola")])
    gate_recorder = Recorder(store, "rasa", [])
    gate_recorder.gate.clear()
    busy = JournalFeeder(store, "rasa", gate_recorder, key_of, poll_seconds=0.02)
    assert await busy.round() == 1
    assert busy.next_wait(IDLE_POLL_MAX_SECONDS, dispatched=0) == 0.02, "a conversation in flight: the poll stays"
    gate_recorder.gate.set()
    await busy.dispatcher.wait_idle()
    await busy.stop()


async def test_a_feeder_with_a_backlog_claims_less_often_and_is_back_to_its_poll_when_it_shrinks(
        store: IngestStore) -> None:
    recorder = Recorder(store, "rasa", [])
    recorder.gate.clear()
    feeder = JournalFeeder(store, "rasa", recorder, key_of, poll_seconds=0.02, max_concurrency=2)
    backlog = BACKLOG_TURNS_PER_SLOT * 2
    await store.record_async([message(f"u{number}", "hola") for number in range(backlog - 1)])
    assert await feeder.round() == backlog - 1
    assert feeder.next_wait(0.02, dispatched=backlog - 1) == 0.02, "one turn short of a backlog: the poll stays"

    await store.record_async([message("u-last", "hola")])
    assert await feeder.round() == 1
    assert feeder.dispatcher.pending_count == backlog
    assert feeder.next_wait(0.02, dispatched=1) == BACKLOG_POLL_SECONDS, "a backlog: claims wait"
    assert feeder.next_wait(0.1, dispatched=0) == BACKLOG_POLL_SECONDS

    recorder.gate.set()
    await until(lambda: feeder.dispatcher.pending_count < backlog)
    assert feeder.next_wait(BACKLOG_POLL_SECONDS, dispatched=0) == 0.02, "the backlog shrank: back to the poll"
    await feeder.dispatcher.wait_idle()
    await feeder.stop()


async def test_a_slow_poll_setting_is_never_shortened_by_a_backlog(store: IngestStore) -> None:
    recorder = Recorder(store, "rasa", [])
    recorder.gate.clear()
    feeder = JournalFeeder(store, "rasa", recorder, key_of, poll_seconds=0.5, max_concurrency=1)
    await store.record_async([message(f"u{number}", "hola") for number in range(3)])
    assert await feeder.round() == 3
    assert feeder.next_wait(0.5, dispatched=3) == 0.5 > BACKLOG_POLL_SECONDS
    recorder.gate.set()
    await feeder.dispatcher.wait_idle()
    await feeder.stop()
