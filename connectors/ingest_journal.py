"""The ingest journal's contract (`IngestJournal`), whatever holds it: a SQLite file (`connectors.ingest.IngestStore`)
or a PostgreSQL schema (`connectors.ingest_postgres.PostgresIngestStore`); `connectors.ingest.open_ingest_store`
picks one. What both share lives here: the statuses, what the ingest transaction writes for an event (`new_row`),
the group commit (`record_async`), the rebuilding of stored events.

Python 3.10 too (the Rasa channel runs it).
"""

from __future__ import annotations

import asyncio
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from core.offload import Offload
from meta.events import EventKind, InboundEvent, WebhookPayloadError

T = TypeVar("T")
logger = logging.getLogger("connectors.ingest")

# Statuses: pending → done | failed; `recorded` for events kept but not for Rasa (receipts,
# standby, handover, unknown), `ignored` for our own echoes.
PENDING, DONE, FAILED, RECORDED, IGNORED = "pending", "done", "failed", "recorded", "ignored"

# Meta retries a failed delivery for about 36 hours; dedup keys are kept comfortably longer.
DEFAULT_DEDUP_HORIZON = timedelta(days=7)
DEFAULT_RETENTION = timedelta(days=30)

# `journaled` reads at most this many rows at once (the feeder's round, a page of the upkeep's walk): a backlog left
# by an outage (every delivery and read receipt is journaled) is never rebuilt whole on the store's thread.
JOURNAL_BATCH = 500

# A claim whose lease ran out this long ago is left by an owner that is gone: `prune` deletes it (one that ran out
# more recently is claimable all the same, and its owner may still renew it if nobody took it over).
STALE_CLAIM = timedelta(hours=1)


# Who opens the journal (`IngestStore(path, role=…)`, `open_ingest_store(…, role=…)`).
ROLE_ALL = "all"  # records and feeds (one process: tests, tools): every commit waits for fsync
ROLE_WEBHOOK = "webhook"  # the webhook process: records; leaves checkpoints to the feeder's side
ROLE_FEEDER = "feeder"  # a Rasa instance: claims, finishes, releases; fsyncs only what it records
ROLES = (ROLE_ALL, ROLE_WEBHOOK, ROLE_FEEDER)


