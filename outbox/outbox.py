"""The outbox as its callers see it (as procrastinate's App is to its connector): one object, opened by
`open_outbox`, for everything the bot, the console, the handoff and the API ask of the outbox.

Callers enqueue, preview a decision, record that a user wrote, cancel stale bot messages, read the conversation
window and the queue, and start and stop the worker. The store and the policy stay behind it; the worker
(outbox/worker.py) only claims and sends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from meta.graph import GraphClient
from outbox.model import (
    MAX_BATCH,
    Alert,
    ConversationSeen,
    InvalidTransition,
    MessageDay,
    MessageFilter,
    MessageHour,
    NewMessage,
    OutboxMessage,
    OutboxStore,
    PageState,
    Purpose,
    SenderKind,
    SendHour,
    Status,
    check_batch,
    check_key_prefix,
    check_offset,
    check_period,
    check_receipt_kind,
)
from outbox.policy import ConversationWindow, Decision, Policy, ReplyWindows, SendRequest, decide
from outbox.policy_file import load_policy
from outbox.store import open_store
from outbox.worker import OutboxWorker, WakeSocket, read_window, utc_now

logger = logging.getLogger(__name__)

T = TypeVar("T")

# The app's worker listens on this file in BOT_DATA_DIR; the Rasa channel pings it after each reply it enqueued.
WAKE_FILE_NAME = "outbox.wake"

# A pause leaves a user's pending bot messages alone up to this many (newest first); more is not a conversation.
STALE_SCAN_LIMIT = 1000


# A broadcast's messages (broadcasts/) are SYSTEM messages keyed `broadcast:{id}:{psid}:{attempt}:{part}`.
BROADCAST_KEY_PREFIX = "broadcast:"


def is_broadcast(message: OutboxMessage) -> bool:
    return message.sender is SenderKind.SYSTEM and message.idempotency_key.startswith(BROADCAST_KEY_PREFIX)


class Outbox:
    """One outbox: its store, its policy and its worker. The store and the policy are not part of its face."""

    def __init__(
        self,
        store: OutboxStore,
        client: GraphClient,
        policy: Policy,
        *,
        worker_id: str | None = None,
        lease_seconds: float = 30.0,
        batch_size: int = 32,
        poll_seconds: float = 1.0,
        page_rate: float | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self._store = store
        self._policy = policy
        self.clock = clock
        self._worker = OutboxWorker(
            store, client, policy, worker_id=worker_id, lease_seconds=lease_seconds, batch_size=batch_size,
            poll_seconds=poll_seconds, page_rate=page_rate, clock=clock,
        )
        self._task: asyncio.Task[None] | None = None
        self._wake_listener: WakeSocket | None = None
        self._wake_others: WakeSocket | None = None

    @property
    def page_rate(self) -> float:
        """Sends per second per page this outbox's worker keeps to (OUTBOX_PAGE_RATE, else the policy's
        `send_rates.outbox_per_second`); 0: no limit."""
        return self._worker.page_rate

    def reply_windows(self) -> ReplyWindows:
        """The standard and HUMAN_AGENT windows by the policy this outbox decides by (OUTBOX_POLICY_FILE): what
        callers show about the windows agrees with what it sends."""
        return self._policy.reply_windows()

    # --- the worker ------------------------------------------------------------------------------------

    def start(self, wake_path: Path | None = None) -> None:
        """Run the worker in the background (on the running loop) until `stop()`. `wake_path`: also wake it when
        another process's outbox pings that path after an enqueue (`wake_others`)."""
        if self._task is None:
            if wake_path is not None and self._wake_listener is None:
                listener = WakeSocket(wake_path)
                if listener.listen(self.kick):
                    self._wake_listener = listener
            self._task = asyncio.get_running_loop().create_task(self._worker.run())

    def wake_others(self, wake_path: Path) -> None:
        """After each enqueue, ping the worker listening at `wake_path` (another process's: the app's), so it sends
        at once instead of at its next poll."""
        self._wake_others = WakeSocket(wake_path)

    async def run(self) -> None:
        """Run the worker in the foreground until `request_stop()` (`python -m outbox worker`)."""
        await self._worker.run()

    def request_stop(self) -> None:
        """Tell the worker to finish its round and end (safe from a signal handler)."""
        self._worker.stop()

    async def stop(self) -> None:
        """End the background worker and wait for it; the store stays open (`close()`)."""
        self._worker.stop()
        if self._task is not None:
            task, self._task = self._task, None
            await task
        for wake in (self._wake_listener, self._wake_others):
            if wake is not None:
                wake.close()
        self._wake_listener = self._wake_others = None

    def close(self) -> None:
        self._store.close()

    def kick(self) -> None:
        """Wake the worker: something is due now."""
        self._worker.kick()

    async def run_once(self) -> int:
        """One claim-and-send round of this outbox's worker (tests, benchmarks); how many it handled."""
        return await self._worker.run_once()

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        """A store call off the event loop (the store is blocking: SQLite, psycopg)."""
        result: T = await self._worker.run_store(fn, *args)
        return result

    # --- writing ---------------------------------------------------------------------------------------

    async def enqueue(self, new: NewMessage) -> tuple[OutboxMessage, bool]:
        """Write first (durable), then wake the worker so a reply leaves at once. (message, created): a known
        idempotency key returns the stored message and False."""
        result = await self._run(self._store.enqueue, new, self.clock())
        self.kick()
        if self._wake_others is not None:
            self._wake_others.ping()
        return result

    async def enqueue_many(self, news: Sequence[NewMessage]) -> list[tuple[OutboxMessage, bool]]:
        """`enqueue` for a batch (at most `MAX_BATCH`: broadcasts), in one transaction, then one wake. Results in
        the order of `news`; a message refused refuses the batch (nothing written)."""
        check_batch(news, "messages")
        if not news:
            return []
        result = await self._run(self._store.enqueue_many, list(news), self.clock())
        self.kick()
        if self._wake_others is not None:
            self._wake_others.ping()
        return result

    async def record_user_message(self, page_id: str, user_id: str, at: datetime, text: str | None = None) -> None:
        """The user wrote on this page at `at` (`text`: what they wrote, kept as their last message's): the windows
        count from their own last message, and each call counts one message. Call it once per event."""
        await self._run(self._store.record_user_message, page_id, user_id, at, text)

    async def record_receipt(
        self, page_id: str, recipient_id: str, kind: str, watermark: datetime | None, mids: Sequence[str]
    ) -> int:
        """Meta says the person got (`"delivery"`) or read (`"read"`) what the page sent up to `watermark` (and
        the messages `mids`): the SENT messages get `delivered_at` / `read_at`. How many messages changed."""
        check_receipt_kind(kind)
        return await self._run(self._store.record_receipt, page_id, recipient_id, kind, watermark, tuple(mids),
                               self.clock())

    async def conversations_since(self, after: datetime | None, limit: int) -> list[ConversationSeen]:
        """The conversations whose user's message was recorded after `after` (`ConversationSeen.recorded_at`, the
        store's time; None: from the start), in recording order: the contacts' sync follows who wrote with it."""
        return await self._run(self._store.conversations_since, after, limit)

    async def conversations_recorded_between(self, since: datetime, until: datetime, limit: int,
                                             after: ConversationSeen | None = None) -> list[ConversationSeen]:
        """The conversations whose user's last message was recorded in [`since`, `until`) (the store's time), in
        recording order, a page of `limit` after the row `after` (None: the first page): the satisfaction survey
        after the bot resolved a conversation finds who last wrote N minutes ago."""
        return await self._run(self._store.conversations_recorded_between, since, until, limit, after)

    async def cancel_stale_bot_messages(self, page_id: str, user_id: str, now: datetime | None = None) -> list[int]:
        """Bot messages still queued from before a person took over (in retry backoff, scheduled, or held by a
        paused page) must not reach someone now talking to an agent, nor a broadcast's (SYSTEM messages keyed
        `broadcast:…`). Fresh replies of the current turn (the handoff notice itself) are left to go. Returns the ids
        cancelled."""
        now = now or self.clock()
        query = MessageFilter(recipient_id=user_id, page_id=page_id, statuses=(Status.PENDING,),
                              limit=STALE_SCAN_LIMIT)
        cancelled = []
        for message in await self._run(self._store.find, query):
            stale = message.attempts > 0 or message.purpose is not Purpose.REPLY or message.due_at > now
            if (message.sender is SenderKind.BOT and stale) or is_broadcast(message):
                try:
                    await self._run(self._store.cancel, message.id, now)
                except InvalidTransition:  # claimed meanwhile: it is being sent or already was
                    continue
                logger.info("queued message cancelled by a pause", extra={"message_id": message.id})
                cancelled.append(message.id)
        return cancelled

    async def cancel(self, message_id: int) -> OutboxMessage:
        """A pending message → cancelled (NotFound, InvalidTransition)."""
        message = await self._run(self._store.cancel, message_id, self.clock())
        self.kick()  # the recipient's next message may now be the head of its queue
        return message

    async def cancel_pending_by_key_prefix(self, prefix: str) -> int:
        """Every PENDING message whose idempotency key starts with `prefix` → CANCELLED, in one statement (a
        broadcast's cancel: `broadcast:{id}:`; one person's part of it: `broadcast:{id}:{psid}:`). Messages already
        claimed, sent or final are left alone; calling it again is harmless. How many were cancelled."""
        check_key_prefix(prefix)
        count = await self._run(self._store.cancel_pending_by_key_prefix, prefix, self.clock())
        if count:
            self.kick()  # the recipients' next messages may now be the heads of their queues
        return count

    async def retry(self, message_id: int) -> OutboxMessage:
        """A dead or failed message → pending, due now (NotFound, InvalidTransition)."""
        message = await self._run(self._store.retry, message_id, self.clock())
        self.kick()
        return message

    async def resume_page(self, page_id: str) -> None:
        await self._run(self._store.resume_page, page_id)
        self.kick()

    # --- the policy's view -----------------------------------------------------------------------------

    async def conversation_window(self, page_id: str, user_id: str) -> ConversationWindow:
        """What the policy decides on for this user on this page: their last own message, the page's opt-in."""
        return await self._run(read_window, self._store, page_id, user_id)

    async def windows_of(self, page_id: str, user_ids: Sequence[str]) -> dict[str, ConversationWindow]:
        """`conversation_window` of many users of one page: one query per `MAX_BATCH` users (and one for the page).
        Every user asked for is in the answer (no message: a window with no last message)."""
        wanted = list(dict.fromkeys(user_ids))
        if not wanted:
            return {}
        opt_in = (await self.page(page_id)).utility_templates
        last: dict[str, datetime] = {}
        for start in range(0, len(wanted), MAX_BATCH):
            last.update(await self._run(self._store.last_user_messages, page_id, wanted[start:start + MAX_BATCH]))
        return {user_id: ConversationWindow(last_user_message_at=last.get(user_id), page_utility_opt_in=opt_in)
                for user_id in wanted}

    def decide(self, message: SendRequest, window: ConversationWindow, at: datetime) -> Decision:
        """The policy's answer for `message` sent at `at` within `window` (pure: nothing is read or written)."""
        return decide(message, window, at, self._policy)

    async def preview(self, new: NewMessage, at: datetime | None = None) -> Decision:
        """How `new` would go out at `at` (default now), from what the store knows now; nothing is written.
        A message scheduled for later is decided again when it is due."""
        window = await self.conversation_window(new.page_id, new.recipient_id)
        return self.decide(new, window, at or self.clock())

    # --- reading ---------------------------------------------------------------------------------------

    async def get(self, message_id: int) -> OutboxMessage:
        return await self._run(self._store.get, message_id)

    async def states_of(self, ids: Sequence[int]) -> dict[int, OutboxMessage]:
        """The messages with these ids (at most `MAX_BATCH`), in one query; unknown ids are absent."""
        check_batch(ids, "ids")
        if not ids:
            return {}
        return await self._run(self._store.get_many, list(ids))

    async def unreachable(self, page_id: str, recipient_ids: Sequence[str]) -> dict[str, str]:
        """Of these people (at most `MAX_BATCH`), those the page cannot reach: psid → reason code (`"blocked"`: the
        latest message sent to them failed with Meta's "This person isn't available right now" and they have not
        written since). One query."""
        check_batch(recipient_ids, "recipients")
        if not recipient_ids:
            return {}
        return await self._run(self._store.unreachable, page_id, list(recipient_ids))

    async def find(self, query: MessageFilter) -> list[OutboxMessage]:
        """Newest first."""
        return await self._run(self._store.find, query)

    async def page(self, page_id: str) -> PageState:
        return await self._run(self._store.page, page_id)

    async def alerts(self, limit: int = 100) -> list[Alert]:
        return await self._run(self._store.alerts, limit)

    async def counts(self) -> dict[str, int]:
        """Messages per status."""
        return await self._run(self._store.counts)

    async def message_hours(self, page_id: str | None, since: datetime, until: datetime) -> list[MessageHour]:
        """The reports' incoming messages, conversations and new people per UTC hour starting in [`since`,
        `until`) (aware times), of one page or (None) of every page: counters kept as each message was recorded."""
        check_period(since, until)
        return await self._run(self._store.message_hours, page_id, since, until)

    async def message_days(self, page_id: str | None, since: datetime, until: datetime,
                           offset_seconds: int) -> list[MessageDay]:
        """`message_hours` summed per local day by the store, for hours of one UTC offset (`offset_seconds`, east
        positive): the reports over a long period read ~365 rows a year instead of 8,760 hours."""
        check_period(since, until)
        check_offset(offset_seconds)
        return await self._run(self._store.message_days, page_id, since, until, offset_seconds)

    async def message_hours_since(self) -> datetime | None:
        """When `message_hours` began counting, on an outbox upgraded with people's messages already in it (None:
        from the start): the reports say «sin datos» for the days before it rather than 0."""
        return await self._run(self._store.message_hours_since)

    async def send_hours(self, page_id: str | None, since: datetime, until: datetime) -> list[SendHour]:
        """The reports' sends by final outcome (status, reason, Meta's error code, purpose) per UTC hour starting in
        [`since`, `until`), of one page or (None) of every page: each message once, as what it ended as."""
        check_period(since, until)
        return await self._run(self._store.send_hours, page_id, since, until)


def open_outbox(
    store_url: str,
    client: GraphClient,
    *,
    policy_file: str | Path | None = None,
    retired_tags_until: datetime | None = None,
    page_rate: float | None = None,
    lease_seconds: float = 30.0,
    batch_size: int = 32,
    worker_id: str | None = None,
    poll_seconds: float = 1.0,
) -> Outbox:
    """The one wiring, from the settings' values: the store at `store_url` (sqlite:///…, postgresql://…,
    memory://), the policy file (None: the shipped outbox/policy.yml) and the retired tags' date, the Graph client
    it sends with (the caller's: shared, and closed by the caller), the page rate (None: the policy's `send_rates`),
    the worker's claim and how often an idle worker looks for new messages (OUTBOX_POLL_SECONDS).
    `close()` closes the store."""
    policy = load_policy(policy_file, retired_tags_until=retired_tags_until)  # first: a broken file opens nothing
    store = open_store(store_url)
    try:
        return Outbox(store, client, policy, worker_id=worker_id, lease_seconds=lease_seconds,
                      batch_size=batch_size, page_rate=page_rate, poll_seconds=poll_seconds)
    except BaseException:
        with contextlib.suppress(Exception):
            store.close()
        raise
