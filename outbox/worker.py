"""The outbox worker: claim due messages, decide by policy, send, record the outcome.

Runs in the app (Rasa's replies, found by its poll: a cheap change look on SQLite every OUTBOX_POLL_SECONDS; agent
replies, kicked; scheduled follow-ups, retries) or in standalone workers, and in the Rasa process only when asked
(OUTBOX_IN_RASA). The store's claim makes several safe together.
The per-page rate is the store's too (outbox/rate.py): every worker on one store shares it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import socket
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from core.offload import Offload
from meta.errors import GraphError
from meta.graph import GraphClient
from meta.limits import carries_audio_or_video
from outbox.model import InvalidTransition, OutboxMessage, OutboxStore, Outcome, Purpose, Status
from outbox.policy import ConversationWindow, Policy, decide
from outbox.rate import is_rate_limited, send_interval
from outbox.retry import retry_decision
from outbox.store import StoreUnavailable

logger = logging.getLogger(__name__)

# While the database is away (a restart), a claimed message's reads and its outcome are retried with these
# waits, for as long as the worker's lease on it lasts: recording "sent" late beats sending it twice.
STORE_RETRY_FIRST_SECONDS = 0.1
STORE_RETRY_MAX_SECONDS = 2.0
# A worker a whole send interval past its slot when it is about to send (its event loop or its machine stalled, or
# the store answered that slowly) would send on top of the page's next slot: it takes a new slot instead, this many
# times at most, then sends late (or, past half its lease, gives the message back). The limit errs towards sending less.
STALE_SLOT_RETRIES = 1
# An idle worker looks for new messages every `poll_seconds`: on a store with a change token (SQLite's
# data_version) only a change makes it claim; a full claim round still runs at least this often (scheduled messages,
# retries in backoff, expired leases: due by the clock, not by a commit).
FULL_ROUND_SECONDS = 1.0


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def send_api_body(message: OutboxMessage, messaging_type: str, tag: str | None) -> dict[str, Any]:
    recipient_key = "comment_id" if message.purpose is Purpose.PRIVATE_REPLY else "id"
    body: dict[str, Any] = {"recipient": {recipient_key: message.recipient_id}, "messaging_type": messaging_type}
    if tag:
        body["tag"] = tag
    body["message"] = dict(message.message)
    return body


def page_rate_of(policy: Policy, page_rate: float | None) -> float:
    """The page rate a worker sends by: `page_rate` (OUTBOX_PAGE_RATE; 0: no limit) when given, else the policy's
    `send_rates.outbox_per_second` (a policy built in code without send rates: no limit)."""
    if page_rate is not None:
        if page_rate < 0:
            raise ValueError(f"page_rate must be 0 (no limit) or positive, not {page_rate!r}")
        return page_rate
    return policy.send_rates.outbox_per_second if policy.send_rates is not None else 0.0


AUDIO_VIDEO_LANE = "#audio_video"


def send_lane(message: OutboxMessage, policy: Policy, page_rate: float) -> tuple[str, float]:
    """Pure: the slots a message waits for, as (lane, sends per second). A message with audio or video waits for
    its page's audio and video slots (`<page_id>#audio_video`) at Meta's slower rate (`send_rates`), even with the
    page rate off; everything else for the page's slots at `page_rate` (0: none)."""
    rates = policy.send_rates
    if rates is not None and carries_audio_or_video(message.message):
        slower = rates.audio_video_per_second
        return message.page_id + AUDIO_VIDEO_LANE, min(page_rate, slower) if is_rate_limited(page_rate) else slower
    return message.page_id, page_rate


def public_reply_text(message: OutboxMessage) -> str:
    """A public reply is the `text` of its message (a comment has no quick replies, buttons or attachments)."""
    text = message.message.get("text")
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a public reply needs message.text")
    return text


def read_window(store: OutboxStore, page_id: str, user_id: str) -> ConversationWindow:
    """The conversation window the policy decides on, as the store knows it now: the user's last own message on
    this page and the page's opt-in to utility templates. Blocking (run it off the loop); the worker's and the
    outbox's (outbox/outbox.py) one way to read it."""
    last_user = store.last_user_message_at(page_id, user_id)
    return ConversationWindow(last_user_message_at=last_user, page_utility_opt_in=store.page(page_id).utility_templates)


