"""Rasa's event broker, read by the app for the console's live view (scale profile).

In the scale profile every Rasa instance publishes each tracker event through its Pika broker
(`endpoints-scale.yml`) to a fanout exchange: `{"sender_id", "event", "timestamp", "text", "metadata", …}`. The app
consumes the durable queue bound to it (`RASA_EVENTS_QUEUE`) and turns what agents care about into the same
`ConsoleEvent`s the handoff service publishes, so open console pages see a user's message, the bot's answer and a
pause the moment Rasa stores them, whichever instance ran the turn — no polling of the trackers.

What is translated (pure, `console_event`): a user message → `user_message`, a bot message → `bot_message`, Rasa's
`pause`/`resume` → `paused`/`resumed` (the console reloads the conversation's state). Left to the handoff service,
which already publishes them with its own record: agents' replies (bot events with `metadata.agent`) and messages
written while the conversation is paused (the Rasa channel reports those; the service keeps their copy).

Robustness: a message that is not a Rasa event is logged and acknowledged (never redelivered forever, never kills the
consumer); a lost connection is retried after 1 s, 2 s, 4 s … up to 30 s; memory is bounded by the prefetch, the
sender → page directory and the handoff's bounded broadcaster. Events older than `MAX_EVENT_AGE` (a backlog left
while the app was down) are acknowledged without being shown: the live view is for now.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from handoff.model import ConsoleEvent, Conversation, ConversationState, conversation_id_of
from handoff.service import transcript_items

logger = logging.getLogger(__name__)

PREFETCH = 100  # unacknowledged messages at once: the consumer's memory bound
MAX_EVENT_AGE = timedelta(minutes=10)
RECONNECT_BASE_SECONDS = 1.0
RECONNECT_CAP_SECONDS = 30.0
KNOWN_SENDERS = 10_000  # sender → page, most recent kept


class BadRasaEvent(ValueError):
    """A broker message that is not a Rasa tracker event."""


@dataclass(frozen=True)
class RasaEvent:
    sender_id: str
    kind: str  # Rasa's `event`: "user", "bot", "pause", "resume", "action", …
    at: datetime
    body: Mapping[str, Any] = field(repr=False)

    @property
    def page_id(self) -> str | None:
        metadata = self.body.get("metadata")
        page = metadata.get("page_id") if isinstance(metadata, Mapping) else None
        return str(page) if page else None


def parse_rasa_event(raw: bytes) -> RasaEvent:
    """Pure: the broker's body → a `RasaEvent`, or `BadRasaEvent` saying what is wrong (never the body itself)."""
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadRasaEvent(f"not JSON ({type(exc).__name__})") from exc
    if not isinstance(body, dict):
        raise BadRasaEvent(f"a JSON {type(body).__name__}, not an object")
    sender, kind, timestamp = body.get("sender_id"), body.get("event"), body.get("timestamp")
    if not isinstance(sender, str) or not sender or not isinstance(kind, str) or not kind:
        raise BadRasaEvent("no sender_id or event")
    if not isinstance(timestamp, (int, float)) or isinstance(timestamp, bool):
        raise BadRasaEvent("no valid timestamp")
    try:
        at = datetime.fromtimestamp(timestamp, tz=timezone.utc)
    except (ValueError, OverflowError, OSError) as exc:
        raise BadRasaEvent("no valid timestamp") from exc
    return RasaEvent(sender, kind, at, body)


def console_event(event: RasaEvent, page_id: str) -> ConsoleEvent | None:
    """Pure: what open console pages are told about one Rasa event (None: nothing)."""
    conversation_id = conversation_id_of(page_id, event.sender_id)
    data: dict[str, Any] = {"source": "rasa"}
    if event.kind in ("user", "bot"):
        items = transcript_items([event.body])  # the transcript's own reading: shown text, agents told apart
        if not items or items[0].author.startswith("agent:"):
            return None  # an agent's reply: the handoff service published it when it was sent
        item = items[0]
        data.update(text=item.text, author=item.author, message_at=item.at.isoformat())
        if item.data:
            data["details"] = item.data
        return ConsoleEvent("user_message" if item.author == "user" else "bot_message", conversation_id, event.at,
                            data)
    if event.kind in ("pause", "resume"):
        return ConsoleEvent("paused" if event.kind == "pause" else "resumed", conversation_id, event.at,
                            {**data, "by": "rasa"})
    return None


def is_stale(event: RasaEvent, now: datetime, max_age: timedelta = MAX_EVENT_AGE) -> bool:
    return now - event.at > max_age


def reconnect_delay(failures_in_a_row: int, base: float = RECONNECT_BASE_SECONDS,
                    cap: float = RECONNECT_CAP_SECONDS) -> float:
    """Pure: 1 s, 2 s, 4 s … up to `cap` for the 1st, 2nd, 3rd … failure in a row."""
    return min(cap, base * 2 ** min(max(failures_in_a_row - 1, 0), 30))


