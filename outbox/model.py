"""The outbox's value objects and the store contract every backend implements.

Standard library only, Python 3.10: the Rasa process (the connector's replies) and the app
(API, worker) both use it.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from enum import Enum
from typing import Any, NamedTuple, Protocol

from core.errors import DomainError


class OutboxError(DomainError):
    """Root of everything the outbox package raises."""

    reason_code = "outbox_error"


class OutboxInputError(OutboxError, ValueError):
    """A request the outbox refuses; `reason_code` is machine-readable, `details` go into the error body."""

    def __init__(self, reason_code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.reason_code = reason_code
        self._details = details

    def details(self) -> dict[str, Any]:
        return dict(self._details)


class NotFound(OutboxError, LookupError):
    reason_code = "message_not_found"


class InvalidTransition(OutboxError):
    """E.g. cancelling a message already sent, or retrying one that is not dead."""

    reason_code = "invalid_transition"


class Status(str, Enum):
    PENDING = "pending"  # waiting for its time, its turn (order per recipient) or a retry
    SENDING = "sending"  # claimed by a worker; a lease reclaims it after a crash
    SENT = "sent"
    BLOCKED = "blocked"  # the policy (or Meta: codes 10/2018278) forbids it; not retried
    FAILED = "failed"  # a permanent Send API error (e.g. 551, 100); not retried
    DEAD = "dead"  # transient errors until the attempts ran out; `retry` revives it
    CANCELLED = "cancelled"


TERMINAL = frozenset({Status.SENT, Status.BLOCKED, Status.FAILED, Status.DEAD, Status.CANCELLED})


class SenderKind(str, Enum):
    BOT = "bot"  # automated replies and automated follow-ups
    HUMAN = "human"  # an agent typing in the console
    SYSTEM = "system"  # broadcasts, reminders scheduled by the business


class Purpose(str, Enum):
    REPLY = "reply"  # an answer to what the user just wrote
    FOLLOW_UP = "follow_up"  # proactive: reminders, agent replies later, broadcasts
    PRIVATE_REPLY = "private_reply"  # reply to a comment on the page (recipient: comment_id)
    PUBLIC_REPLY = "public_reply"  # a comment under a comment (Graph /{comment_id}/comments; recipient: comment_id)


def utc(dt: datetime) -> datetime:
    """Every time in the outbox is timezone-aware UTC."""
    if dt.tzinfo is None:
        raise ValueError("naive datetime: the outbox only takes timezone-aware UTC times")
    return dt.astimezone(timezone.utc)


@dataclass(frozen=True)
class NewMessage:
    """What a caller asks to send. `message` is a Send API `message` object."""

    page_id: str
    recipient_id: str
    message: Mapping[str, Any]
    sender: SenderKind = SenderKind.BOT
    purpose: Purpose = Purpose.FOLLOW_UP
    tag: str | None = None  # a requested message tag (e.g. HUMAN_AGENT); None: let the policy choose
    promotional: bool = False
    not_before: datetime | None = None  # scheduled send
    idempotency_key: str | None = None  # the same key twice → the same message, not a second one
    sender_name: str | None = None  # the agent's name for HUMAN sends (shown to agents, not sent)
    max_attempts: int = 8


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    page_id: str
    recipient_id: str
    message: Mapping[str, Any]
    sender: SenderKind
    purpose: Purpose
    tag: str | None
    promotional: bool
    idempotency_key: str
    status: Status
    created_at: datetime
    due_at: datetime  # not_before, or created_at: the order per recipient is (due_at, id)
    next_attempt_at: datetime
    attempts: int = 0
    max_attempts: int = 8
    sender_name: str | None = None
    messaging_type: str | None = None  # what the policy decided at send time
    sent_tag: str | None = None
    reason_code: str | None = None  # why blocked/failed/dead (policy reason or Graph error)
    reason: str | None = None  # a sentence an agent understands
    last_error_code: int | None = None
    graph_message_id: str | None = None
    graph_recipient_id: str | None = None  # the Send API's `recipient_id` (a private reply's: the commenter's PSID)
    sent_at: datetime | None = None
    claimed_by: str | None = None
    lease_until: datetime | None = None
    delivered_at: datetime | None = None  # Meta's delivery receipt (its watermark), for SENT messages
    read_at: datetime | None = None  # Meta's read receipt; a read message was delivered too

    def with_changes(self, **changes: Any) -> OutboxMessage:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif isinstance(value, Enum):
                value = value.value
            elif isinstance(value, Mapping):
                value = dict(value)
            data[name] = value
        return data


@dataclass(frozen=True)
class Outcome:
    """What happened to a claimed message; the store applies it atomically."""

    status: Status  # SENT, BLOCKED, FAILED, DEAD, or PENDING (retry later)
    next_attempt_at: datetime | None = None
    messaging_type: str | None = None
    sent_tag: str | None = None
    reason_code: str | None = None
    reason: str | None = None
    last_error_code: int | None = None
    graph_message_id: str | None = None
    sent_at: datetime | None = None
    graph_recipient_id: str | None = None
    # When a final outcome was reached (the hour `send_hours` counts it in); None: `sent_at`, else the store's clock.
    finished_at: datetime | None = None


@dataclass(frozen=True)
class PageState:
    page_id: str
    paused: bool = False
    paused_reason: str | None = None
    paused_at: datetime | None = None
    utility_templates: bool = False


@dataclass(frozen=True)
class SendSlot:
    """A page's send slot (`OutboxStore.reserve_send_slot`, decided by outbox/rate.py). `granted`: send at
    `send_at`, the store recorded it. Not granted: the first free slot, `send_at`, is too late; nothing recorded."""

    granted: bool
    send_at: datetime


@dataclass(frozen=True)
class Alert:
    id: int
    page_id: str
    code: str
    message: str
    created_at: datetime


@dataclass(frozen=True)
class MessageFilter:
    recipient_id: str | None = None
    page_id: str | None = None
    statuses: Sequence[Status] = field(default_factory=tuple)
    limit: int = 100
    before_id: int | None = None  # pagination: newest first, ids below this


# A batch the outbox takes in one call (`enqueue_many`, `get_many`, `unreachable`): one transaction, one query.
MAX_BATCH = 1000
# Receipts (Meta's `message_deliveries` and `message_reads`): `record_receipt`'s kinds.
RECEIPT_DELIVERY, RECEIPT_READ = "delivery", "read"
RECEIPT_KINDS = (RECEIPT_DELIVERY, RECEIPT_READ)
# Meta's watermark and our `sent_at` come from two clocks: a message sent up to this long after the watermark is
# still covered by it.
RECEIPT_CLOCK_SLACK = timedelta(seconds=2)
# `unreachable`'s reason: the person blocked the page or cannot be messaged (Graph error 551 and its kin).
UNREACHABLE_BLOCKED = "blocked"
# `last_user_text` keeps this many characters of the person's last message.
USER_TEXT_LIMIT = 500


def user_text_excerpt(text: str | None) -> str | None:
    """What the store keeps of a person's message: line breaks and tabs become spaces, NUL and other control
    characters go, the first `USER_TEXT_LIMIT` characters; nothing left: None."""
    if not text:
        return None
    kept = "".join(
        " " if char in "\n\r\t" else char
        for char in text
        if char in "\n\r\t" or unicodedata.category(char) != "Cc"
    )[:USER_TEXT_LIMIT]
    return kept if kept.strip() else None


def check_batch(items: Sequence[Any], what: str) -> None:
    if len(items) > MAX_BATCH:
        raise OutboxInputError("batch_too_large", f"at most {MAX_BATCH} {what} per call", limit=MAX_BATCH)


def check_key_prefix(prefix: str) -> str:
    """A prefix of idempotency keys to cancel by: never empty (that would be every pending message)."""
    if not isinstance(prefix, str) or not prefix.strip():
        raise OutboxInputError("invalid_key_prefix", "a key prefix to cancel by must not be empty")
    return prefix


def check_receipt_kind(kind: str) -> str:
    if kind not in RECEIPT_KINDS:
        raise OutboxInputError("invalid_receipt", f"a receipt is 'delivery' or 'read', not {kind!r}")
    return kind


class ConversationSeen(NamedTuple):
    """A conversation whose user wrote: `last_user_message_at` is Meta's time of their last message (the windows
    count from it); `recorded_at` is when the store recorded that time (set by the store, never by the caller): the
    contacts' sync follows `recorded_at`, so a message handled late (Meta redelivering after an outage, a backlog,
    the ingest journal replayed) is still read. `last_text` and `message_count` let the console search by the last
