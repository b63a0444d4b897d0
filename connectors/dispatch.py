"""In-order processing per conversation, concurrency across conversations; and the feeder that fills it from the
ingest journal.

One user's burst is handled in sequence (the second message never overtakes the first);
different users run concurrently up to `max_concurrency`.

`JournalFeeder`: the webhook process (connectors/webhook_server.py) records Meta's deliveries in the journal; each
Rasa instance's feeder claims pending events (`claim_pending`: a conversation is one instance's at a time, under a
lease), hands them to its dispatcher in id order, renews its claims while it works and releases a conversation once
its queue drained. Recovery after a restart is the same loop (the restarted instance keeps its id, so its own claims
are its again at once; another instance's claims are taken over when their lease runs out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any, Generic, Protocol, TypeVar

from connectors.ingest_journal import JOURNAL_BATCH

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ConversationDispatcher(Generic[T]):
    def __init__(self, handler: Callable[[T], Awaitable[None]], max_concurrency: int = 32,
                 on_drained: Callable[[str], None] | None = None) -> None:
        self._handler = handler
        self.max_concurrency = max_concurrency
        self._on_drained = on_drained  # told when a conversation's queue ran empty (not when stopped)
        self._queues: dict[str, deque[T]] = {}
        self._tasks: dict[str, asyncio.Task] = {}
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._started: set[str] = set()  # conversations whose head item is in the handler
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
        drained = False
        try:
            while queue:
                async with self._semaphore:
                    if not queue:  # dropped while waiting for a slot
                        break
                    item = queue[0]
                    self._started.add(key)
                    try:
                        await self._handler(item)
                    except Exception:  # the handler records its own failures; keep the queue moving
                        logger.exception("conversation handler failed", extra={"conversation": key})
                    finally:
                        self._started.discard(key)
                queue.popleft()
            drained = True
        finally:
            self._started.discard(key)
            del self._tasks[key]
            del self._queues[key]
            if not self._tasks:
                self._idle.set()
            if drained and self._on_drained is not None:
                self._on_drained(key)

    def drop_queued(self, key: str) -> list[T]:
        """Forget the conversation's items not yet started (the one in the handler, if any, runs to its end);
        returns them. The conversation is drained as usual once nothing of it runs."""
        queue = self._queues.get(key)
        if not queue:
            return []
        keep = 1 if key in self._started else 0
        dropped = list(queue)[keep:]
        while len(queue) > keep:
            queue.pop()
        return dropped

    def active_keys(self) -> list[str]:
        """The conversations with queued or running items."""
        return list(self._tasks)

    @property
    def pending_count(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    @property
    def waiting_for_slot(self) -> int:
        """Conversations with work that none of the `max_concurrency` slots is running: the instance is saturated
        (a burst) while this is above 0."""
        return len(self._tasks) - len(self._started)

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


# --- the journal feeder ---------------------------------------------------------------------------------------


class Claimed(Protocol):
    """What the feeder needs of a journal row (`connectors.ingest.StoredEvent`)."""

    @property
    def id(self) -> int: ...

    @property
    def status(self) -> str: ...


class ClaimingJournal(Protocol):
    """The ingest journal's claim methods (`connectors.ingest.IngestStore` and its PostgreSQL twin)."""

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...

    def claim_pending(self, owner: str, now: datetime, lease: timedelta, limit: int = 200) -> Sequence[Any]: ...

    def renew_claims(self, owner: str, conversation_keys: list[str], now: datetime, lease: timedelta) -> list[str]: ...

    def release_claim(self, owner: str, conversation_key: str) -> None: ...

    def pending_ids(self) -> list[int]: ...

    def journaled(self, after: int = 0, limit: int = JOURNAL_BATCH) -> Sequence[Any]: ...