class PageDirectory:
    """Which page a sender writes to: Rasa's bot events carry no page, the user's messages do (`metadata.page_id`).
    Bounded (the most recent `capacity` senders); with a single page configured, that page."""

    def __init__(self, pages: list[str], capacity: int = KNOWN_SENDERS) -> None:
        self._only_page = pages[0] if len(pages) == 1 else None
        self._capacity = capacity
        self._pages: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pages)

    def learn(self, event: RasaEvent) -> None:
        if event.page_id:
            self._pages[event.sender_id] = event.page_id
            self._pages.move_to_end(event.sender_id)
            while len(self._pages) > self._capacity:
                self._pages.popitem(last=False)

    def page_of(self, sender_id: str) -> str | None:
        return self._pages.get(sender_id) or self._only_page


@dataclass
class FeedCounts:
    received: int = 0
    published: int = 0
    skipped: int = 0  # stale, paused (the handoff reports it), unknown page, or nothing to show
    bad: int = 0
    connections: int = 0


def paused_check(
    find: Callable[[str, str], Awaitable[Conversation | None]],
) -> Callable[[str, str], Awaitable[bool]]:
    """`is_paused` over the handoff service's `find(page_id, user_id)`."""

    async def is_paused(page_id: str, user_id: str) -> bool:
        conversation = await find(page_id, user_id)
        return conversation is not None and conversation.state is ConversationState.PAUSED

    return is_paused


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class RasaEventFeed:
    """Consumes Rasa's event queue and publishes console events; `start()` in the app's lifespan, `stop()` after."""

    def __init__(
        self,
        url: str,
        exchange: str,
        queue: str,
        publish: Callable[[ConsoleEvent], None],
        is_paused: Callable[[str, str], Awaitable[bool]],
        pages: list[str],
        *,
        prefetch: int = PREFETCH,
        clock: Callable[[], datetime] = utc_now,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.url = url
        self.exchange = exchange
        self.queue = queue
        self.publish = publish
        self.is_paused = is_paused
        self.directory = PageDirectory(pages)
        self.prefetch = prefetch
        self.clock = clock
        self.sleep = sleep
        self.counts = FeedCounts()
        self.connected = asyncio.Event()
        self._was_connected = False  # since the last failure: the next failure starts the backoff again
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self.run(), name="rasa-event-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run(self) -> None:
        """Consume until cancelled; a lost or refused connection is retried with backoff."""
        failures = 0
        while True:
            try:
                await self._consume()
                failures = 0  # the broker closed the connection cleanly: reconnect at once
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker is down or went away: the app keeps serving, we retry
                self.connected.clear()
                failures = 1 if self._was_connected else failures + 1
                self._was_connected = False
                delay = reconnect_delay(failures)
                logger.warning("Rasa's event broker is unreachable; retrying in %.0f s", delay,
                               extra={"error": type(exc).__name__, "failures_in_a_row": failures})
                await self.sleep(delay)

    async def _consume(self) -> None:
        import aio_pika

        connection = await aio_pika.connect(self.url, timeout=10)
        async with connection:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self.prefetch)
            # Declared as Rasa declares them (a fanout exchange, a durable queue): whichever starts first.
            exchange = await channel.declare_exchange(self.exchange, aio_pika.ExchangeType.FANOUT)
            queue = await channel.declare_queue(self.queue, durable=True)
            await queue.bind(exchange, "")
            self.counts.connections += 1
            self._was_connected = True
            self.connected.set()
            logger.info("reading Rasa's events", extra={"exchange": self.exchange, "queue": self.queue})
            async with queue.iterator() as messages:
                async for message in messages:
                    try:
                        await self.handle(message.body)
                    finally:
                        await message.ack()

    async def handle(self, raw: bytes) -> ConsoleEvent | None:
        """One broker message: translated and published, or skipped; a bad one is logged. Never raises."""
        self.counts.received += 1
        try:
            event = parse_rasa_event(raw)
        except BadRasaEvent as exc:
            self.counts.bad += 1
            logger.warning("a message on Rasa's event queue is not a Rasa event: %s", exc,
                           extra={"queue": self.queue, "bytes": len(raw)})
            return None
        try:
            return await self._show(event)
        except Exception:  # a store error: this event is not shown, the feed goes on
            self.counts.bad += 1
            logger.exception("showing a Rasa event failed", extra={"sender_id": event.sender_id, "kind": event.kind})
            return None

    async def _show(self, event: RasaEvent) -> ConsoleEvent | None:
        self.directory.learn(event)
        page_id = self.directory.page_of(event.sender_id)
        shown = console_event(event, page_id) if page_id else None
        if shown is None or is_stale(event, self.clock()):
            self.counts.skipped += 1
            return None
        if shown.kind == "user_message" and await self.is_paused(page_id or "", event.sender_id):
            self.counts.skipped += 1  # the Rasa channel reports it to the handoff service, which shows and keeps it
            return None
        self.publish(shown)
        self.counts.published += 1
        return shown