def check_role(role: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    return role


def distinct(keys: Iterable[str]) -> list[str]:
    """Keys in their first order, each once."""
    return list(dict.fromkeys(keys))


@dataclass(frozen=True)
class StoredEvent:
    id: int
    event: InboundEvent
    status: str
    attempts: int
    window_pending: bool = False  # the outbox must hear of it: a window opened, a receipt (`new_row`)
    notice_pending: bool = False


@dataclass(frozen=True)
class PruneResult:
    events_deleted: int
    keys_kept: int
    keys_expired: int
    sends_deleted: int
    claims_deleted: int = 0


def iso(at: datetime) -> str:
    return at.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def utc_now_iso() -> str:
    return iso(datetime.now(timezone.utc))


def initial_status(event: InboundEvent, own_app_id: str) -> str:
    if event.is_own_echo(own_app_id):
        return IGNORED
    # An echo from the Page inbox or another app is a person writing: it pauses the bot, in order with the
    # user's own messages (so the bot cannot answer after the person), and is retried after a crash.
    # A referral (an m.me link or QR code opened) is processed in order too: its link may start an answer
    # (connectors/referrals.py).
    referral = event.kind is EventKind.REFERRAL and not event.standby
    return PENDING if event.is_user_input or event.is_person_echo(own_app_id) or referral else RECORDED


def needs_live_view_notice(event: InboundEvent, status: str) -> bool:
    """What the app must hear of an event no turn of Rasa handles (`notice_pending`): what a user writes while
    another app holds the thread (standby) is shown in the agents' live view; a rating (Meta's feedback template
    submitted, a satisfaction quick reply tapped: `InboundEvent.is_feedback`) goes to the app's ratings (csat/)."""
    return status != PENDING and ((event.standby and event.opens_window) or event.is_feedback)


def marks_sent_messages(event: InboundEvent) -> bool:
    """A receipt that can mark something: it has a watermark, or names delivered messages (a read without a usable
    watermark marks nothing, and is not journaled for the outbox)."""
    return event.is_receipt and (event.watermark_ms is not None or bool(event.mids))


def receipt_may_precede_its_send(event: InboundEvent, now: datetime, within: timedelta) -> bool:
    """Pure: a receipt that marked nothing may have come before the outbox recorded the message as sent (Meta's
    delivery can beat the worker's commit): its time (the watermark, else Meta's timestamp) is recent, `within` (the
    outbox's lease: a claimed message is completed by then), or unknown. An older one marks nothing for good."""
    if event.watermark_ms is not None:
        at_ms = event.watermark_ms
    elif event.timestamp_ms > 0:
        at_ms = event.timestamp_ms
    else:
        return True
    return now - datetime.fromtimestamp(at_ms / 1000, tz=timezone.utc) <= within


@dataclass(frozen=True)
class NewRow:
    """What the ingest transaction writes for one event."""

    event: InboundEvent
    status: str
    window_pending: bool
    notice_pending: bool
    event_json: str


def new_row(event: InboundEvent, own_app_id: str) -> NewRow:
    """`window_pending` means "the outbox must hear of this event, and no turn of Rasa will tell it": a user acting
    (the 24-hour window, their last message) or Meta's delivery or read receipt in our own thread (the sent messages'
    `delivered_at` / `read_at`). Journaled with the event, applied after the 200 by the Rasa channel's
    `_record_window`, again after a crash."""
    status = initial_status(event, own_app_id)
    outbox_must_hear = status != PENDING and (event.opens_window or (marks_sent_messages(event) and not event.standby))
    return NewRow(
        event,
        status,
        outbox_must_hear,
        needs_live_view_notice(event, status),
        json.dumps(event.to_dict(), ensure_ascii=False),
    )


class IngestJournal(ABC):
    """The journal's contract, whatever holds it (`IngestStore`: a SQLite file; `PostgresIngestStore`: a PostgreSQL
    schema; `open_ingest_store` picks one). The methods are synchronous and thread-safe; async code calls them off
    the event loop (`run`), one thread per store; `record_async` groups concurrent deliveries into one commit.

    Claims (several Rasa instances share one journal): a conversation (`InboundEvent.conversation_key`) is processed
    by one owner at a time, under a lease. `claim_pending` takes the pending events, oldest first, of conversations
    that are unclaimed, the owner's own or whose lease ran out, and (re)claims them; `renew_claims` extends what the
    owner still holds; `release_claim` lets go of a conversation whose queue the owner drained."""

    def __init__(self, offload_name: str) -> None:
        self._offload = Offload(offload_name)
        self._waiting: list[tuple[list[InboundEvent], str, asyncio.Future[list[StoredEvent]]]] = []
        self._flushing = False

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call a method of this store off the event loop (commits wait for the disk)."""
        return await self._offload.run(fn, *args, **kwargs)

    def close(self) -> None:
        self._offload.close()
        self._close_database()

    @abstractmethod
    def _close_database(self) -> None: ...

    def record(self, events: Iterable[InboundEvent], own_app_id: str = "") -> list[StoredEvent]:
        """Insert all events in one transaction; return the new ones (redeliveries are skipped)."""
        return self.record_many([(list(events), own_app_id)])[0]

    @abstractmethod
    def record_many(self, deliveries: list[tuple[list[InboundEvent], str]]) -> list[list[StoredEvent]]:
        """Several webhook deliveries in one transaction (one commit): the group commit behind `record_async`.
        Returns the new events of each delivery, in order; ids grow in commit order."""

    async def record_async(self, events: list[InboundEvent], own_app_id: str = "") -> list[StoredEvent]:
        """`record` off the event loop, with concurrent deliveries committed together: under a burst
        each webhook waits for one shared commit instead of queueing behind everyone else's."""
        future: asyncio.Future[list[StoredEvent]] = asyncio.get_running_loop().create_future()
        self._waiting.append((events, own_app_id, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            while self._waiting:
                batch, self._waiting = self._waiting, []
                try:
                    results = await self.run(self.record_many, [(events, app_id) for events, app_id, _ in batch])
                except Exception as exc:  # every waiting webhook answers 500 and Meta redelivers
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, _, future), fresh in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(fresh)
        finally:
            self._flushing = False

    def _rebuild(self, rows: Iterable[tuple[int, str, str, int, Any, Any]]) -> list[StoredEvent]:
        """A row that no longer parses (stored before the parser refused its shape) is failed, not retried."""
        rebuilt: list[StoredEvent] = []
        for event_id, event_json, status, attempts, window_pending, notice_pending in rows:
            try:
                event = InboundEvent.from_dict(json.loads(event_json))
            except (WebhookPayloadError, ValueError, KeyError, TypeError) as exc:
                logger.error("stored event %d cannot be parsed; marked failed: %s", event_id, exc)
                self._mark_unparseable(event_id, f"unparseable: {exc}"[:500])
                continue
            rebuilt.append(StoredEvent(event_id, event, status, attempts, bool(window_pending), bool(notice_pending)))
        return rebuilt

    @abstractmethod
    def _mark_unparseable(self, event_id: int, error: str) -> None: ...

    @abstractmethod
    def pending(self) -> list[StoredEvent]:
        """Events recorded but not finished, oldest first (recovery after a restart)."""

    @abstractmethod
    def pending_ids(self) -> list[int]:
        """The ids of the pending events, oldest first (a read: the feeder claims only when one is new to it)."""

    @abstractmethod
    def windows_pending(self) -> list[StoredEvent]:
        """Events not for Rasa whose window was journaled but not yet applied, oldest first."""

    @abstractmethod
    def journaled(self, after: int = 0, limit: int = JOURNAL_BATCH) -> list[StoredEvent]:
        """Events whose window or live-view notice was journaled but not yet applied, oldest first: the first `limit`
        with an id above `after` (a feeder reads only rows new to it; the upkeep walks a backlog page by page)."""

    @abstractmethod
    def window_applied(self, event_id: int) -> None: ...

    @abstractmethod
    def journal_state(self, event_id: int) -> tuple[bool, bool]:
        """(window_pending, notice_pending) as committed now: a snapshot read earlier may be stale."""

    @abstractmethod
    def notice_applied(self, event_id: int) -> None:
        """The app confirmed the live-view notice: it is never sent again."""

    @abstractmethod
    def take_journaled(self, event_id: int) -> tuple[bool, bool]:
        """One transaction: clears the row's `window_pending` and `notice_pending` and returns which of them were set
        (`(window, notice)`): the caller that gets True applies that part, so two Rasa instances reading the same
        journaled row never both apply it. `restore_journaled` sets a part again when applying it failed."""

    @abstractmethod
    def restore_journaled(self, event_id: int, window: bool, notice: bool) -> None:
        """Sets the flags named True again (applying what `take_journaled` gave failed): retried at a later round."""

    @abstractmethod
    def defer_window(self, event_id: int, error: str, max_deferrals: int = 1) -> bool:
        """One write: the row's `window_pending` is set again for a later round and the deferral counted (`attempts`,
        `last_error`), unless it was deferred `max_deferrals` times already. True when deferred. For a receipt that
        came before the outbox recorded its message as sent (`receipt_may_precede_its_send`): retried, but boundedly."""

    @abstractmethod
    def claim_pending(self, owner: str, now: datetime, lease: timedelta, limit: int = 200) -> list[StoredEvent]:
        """One transaction: up to `limit` conversations that are unclaimed, claimed by `owner` or whose claim ran
        out, the one waiting longest first (by its oldest pending event), are (re)claimed for `owner` until
        `now + lease`. Returns their pending events in id order, including those `owner` already has in flight (the
        caller skips its own), taken round robin up to `limit` events (every conversation's first, then every one's
        second, ...): one user's backlog never hides another user's message, every claimed conversation gets its
        oldest event, and fewer than `limit` events means none of theirs was left out. The rest of a backlog follows
        on the next call."""

    @abstractmethod
    def renew_claims(self, owner: str, conversation_keys: list[str], now: datetime, lease: timedelta) -> list[str]:
        """Extend `owner`'s claims until `now + lease`; the keys it still holds, in the order given (a claim another
        owner took over after it ran out is not renewed)."""

    @abstractmethod
    def release_claim(self, owner: str, conversation_key: str) -> None:
        """`owner` drained its queue for the conversation: the claim goes, if `owner` still holds it."""

    @abstractmethod
    def claims(self) -> dict[str, tuple[str, datetime]]:
        """conversation_key → (owner, lease_until) of every claim (tests, diagnostics)."""

    @abstractmethod
    def prune(
        self,
        now: datetime,
        retention: timedelta = DEFAULT_RETENTION,
        dedup_horizon: timedelta = DEFAULT_DEDUP_HORIZON,
    ) -> PruneResult:
        """Delete finished events and send logs older than `retention`, keeping the dedup keys of deleted events
        younger than `dedup_horizon`, and claims left long ago (`STALE_CLAIM`). In chunks, so webhooks are not held
        up."""

    @abstractmethod
    def finish(self, event_id: int, status: str, error: str | None = None, *, counted: bool = False) -> None:
        """The event's verdict. The attempt that ends it is counted here, unless it was `counted` already (a give-up
        right after `note_attempt_failed` or `note_turn_reverted`, or attempts that ran out before a restart)."""

    @abstractmethod
    def note_attempt_failed(self, event_id: int, error: str) -> int: ...

    @abstractmethod
    def reverted_turns(self, event_id: int) -> int:
        """How many turns of the event were undone after a failed action call (`note_turn_reverted`)."""

    @abstractmethod
    def note_turn_reverted(self, event_id: int, error: str) -> tuple[int, int]:
        """A turn failed in an action call and is about to be undone: a failed attempt and a reverted turn, in one
        write, recorded BEFORE the revert (a crash in between replays under the new turn's keys, and the replay
        finishes the revert). Returns (attempts, reverted_turns)."""

    @abstractmethod
    def log_send(
        self,
        page_id: str,
        user_id: str,
        request: dict,
        status: str,
        message_id: str | None = None,
        error_code: int | None = None,
        error_message: str | None = None,
    ) -> None: ...

    @abstractmethod
    def counts_by_status(self) -> dict[str, int]: ...

    @abstractmethod
    def events_for(self, page_id: str, user_id: str) -> list[tuple[str, str, str]]:
        """(kind, status, event_json) of one conversation, oldest first."""

    @abstractmethod
    def send_failures(self) -> list[tuple[str, str, int | None, str | None]]: ...

    @abstractmethod
    def page_for_user(self, user_id: str) -> str | None:
        """The page a user last wrote to (PSIDs are page-scoped, so this is unambiguous)."""