message and count the unread ones."""

    page_id: str
    user_id: str
    last_user_message_at: datetime
    recorded_at: datetime
    last_text: str | None = None  # the text of their last message (first 500 characters), None: not text
    message_count: int = 0  # how many messages they wrote on this page (one per `record_user_message`)


# --- the reports' counters (issue 14), kept at write time by UTC hour ------------------------------------------

# A person's message this long or longer after their latest one starts a new conversation.
CONVERSATION_GAP = timedelta(hours=24)


@dataclass(frozen=True)
class MessageHour:
    """What people wrote to a page in one UTC hour (`hour`, aware, its start), by Meta's time of each message:
    `messages`; `conversations` started (the person's first message on the page, or one `CONVERSATION_GAP` or more
    after their latest; a late message never starts one); `new_people` (their first message on the page)."""

    hour: datetime
    page_id: str
    messages: int
    conversations: int
    new_people: int


@dataclass(frozen=True)
class MessageDay:
    """`MessageHour`s summed over one local day (`day`) and every page asked for: the hours whose start plus one
    UTC offset falls on `day` (`OutboxStore.message_days`; the reports over a long period)."""

    day: date
    messages: int
    conversations: int
    new_people: int


@dataclass(frozen=True)
class SendHour:
    """How many of a page's messages reached one final outcome in one UTC hour (`hour`, aware, its start): each
    message counts once, as its final status (sent, blocked, failed, dead, cancelled) with its `reason_code` and
    Meta's `error_code` (None: none), at the hour it became final. A failed message retried and then sent counts
    once, as sent."""

    hour: datetime
    page_id: str
    purpose: Purpose
    status: Status
    reason_code: str | None
    error_code: int | None
    n: int


def check_offset(offset_seconds: int) -> int:
    """A UTC offset in seconds (east positive) for `message_days`: under a day either way."""
    if not -86_400 < offset_seconds < 86_400:
        raise OutboxInputError("invalid_offset", f"a UTC offset is under a day, not {offset_seconds} s")
    return int(offset_seconds)


def local_day_cut(offset_seconds: int) -> int:
    """The first UTC hour of the day whose start plus `offset_seconds` (one fixed UTC offset) is on another date
    than the hour's UTC date: the next one for an offset east of UTC, the UTC date itself (not the day before) for
    one west of it. The stores count `utc_day, hour >= cut` in SQL; `local_day` names the day."""
    offset = check_offset(offset_seconds)
    return -(offset // 3600) if offset < 0 else -((offset - 86_400) // 3600)


def local_day(utc_day: date, late: bool, offset_seconds: int) -> date:
    """The local day of the hours of `utc_day` before (`late` False) or from (`late` True) `local_day_cut`."""
    if offset_seconds < 0:
        return utc_day if late else utc_day - timedelta(days=1)
    return utc_day + timedelta(days=1) if late else utc_day


def hour_start(at: datetime) -> datetime:
    """The start of the UTC hour `at` falls in: the counters' bucket."""
    return utc(at).replace(minute=0, second=0, microsecond=0)