class WakeSocket:
    """A wake-up across processes of one machine (the embedded profile: Rasa enqueues, the app's worker sends): a Unix
    datagram socket at `path` (in BOT_DATA_DIR). The worker listens; an enqueuer pings it after its commit. Best
    effort both ways: a path too long, a missing listener or a full buffer only leave the worker to its poll."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sock: socket.socket | None = None
        self._listening = False

    def listen(self, on_wake: Callable[[], None]) -> bool:
        """Bind the socket and call `on_wake` on the running loop for every ping; False when it cannot."""
        try:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()  # a previous run's file (no one else listens on it: one worker per data dir)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind(str(self.path))
        except OSError as exc:
            logger.info("outbox wake socket unavailable, polling only: %s", exc, extra={"path": str(self.path)})
            return False

        def drain() -> None:
            with contextlib.suppress(OSError):
                while sock.recv(64):
                    pass
            on_wake()

        asyncio.get_running_loop().add_reader(sock.fileno(), drain)
        self._sock, self._listening = sock, True
        return True

    def ping(self) -> None:
        """Tell the listening worker something was enqueued (never blocks, never raises)."""
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
            self._sock.sendto(b"!", str(self.path))
        except OSError:
            pass

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self._listening:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(sock.fileno())
            with contextlib.suppress(OSError):
                self.path.unlink()
        sock.close()


class OutboxWorker:
    """Claims due messages and sends them; everything else callers want goes through `outbox.outbox.Outbox`."""

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
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.client = client
        self.policy = policy
        self.worker_id = worker_id or f"worker-{uuid.uuid4().hex[:8]}"
        self.lease_seconds = lease_seconds
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.clock = clock
        self.rng = rng or random.Random()
        # Sends per second per page, shared through the store; 0: no limit; None: the policy's (send_rates).
        self.page_rate = page_rate_of(policy, page_rate)
        self._wake = asyncio.Event()
        self._stopping = False
        self._offload = Offload("outbox-store")

    async def run_store(self, fn: Callable[..., Any], *args: Any) -> Any:
        """A store call off the event loop (the store's own thread)."""
        return await self._offload.run(fn, *args)

    def kick(self) -> None:
        self._wake.set()

    async def run_once(self) -> int:
        """One claim-and-send round; returns how many messages it handled."""
        now = self.clock()
        await self.run_store(self.store.reclaim_expired, now)
        claimed = await self.run_store(self.store.claim, self.worker_id, now, self.lease_seconds, self.batch_size)
        # claim returns at most one message per recipient (the head of its queue): safe to send concurrently.
        # Every delivery runs to its end even if another fails: none is left half-done behind a raised error.
        results = await asyncio.gather(*(self._deliver(message) for message in claimed), return_exceptions=True)
        for message, result in zip(claimed, results, strict=True):
            if isinstance(result, Exception):  # it stays `sending` until its lease expires, then goes again
                logger.error(
                    "outbox delivery failed: %s", result, exc_info=result, extra={"message_id": message.id}
                )
            elif isinstance(result, BaseException):
                raise result
        return len(claimed)

    async def _change_token(self) -> Any:
        """The store's change token (None: the store has none, every poll claims)."""
        probe = getattr(self.store, "change_token", None)
        if probe is None:
            return None
        try:
            return await self.run_store(probe)
        except Exception:  # the claim round says what is wrong with the store
            return None

    async def _idle(self, token: Any, poll_seconds: float) -> None:
        """Wait until kicked, until the store changed since `token` (looked at every `poll_seconds`; a store without
        a token: the first look), or until a full round is due (FULL_ROUND_SECONDS)."""
        loop = asyncio.get_running_loop()
        full_round_at = loop.time() + max(FULL_ROUND_SECONDS, poll_seconds)
        while not self._stopping:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=poll_seconds)
                return
            if token is None or loop.time() >= full_round_at:
                return
            if await self._change_token() != token:
                return

    async def run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            token = await self._change_token()  # before the claim: a commit after it shows as a change
            try:
                handled = await self.run_once()
            except StoreUnavailable as exc:  # the database restarts: keep polling, it reconnects when back
                logger.warning("outbox store unavailable, retrying: %s", exc, extra={"worker_id": self.worker_id})
                await self._idle(None, FULL_ROUND_SECONDS)
                continue
            except Exception:  # a store or network hiccup must not end the loop; it is logged
                logger.exception("outbox round failed", extra={"worker_id": self.worker_id})
                await self._idle(None, FULL_ROUND_SECONDS)
                continue
            if handled:
                continue
            await self._idle(token, self.poll_seconds)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def _while_leased(self, message: OutboxMessage, fn: Callable[..., Any], *args: Any) -> Any:
        """A store call for a message this worker holds, retried while the store is unavailable and the
        lease lasts; after that another worker may take the message, so the error is raised."""
        lease_until = message.lease_until or self.clock() + timedelta(seconds=self.lease_seconds)
        wait = STORE_RETRY_FIRST_SECONDS
        while True:
            try:
                return await self.run_store(fn, *args)
            except StoreUnavailable as exc:
                if self.clock() + timedelta(seconds=wait) >= lease_until:
                    raise
                if wait == STORE_RETRY_FIRST_SECONDS:  # once per call, not once per retry
                    logger.warning(
                        "outbox store unavailable, retrying within the lease: %s", exc, extra={"message_id": message.id}
                    )
            await asyncio.sleep(wait)
            wait = min(wait * 2, STORE_RETRY_MAX_SECONDS)

    async def _deliver(self, message: OutboxMessage) -> None:
        now = self.clock()
        window = await self._while_leased(message, read_window, self.store, message.page_id, message.recipient_id)
        decision = decide(message, window, now, self.policy)
        lane, rate = send_lane(message, self.policy, self.page_rate)
        if decision.allowed and is_rate_limited(rate):
            send_at = await self._wait_for_send_slot(message, lane, rate)
            if send_at is None:
                return
            # Decided again for the moment it leaves: a window may have closed while it waited.
            decision = decide(message, window, max(self.clock(), send_at), self.policy)
        if not decision.allowed:
            await self._complete(
                message, Outcome(Status.BLOCKED, reason_code=decision.reason_code, reason=decision.reason_es)
            )
            return
        try:
            if message.purpose is Purpose.PUBLIC_REPLY:  # a comment under the person's comment, not a message
                result = await self.client.reply_to_comment(
                    message.page_id, message.recipient_id, public_reply_text(message)
                )
            else:
                body = send_api_body(message, decision.messaging_type or "RESPONSE", decision.tag)
                result = await self.client.send_message(message.page_id, body)
        except GraphError as error:
            verdict = retry_decision(error, message.attempts + 1, message.max_attempts, self.clock(), self.rng)
            if verdict.pause_page:
                await self.run_store(self.store.pause_page, message.page_id, verdict.reason, self.clock())
                logger.error("page paused: its access token is invalid", extra={"page_id": message.page_id})
            log = logger.warning if verdict.status is Status.PENDING else logger.error
            log(
                "outbox send failed",
                extra={
                    "message_id": message.id,
                    "page_id": message.page_id,
                    "code": error.code,
                    "subcode": error.subcode,
                    "outcome": verdict.status.value,
                },
            )
            await self._complete(
                message,
                Outcome(
                    verdict.status,
                    next_attempt_at=verdict.next_attempt_at,
                    reason_code=verdict.reason_code,
                    reason=verdict.reason,
                    last_error_code=error.code,
                ),
            )
            return
        except Exception as error:  # e.g. UnknownPageError: nothing to retry, the reason is recorded
            await self._complete(message, Outcome(Status.FAILED, reason_code="not_sendable", reason=str(error)))
            return
        await self._complete(
            message,
            Outcome(
                Status.SENT,
                messaging_type=decision.messaging_type,
                sent_tag=decision.tag,
                graph_message_id=result.get("message_id") or result.get("id"),  # a public reply: the comment's id
                graph_recipient_id=result.get("recipient_id"),  # a private reply's: the commenter's PSID
                sent_at=self.clock(),
            ),
        )

    async def _wait_for_send_slot(self, message: OutboxMessage, lane: str, rate: float) -> datetime | None:
        """Reserve the lane's next send slot in the store (shared by every worker; `send_lane`: the page's, or its
        audio and video's) and sleep until it; None when
        the message was given back instead. Only a slot within the first half of the lease is taken, and a worker
        that wakes past that half (stalled) gives the message back rather than send: the other half is for sending
        and recording, so the lease does not run out before the outcome is recorded."""
        lease_until = message.lease_until or self.clock() + timedelta(seconds=self.lease_seconds)
        not_after = lease_until - timedelta(seconds=self.lease_seconds / 2)
        interval = send_interval(rate)
        retries = STALE_SLOT_RETRIES
        while True:
            slot = await self._while_leased(
                message, self.store.reserve_send_slot, lane, self.clock(), rate, not_after
            )
            if not slot.granted:  # the page's slots are taken past our lease: whoever is free then sends it
                await self._release(message, slot.send_at)
                return None
            wait = (slot.send_at - self.clock()).total_seconds()
            if wait > 0:
                await asyncio.sleep(wait)
            now = self.clock()
            late = now - slot.send_at
            if late < interval:
                return slot.send_at
            if retries == 0:
                if now <= not_after:
                    return slot.send_at
                # Stalled past half the lease: sending now could outlive it, and the worker that reclaims the
                # message would send it again.
                await self._release(message, now)
                return None
            retries -= 1
            logger.info(
                "outbox send slot missed, taking a new one",
                extra={"message_id": message.id, "page_id": message.page_id, "late_seconds": late.total_seconds()},
            )

    async def _release(self, message: OutboxMessage, not_before: datetime) -> None:
        try:
            await self._while_leased(message, self.store.release, message.id, self.worker_id, not_before)
        except InvalidTransition:  # our lease was taken over: the other worker owns it now
            logger.exception("could not give an outbox message back: no longer ours", extra={"message_id": message.id})
        except Exception:  # the store stayed away past the lease: the lease expiry gives it back
            logger.exception("could not give an outbox message back", extra={"message_id": message.id})

    async def _complete(self, message: OutboxMessage, outcome: Outcome) -> None:
        if outcome.finished_at is None and outcome.status is not Status.PENDING:  # counted at the worker's clock
            outcome = dataclasses.replace(outcome, finished_at=outcome.sent_at or self.clock())
        try:
            await self._while_leased(message, self.store.complete, message.id, self.worker_id, outcome)
        except InvalidTransition:  # our lease was taken over (we were too slow): the other worker owns it now
            logger.exception("could not record an outbox outcome: no longer ours", extra={"message_id": message.id})
        except Exception:  # the store stayed away past the lease: the message goes again (at-least-once)
            logger.exception("could not record an outbox outcome", extra={"message_id": message.id})