FAILED_ROUND_PAUSE_SECONDS = 1.0
FULL_CLAIM_SECONDS = 1.0  # a claim is made at least this often, whatever the journal's pending ids say
# An idle feeder (nothing dispatched, nothing in flight) looks at the journal less often: its poll doubles from
# `poll_seconds` up to this, and is back to `poll_seconds` as soon as there is work (a wake is always at once).
IDLE_POLL_MAX_SECONDS = 0.1
# A feeder whose dispatcher already holds BACKLOG_TURNS_PER_SLOT turns for each of its slots, running and waiting
# (with 2: every slot busy and as many turns waiting; Rasa has work for a while), claims only every
# BACKLOG_POLL_SECONDS: claiming sooner would not start anything sooner, and each round is a journal read on a thread
# of Rasa's process, whose CPU is what its turns run on (at 20 ms, 2-3 rounds per message under a campaign). A wake
# (Rasa's own webhook route recorded something) still claims at once.
BACKLOG_TURNS_PER_SLOT = 2
BACKLOG_POLL_SECONDS = 0.1


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class JournalFeeder:
    """Claims pending events for `owner` and dispatches them per conversation, in id order.

    One loop does every journal call in turn (release, renew, claim), so a conversation is never released while a
    claim that returned new events for it is being handed to the dispatcher. An event the handler finished while a
    claim was reading the journal may come back from that claim as still pending: it is not dispatched again
    (`_finished_while_claiming`). Rows whose window or live-view notice the webhook process journaled are handed
    to `apply_journaled` in the round that first sees them, so they are applied within a poll, not at the next
    upkeep; retrying the ones that failed (or were deferred: `attempts`) stays the upkeep loop's job. The feeder
    reads only journaled rows new to it (ids above the last it read, `JOURNAL_BATCH` at most), and none while its
    last hand-over is still being applied: a backlog is never read whole, nor applied by several tasks at once.
    """

    def __init__(
        self,
        store: ClaimingJournal,
        owner: str,
        handler: Callable[[Any], Awaitable[None]],
        key_of: Callable[[Any], str],
        *,
        apply_journaled: Callable[[list[Any]], Coroutine[Any, Any, None]] | None = None,
        max_concurrency: int = 8,
        poll_seconds: float = 0.02,
        lease_seconds: float = 30.0,
        batch: int = 200,
        clock: Callable[[], datetime] = utc_now,
        standing_by: Callable[[], bool] | None = None,
    ) -> None:
        self.store = store
        # While it answers True (the Rasa this feeder drives is away), rounds claim and renew nothing: another
        # instance's feeder takes the conversations over once their leases run out.
        self._standing_by = standing_by
        self.owner = owner
        self._handler = handler
        self._key_of = key_of
        self._apply_journaled = apply_journaled
        self.poll_seconds = poll_seconds
        self.lease = timedelta(seconds=lease_seconds)
        self.batch = batch
        self.clock = clock
        self._drained: set[str] = set()
        self.dispatcher: ConversationDispatcher[Any] = ConversationDispatcher(
            self._handle, max_concurrency=max_concurrency, on_drained=self._drained.add
        )
        self._inflight: set[int] = set()
        self._finished_while_claiming: set[int] | None = None
        self._wake = asyncio.Event()
        self._last_renewal: datetime | None = None
        self._last_full_claim: datetime | None = None
        self._elsewhere: set[int] = set()  # pending ids the last claim left to another instance
        self._journal_after = 0  # journaled rows up to this id were read (and the new ones handed over)
        self.full_claim_every = timedelta(seconds=FULL_CLAIM_SECONDS)
        self._task: asyncio.Task | None = None
        self._journal_tasks: set[asyncio.Task] = set()
        self.rounds = 0

    # -- lifecycle

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self.run())

    def wake(self) -> None:
        """Something was recorded: claim at once instead of at the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        """Stop claiming and working; this instance's claims are released so another takes them over at once."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for task in list(self._journal_tasks):
            task.cancel()
        held = self.dispatcher.active_keys() + sorted(self._drained)
        await self.dispatcher.stop()
        for key in dict.fromkeys(held):
            try:
                await self.store.run(self.store.release_claim, self.owner, key)
            except Exception:  # the lease runs out instead
                logger.exception("releasing a claim at stop failed", extra={"conversation": key})

    @property
    def pending_count(self) -> int:
        return self.dispatcher.pending_count

    def next_wait(self, previous: float, dispatched: int) -> float:
        """The poll after a round: `poll_seconds` while there is work (dispatched now or in flight), else doubling
        up to IDLE_POLL_MAX_SECONDS (a quiet instance costs less; a wake from the channel's route is at once); with
        a backlog (BACKLOG_TURNS_PER_SLOT turns per slot, running and waiting), BACKLOG_POLL_SECONDS."""
        slowest = max(IDLE_POLL_MAX_SECONDS, self.poll_seconds)
        if self.dispatcher.pending_count >= BACKLOG_TURNS_PER_SLOT * self.dispatcher.max_concurrency:
            return max(self.poll_seconds, BACKLOG_POLL_SECONDS)
        if dispatched or self.dispatcher.active_keys() or self._drained:
            return self.poll_seconds
        return min(max(previous * 2, self.poll_seconds), slowest)

    async def run(self) -> None:
        idle_wait = self.poll_seconds
        while True:
            self._wake.clear()  # a wake during the round asks for another round
            try:
                dispatched = await self.round()
                wait = idle_wait = self.next_wait(idle_wait, dispatched)
            except asyncio.CancelledError:
                raise
            except Exception:  # the journal is locked or down: the next round tries again, a little later
                logger.exception("claiming journaled events failed")
                wait = max(self.poll_seconds, FAILED_ROUND_PAUSE_SECONDS)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    # -- one round

    async def round(self) -> int:
        """Release drained conversations, renew held ones when due, claim and dispatch. Returns events dispatched."""
        self.rounds += 1
        await self._release_drained()
        if self._standing_by is not None and self._standing_by():
            return 0
        await self._renew_if_due()
        self._finished_while_claiming = set()
        now = self.clock()
        full = self._last_full_claim is None or now - self._last_full_claim >= self.full_claim_every
        known = frozenset() if full else frozenset(self._inflight | self._elsewhere)
        try:
            reads_journal = self._apply_journaled is not None and not self._journal_tasks
            claimed, journaled, unclaimed = await self.store.run(
                self._claim_and_read_journal, now, known, full, self._journal_after if reads_journal else None
            )
            finished = self._finished_while_claiming
        finally:
            self._finished_while_claiming = None
        if full:
            self._last_full_claim = now
        if unclaimed is not None:
            self._elsewhere = unclaimed
        dispatched = 0
        for stored in claimed:
            if stored.id in self._inflight or stored.id in finished:
                continue
            self._inflight.add(stored.id)
            self.dispatcher.submit(self._key_of(stored), stored)
            dispatched += 1
        self._hand_over_journaled(journaled)
        return dispatched

    def _hand_over_journaled(self, journaled: Sequence[Any]) -> None:
        """Each journaled row once, as soon as it appears; a row still journaled after that (the app was down) is
        the upkeep loop's to retry, at its own pace, not every poll; so is a row an earlier round already tried
        (`attempts`: a receipt deferred because it came before the outbox recorded the send)."""
        if self._apply_journaled is None or not journaled:
            return
        self._journal_after = max(self._journal_after, max(row.id for row in journaled))
        fresh = [row for row in journaled if not row.attempts]
        if fresh:
            task = asyncio.get_running_loop().create_task(self._apply_journaled(fresh))
            self._journal_tasks.add(task)
            task.add_done_callback(self._journal_tasks.discard)

    def _claim_and_read_journal(
        self, now: datetime, known: frozenset[int], full: bool, journal_after: int | None
    ) -> tuple[Sequence[Any], Sequence[Any], set[int] | None]:
        """On the store's thread: one hop for the claim and the journaled rows. A claim is a write (its own fsync,
        and the webhook process's commits wait for the lock): after `pending_ids` (a read), it is made only when a
        pending event is neither in flight here nor left unclaimed by the last claim (another instance holds it), so
        an idle journal (no pending id) is never claimed; a `full` round (every `full_claim_every`) claims anyway,
        for claims that ran out. Returns the pending ids the claim did not give this instance (None: unknown). The
        journaled rows above `journal_after` are read with it (None: not this round)."""
        journaled = self.store.journaled(journal_after, JOURNAL_BATCH) if journal_after is not None else ()
        ids = self.store.pending_ids()
        if not full and set(ids) <= known:
            return (), journaled, None
        claimed = self.store.claim_pending(self.owner, now, self.lease, self.batch)
        unclaimed = None
        if len(claimed) < self.batch:
            unclaimed = set(ids) - {stored.id for stored in claimed}
        return claimed, journaled, unclaimed

    async def holds(self, key: str) -> bool:
        """Whether this instance still holds the conversation's claim (renewed now if so): after standing by, a turn
        is run again only by the instance that still holds it."""
        return key in await self.store.run(self.store.renew_claims, self.owner, [key], self.clock(), self.lease)

    async def _release_drained(self) -> None:
        if not self._drained:
            return
        active = set(self.dispatcher.active_keys())
        keys = [key for key in self._drained if key not in active]
        self._drained.clear()
        if keys:
            await self.store.run(self._release_all, keys)

    def _release_all(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.store.release_claim(self.owner, key)

    async def _renew_if_due(self) -> None:
        now = self.clock()
        if self._last_renewal is not None and now - self._last_renewal < self.lease / 3:
            return
        self._last_renewal = now
        keys = self.dispatcher.active_keys()
        if not keys:
            return
        held = set(await self.store.run(self.store.renew_claims, self.owner, keys, now, self.lease))
        lost = [key for key in keys if key not in held]
        if lost:  # this instance stood still longer than the lease: another instance may have claimed them
            self._drop_lost(lost)

    def _drop_lost(self, keys: list[str]) -> None:
        """Conversations whose claim this instance no longer holds: their queued items not yet started are dropped
        (they stay pending in the journal, the claim's new holder runs them; the one in the handler, if any, cannot
        be taken back), so two instances never run one conversation's next turns."""
        for key in keys:
            dropped = self.dispatcher.drop_queued(key)
            for stored in dropped:
                self._inflight.discard(stored.id)
            logger.error("lost the claim of a conversation while working on it; dropped %d queued events",
                         len(dropped), extra={"owner": self.owner, "conversation": key})

    async def _handle(self, stored: Any) -> None:
        try:
            await self._handler(stored)
        finally:
            self._inflight.discard(stored.id)
            if self._finished_while_claiming is not None:
                self._finished_while_claiming.add(stored.id)