def user_message_counts(previous: datetime | None, at: datetime) -> tuple[int, int]:
    """(conversations, new_people) a person's message at `at` adds, given their latest message on the page before
    it (None: none). A message older than `previous` (late, out of order) adds neither."""
    if previous is None:
        return 1, 1
    return (1 if utc(at) >= utc(previous) + CONVERSATION_GAP else 0), 0


def check_period(since: datetime, until: datetime) -> tuple[datetime, datetime]:
    """A report's period as aware UTC: `since` inclusive, `until` exclusive, not reversed."""
    if since.tzinfo is None or until.tzinfo is None:
        raise OutboxInputError("invalid_period", "a period needs timezone-aware times")
    since, until = utc(since), utc(until)
    if until < since:
        raise OutboxInputError("invalid_period", "a period cannot end before it starts")
    return since, until


class OutboxStore(Protocol):
    """One contract for the in-memory fake, SQLite and PostgreSQL (tests/contract runs all three)."""

    def enqueue(self, new: NewMessage, now: datetime) -> tuple[OutboxMessage, bool]:
        """Write the message (pending). Returns (message, created); an existing idempotency key returns
        the stored message and False, whatever its state. A PRIVATE_REPLY to a comment that already has one
        (not cancelled, not blocked), under another key, is refused: OutboxInputError
        `private_reply_already_sent` (Meta allows one per comment)."""
        ...

    def enqueue_many(self, news: Sequence[NewMessage], now: datetime) -> list[tuple[OutboxMessage, bool]]:
        """`enqueue` for each of up to `MAX_BATCH` messages, in one transaction, results in the same order. A message
        refused (OutboxInputError, a second private reply) refuses the whole batch: nothing is written."""
        ...

    def get(self, message_id: int) -> OutboxMessage: ...

    def get_many(self, message_ids: Sequence[int]) -> dict[int, OutboxMessage]:
        """Up to `MAX_BATCH` messages by id, in one query; unknown ids are absent."""
        ...

    def find(self, query: MessageFilter) -> list[OutboxMessage]:
        """Newest first."""
        ...

    def claim(self, worker_id: str, now: datetime, lease_seconds: float, limit: int) -> list[OutboxMessage]:
        """Atomically move up to `limit` due messages to SENDING with a lease. Only the head of each
        recipient's queue (lowest (due_at, id) not terminal) is eligible, so a recipient's second
        message never goes before the first is sent or given up; paused pages are skipped."""
        ...

    def complete(self, message_id: int, worker_id: str, outcome: Outcome) -> OutboxMessage:
        """Apply an outcome to a message this worker holds (attempts + 1). A worker whose lease was
        taken over gets InvalidTransition and must not touch the message. A final outcome is counted in
        `send_hours` at the hour of `outcome.finished_at` (None: its `sent_at`, else the store's clock), in the same
        transaction."""
        ...

    def reclaim_expired(self, now: datetime) -> int:
        """SENDING rows whose lease ran out (a crashed worker) go back to PENDING."""
        ...

    def release(self, message_id: int, worker_id: str, not_before: datetime) -> OutboxMessage:
        """Give back a message this worker holds, unsent (its page has no send slot for it soon): PENDING,
        due again at `not_before`, its attempts and its place in its recipient's queue unchanged. A worker
        that does not hold it gets InvalidTransition."""
        ...

    def reserve_send_slot(
        self, page_id: str, now: datetime, rate: float, not_after: datetime | None = None
    ) -> SendSlot:
        """The next send slot of a lane (`page_id`: a page, or a page's audio and video lane, `<page_id>#audio_video`)
        at `rate` sends per second (`outbox.rate.next_send_slot` decides from
        the latest slot granted), recorded if it starts by `not_after`. Atomic: workers in any number of
        processes on one store never get slots closer than the rate allows."""
        ...

    def cancel(self, message_id: int, now: datetime) -> OutboxMessage:
        """Only a PENDING message can be cancelled (counted in `send_hours` at `now`)."""
        ...

    def retry(self, message_id: int, now: datetime) -> OutboxMessage:
        """A DEAD or FAILED message goes back to PENDING, due now, with its attempts reset; its outcome leaves
        `send_hours` (it counts again when it becomes final again)."""
        ...

    def record_user_message(self, page_id: str, user_id: str, at: datetime, text: str | None = None) -> None:
        """The 24-hour window counts only the user's own messages, per page. When `at` is newer than what was
        kept, the store also stamps the conversation's `recorded_at` with its own clock (`conversations_since`) and
        keeps `text` as the last message's (`user_text_excerpt`; None, a reaction: the kept text stays). Every call
        counts one message (`ConversationSeen.message_count`), a late one too, and adds to `message_hours` at the hour
        of `at` in the same transaction (`user_message_counts`)."""
        ...

    def record_receipt(
        self, page_id: str, recipient_id: str, kind: str, watermark: datetime | None, mids: Sequence[str],
        now: datetime,
    ) -> int:
        """Meta's delivery or read receipt for the SENT messages to `recipient_id` on `page_id`; how many changed.
        delivery: `delivered_at` = watermark (None: `now`) where `graph_message_id` is in `mids` or `sent_at` is
        at most the watermark + `RECEIPT_CLOCK_SLACK`, and not delivered yet. read: `read_at` = watermark where
        `sent_at` is at most the watermark + slack and not read yet, and `delivered_at` = watermark if it had none
        (a read message was delivered). A read without a watermark changes nothing."""
        ...

    def unreachable(self, page_id: str, recipient_ids: Sequence[str]) -> dict[str, str]:
        """Of up to `MAX_BATCH` recipients, those the page cannot reach: their latest message that went to Meta
        (sent, failed or dead, by the time of its last attempt) FAILED with an error meaning the person cannot be
        messaged (`outbox.store.UNREACHABLE_ERROR_CODES`), and they have not written since.
        psid → `UNREACHABLE_BLOCKED`."""
        ...

    def last_user_message_at(self, page_id: str, user_id: str) -> datetime | None: ...

    def last_user_messages(self, page_id: str, user_ids: Sequence[str]) -> dict[str, datetime]:
        """`last_user_message_at` of up to `MAX_BATCH` users of one page, in one query; users who never wrote are
        absent."""
        ...

    def cancel_pending_by_key_prefix(self, prefix: str, now: datetime) -> int:
        """Every PENDING message whose idempotency key starts with `prefix` (not empty) → CANCELLED, in one
        statement (a broadcast's cancel: `broadcast:{id}:`). Claimed, sent or final messages are left alone. How
        many were cancelled (each counted in `send_hours` at `now`)."""
        ...

    def message_hours(self, page_id: str | None, since: datetime, until: datetime) -> list[MessageHour]:
        """The hours starting in [`since`, `until`) with messages from people, of `page_id` (None: every page, one
        row per hour and page), in order of hour then page."""
        ...

    def message_days(self, page_id: str | None, since: datetime, until: datetime,
                     offset_seconds: int) -> list[MessageDay]:
        """`message_hours` summed per local day in the store, for the hours starting in [`since`, `until`) that all
        have one UTC offset (`offset_seconds`, east positive, under a day; a daylight-saving zone's period is cut
        where its offset changes: `reports.model.Period.offset_spans`): an hour's day is its start plus the offset.
        By day; every page asked for in one row."""
        ...

    def message_hours_since(self) -> datetime | None:
        """When `message_hours` began counting on an outbox that already held people's messages (the upgrade that
        added it); None when it has counted from the outbox's start. Days before it have no counts, not zero."""
        ...

    def send_hours(self, page_id: str | None, since: datetime, until: datetime) -> list[SendHour]:
        """The final outcomes of the hours starting in [`since`, `until`), of `page_id` (None: every page), one row
        per hour, page, purpose, status, reason and error code, in that order; keys at zero are left out."""
        ...

    def conversations_since(self, after: datetime | None, limit: int) -> list[ConversationSeen]:
        """The conversations whose user's last message was recorded after `after` (None: all), in the order they
        were recorded, ties by page and user: the contacts' sync reads who wrote. The time is the store's own
        (`recorded_at`), not Meta's, so a late webhook is not behind the reader's cursor."""
        ...

    def conversations_recorded_between(self, since: datetime, until: datetime, limit: int,
                                       after: ConversationSeen | None = None) -> list[ConversationSeen]:
        """The conversations whose user's last message was recorded in [`since`, `until`), in the order of
        `conversations_since`, after the row `after` (the last of the previous page; None: from `since`): the
        satisfaction survey after the bot resolved a conversation reads who last wrote N minutes ago (the index on
        `recorded_at`, so an hour of a busy page is no scan)."""
        ...

    def page(self, page_id: str) -> PageState: ...

    def pause_page(self, page_id: str, reason: str, now: datetime) -> None:
        """Stop claiming this page's messages (token invalid) and raise an alert."""
        ...

    def resume_page(self, page_id: str) -> None: ...

    def set_utility_templates(self, page_id: str, enabled: bool) -> None: ...

    def alerts(self, limit: int = 100) -> list[Alert]: ...

    def counts(self) -> dict[str, int]:
        """Messages per status (for health and benchmarks)."""
        ...

    def close(self) -> None: ...
