"""The outbox stores: an in-memory fake, SQLite and PostgreSQL, one contract (`OutboxStore`).

The SQL lives in `outbox/sql/<backend>/`: numbered migrations and `queries.sql` (named queries).
Stores are synchronous and thread-safe; async callers run them in a thread executor.

The claim, the heart of the outbox: a recipient's messages go out one at a time and in order,
(due_at, id). Only the head of a recipient's queue is claimable: the pending message with the
lowest (due_at, id), while no message of that recipient is in flight (SENDING), on a page that is
not paused (the `claimable_heads` view). Each backend makes "read the heads, mark them SENDING"
atomic its own way:

- memory: one lock around everything.
- SQLite: `BEGIN IMMEDIATE` takes the database's single write lock before reading, so the claim
  reads the latest committed state and nobody writes until it commits (other processes too).
- PostgreSQL: two statements in one READ COMMITTED transaction. First lock the recipients'
  `conversations` rows `FOR NO KEY UPDATE SKIP LOCKED` (claims of one recipient are serialized; a
  worker never waits for another); then, in a second statement whose snapshot is taken after those
  locks, `WITH heads AS MATERIALIZED (SELECT … FOR UPDATE SKIP LOCKED) UPDATE … RETURNING *` the heads. A single
  statement would not be enough: its snapshot is taken before it acquires the locks, so it could
  decide on a head another worker claimed and committed meanwhile. See `PostgresOutboxStore`.

Whatever the claim decides, a partial unique index on SQLite and PostgreSQL refuses a second
SENDING message for one recipient.

Choices the Protocol leaves open, the same in every store:

- `retry` makes a DEAD or FAILED message due now (due_at = next_attempt_at = now), not due at its
  original time: it joins the back of its recipient's queue, behind what was queued since, instead
  of jumping ahead of messages the recipient is waiting for (its old place is gone anyway: later
  messages may have been sent meanwhile). Its reason fields stay until the next outcome.
- `complete` writes every field of the outcome (None clears): an outcome describes the latest
  attempt. next_attempt_at is only replaced when the outcome gives one.
- `pause_page` on a page already paused changes nothing and raises no second alert (several
  workers hit the same invalid token); `resume_page` then a new pause raises a new one.
- `counts` lists every status, zero included.
- `reserve_send_slot` keeps one row per lane (a page, or a page's audio and video: `outbox.worker.send_lane`;
  the latest slot granted); `outbox/rate.py` decides, the
  store only makes read-decide-record atomic: memory, the lock; SQLite, `BEGIN IMMEDIATE`; PostgreSQL,
  the page's row locked by an upsert until COMMIT. A slot not granted records nothing.
- `release` sets next_attempt_at to `not_before` and leaves due_at and attempts alone.

The reports' counters (issue 14) are kept at write time, in the transaction of the event they count, by UTC hour:
`record_user_message` adds to `message_hours`; every change of a message into a final status (complete, cancel, the
cancel by key prefix) sets its `finished_at` and adds 1 to its outcome in `send_hours`, and every change out of one
(retry) takes that 1 back from the same key and clears `finished_at`. The key is read from the row itself
(`count_send`), so what a retry takes back is exactly what was added.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from core.postgres import create_schema_of
from core.sqlite import SchemaTooNew, SQLiteFile, WALUnavailable, load_migrations, load_queries
from meta.errors import META_ERRORS, SUBCODE_ALIASES, Kind, meta_error
from outbox.model import (
    RECEIPT_CLOCK_SLACK,
    RECEIPT_DELIVERY,
    TERMINAL,
    UNREACHABLE_BLOCKED,
    Alert,
    ConversationSeen,
    InvalidTransition,
    MessageDay,
    MessageFilter,
    MessageHour,
    NewMessage,
    NotFound,
    OutboxError,
    OutboxInputError,
    OutboxMessage,
    OutboxStore,
    Outcome,
    PageState,
    Purpose,
    SenderKind,
    SendHour,
    SendSlot,
    Status,
    check_batch,
    check_key_prefix,
    check_offset,
    check_period,
    check_receipt_kind,
    hour_start,
    local_day,
    local_day_cut,
    user_message_counts,
    user_text_excerpt,
    utc,
)
from outbox.rate import next_send_slot
from outbox.wording import explain_private_reply_already_sent

SQL_DIR = Path(__file__).parent / "sql"

# What `complete` accepts: a final state, or PENDING to try again at `next_attempt_at`.
OUTCOME_STATUSES = frozenset({Status.SENT, Status.BLOCKED, Status.FAILED, Status.DEAD, Status.PENDING})
RETRYABLE = frozenset({Status.DEAD, Status.FAILED})
TOKEN_INVALID = "token_invalid"  # the alert raised when a page is paused
POSTGRES_CONNECT_TIMEOUT_SECONDS = 5  # a server that is down answers at once; one that hangs must not block a worker


class StoreUnavailable(OutboxError):
    """The database cannot be reached right now (restarting, failing over, network): worth retrying.

    The transaction was rolled back, unless the connection broke during COMMIT itself: then it may have
    committed, which the outbox tolerates (an enqueue is idempotent by key, a claim ends with its lease,
    a second `complete` of the same outcome finds the message no longer held)."""

# --- shared pure parts -----------------------------------------------------------------------


def new_message_record(new: NewMessage, now: datetime) -> tuple[OutboxMessage, str]:
    """The row `enqueue` writes (id 0 until stored) and its `message` as JSON text."""
    if not new.page_id or not new.recipient_id:
        raise OutboxInputError("missing_recipient", "a message needs a page_id and a recipient_id")
    if new.max_attempts < 1:
        raise OutboxInputError("invalid_max_attempts", "max_attempts must be at least 1")
    if not isinstance(new.message, Mapping):
        raise OutboxInputError("invalid_message", "message must be a Send API message object")
    try:
        message_json = json.dumps(dict(new.message), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise OutboxInputError("invalid_message", f"message is not JSON: {exc}") from exc
    created_at = utc(now)
    due_at = utc(new.not_before) if new.not_before is not None else created_at
    record = OutboxMessage(
        id=0,
        page_id=new.page_id,
        recipient_id=new.recipient_id,
        message=json.loads(message_json),
        sender=SenderKind(new.sender),
        purpose=Purpose(new.purpose),
        tag=new.tag,
        promotional=bool(new.promotional),
        idempotency_key=new.idempotency_key if new.idempotency_key is not None else str(uuid.uuid4()),
        status=Status.PENDING,
        created_at=created_at,
        due_at=due_at,
        next_attempt_at=due_at,
        attempts=0,
        max_attempts=new.max_attempts,
        sender_name=new.sender_name,
    )
    return record, message_json


# Meta allows one private reply per comment; a second enqueue, whatever its idempotency key, is refused with this.
PRIVATE_REPLY_ALREADY_SENT = "private_reply_already_sent"
# The index that makes it atomic in SQLite and PostgreSQL (sql/*/00N_comment_replies.sql).
ONE_PRIVATE_REPLY_INDEX = "messages_one_private_reply_per_comment"
SQLITE_ONE_PRIVATE_REPLY_COLUMNS = "messages.page_id, messages.recipient_id"
# Statuses that mean "that private reply never reached Meta": a new one may take its place.
NOT_A_PRIVATE_REPLY_YET = frozenset({Status.CANCELLED, Status.BLOCKED})


def private_reply_already_sent(record: OutboxMessage) -> OutboxInputError:
    """The refusal of a second private reply to one comment (`record.recipient_id` is the comment id)."""
    es, en = explain_private_reply_already_sent()
    error = OutboxInputError(PRIVATE_REPLY_ALREADY_SENT, en, page_id=record.page_id, comment_id=record.recipient_id)
    error.message_es = es
    return error


def check_outcome(outcome: Outcome) -> None:
    if outcome.status not in OUTCOME_STATUSES:
        raise OutboxInputError(
            "invalid_outcome", f"an outcome cannot be {getattr(outcome.status, 'value', outcome.status)}"
        )
    if Status(outcome.status) is Status.PENDING and outcome.next_attempt_at is None:
        raise OutboxInputError("invalid_outcome", "a retry-later outcome (pending) needs next_attempt_at")


def queue_position(message: OutboxMessage) -> tuple[datetime, int]:
    """A recipient's messages go out in this order."""
    return (message.due_at, message.id)


def check_limit(limit: int) -> int:
    if limit < 0:
        raise OutboxInputError("invalid_limit", "limit must not be negative")
    return limit


def to_utc(value: Any) -> datetime | None:
    """A time read back from a database (ISO text or a datetime) as aware UTC."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return utc(value)


def required_utc(value: Any) -> datetime:
    found = to_utc(value)
    if found is None:
        raise OutboxError("a required time is missing in the database")
    return found


def recording_time() -> datetime:
    """When a store records a user's message (`ConversationSeen.recorded_at`): the store's own clock, on purpose not
    a `now` passed in, so the contacts' sync reads conversations in the order they were written."""
    return datetime.now(timezone.utc)


def finished_time(outcome: Outcome) -> datetime | None:
    """When a final outcome was reached (None: a retry later, not final): the outcome's own time, else its send time,
    else the store's clock (a worker's outcome says when it sent, not when it gave up)."""
    if Status(outcome.status) not in TERMINAL:
        return None
    return utc(outcome.finished_at or outcome.sent_at or recording_time())


# A send_hours key: hour, page_id, purpose, status, reason_code ('' none), error_code (0 none), as the SQL stores'.
SendHourKey = tuple[datetime, str, str, str, str, int]


def send_hour_key(message: OutboxMessage, finished_at: datetime) -> SendHourKey:
    return (hour_start(finished_at), message.page_id, message.purpose.value, message.status.value,
            message.reason_code or "", message.last_error_code or 0)


def message_hour_from_row(row: Any) -> MessageHour:
    return MessageHour(required_utc(row["hour"]), row["page_id"], int(row["messages"]), int(row["conversations"]),
                       int(row["new_people"]))


def send_hour_from_row(row: Any) -> SendHour:
    return SendHour(required_utc(row["hour"]), row["page_id"], Purpose(row["purpose"]), Status(row["status"]),
                    row["reason_code"] or None, int(row["error_code"]) or None, int(row["n"]))


def message_days_from_rows(rows: Sequence[Any], offset_seconds: int) -> list[MessageDay]:
    """The `message_days` query's rows (UTC date, whether the hours are from `local_day_cut` on, sums) as local
    days, by day."""
    days: dict[date, tuple[int, int, int]] = {}
    for row in rows:
        utc_day = row["utc_day"]
        day = local_day(date.fromisoformat(utc_day) if isinstance(utc_day, str) else utc_day, bool(row["late"]),
                        offset_seconds)
        counted = days.get(day, (0, 0, 0))
        days[day] = (counted[0] + int(row["messages"]), counted[1] + int(row["conversations"]),
                     counted[2] + int(row["new_people"]))
    return [MessageDay(day, *counted) for day, counted in sorted(days.items())]


def day_params(page_id: str | None, since: datetime, until: datetime, offset_seconds: int,
               time: Callable[[datetime | None], Any]) -> dict[str, Any]:
    """`message_days`' parameters."""
    return {**period_params(page_id, since, until, time), "cut": local_day_cut(offset_seconds)}


def period_params(page_id: str | None, since: datetime, until: datetime,
                  time: Callable[[datetime | None], Any]) -> dict[str, Any]:
    """`message_hours` / `send_hours`' parameters."""
    since, until = check_period(since, until)
    return {"page_id": page_id, "since": time(since), "until": time(until)}


def recorded_cursor(since: datetime, after: ConversationSeen | None) -> tuple[datetime, str, str]:
    """Where a page of `conversations_recorded_between` starts: after the previous page's last row, else at `since`
    (page and user ids are never empty, so every row recorded at `since` comes after `(since, "", "")`)."""
    if after is None:
        return since, "", ""
    return utc(after.recorded_at), after.page_id, after.user_id


def conversation_seen_from_row(row: Any) -> ConversationSeen:
    return ConversationSeen(row["page_id"], row["user_id"], required_utc(row["last_user_message_at"]),
                            required_utc(row["user_message_recorded_at"]), row["last_user_text"],
                            int(row["user_message_count"] or 0))


# Graph errors meaning "this person cannot be messaged" (551 "This person isn't available right now", and a subcode
# that names it: meta/errors.py's catalogue, kind RECIPIENT_UNAVAILABLE): `unreachable` reads them in
# `last_error_code`.
UNREACHABLE_ERROR_CODES = tuple(sorted(
    code
    for code in {code for code, _ in META_ERRORS} | set(SUBCODE_ALIASES)
    if (known := meta_error(code)) is not None and known.kind is Kind.RECIPIENT_UNAVAILABLE
))
# The messages that went to Meta: the latest of them says whether the person could be reached.
REACHED_META = (Status.SENT, Status.FAILED, Status.DEAD)


def attempted_at(message: OutboxMessage) -> datetime:
    """When a message that went to Meta was last tried: its send time, else when its last attempt was due."""
    return message.sent_at or message.next_attempt_at


def receipt_params(kind: str, watermark: datetime | None, mids: Sequence[str], now: datetime) -> dict[str, Any]:
    """What a receipt matches and sets (`OutboxStore.record_receipt`): `covers` None matches by mids only."""
    check_receipt_kind(kind)
    now = utc(now)
    mark = utc(watermark) if watermark is not None else None
    return {
        "kind": kind,
        "mids": [str(mid) for mid in mids if mid],
        "covers": mark + RECEIPT_CLOCK_SLACK if mark is not None else None,
        "at": mark if mark is not None else now,
    }


def receipt_query(
    kind: str, watermark: datetime | None, mids: Sequence[str], now: datetime
) -> tuple[str, dict[str, Any]] | None:
    """The named query a receipt runs and its parameters (`receipt_params`); None when nothing can match (a read
    without a watermark). `ReceiptsStore.record_receipt`'s prelude, for every store."""
    params = receipt_params(kind, watermark, mids, now)
    if kind != RECEIPT_DELIVERY and params["covers"] is None:
        return None
    return ("delivery_receipt" if kind == RECEIPT_DELIVERY else "read_receipt"), params


def key_prefix_params(prefix: str, now: datetime) -> dict[str, Any]:
    """`cancel_pending_by_key_prefix`'s parameters: the prefix, its LIKE pattern (wildcards escaped with `\\`) and
    the first text after every key with the prefix (an index range on SQLite)."""
    prefix = check_key_prefix(prefix)
    utc(now)
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return {"prefix": prefix, "pattern": escaped + "%", "upper": prefix[:-1] + chr(ord(prefix[-1]) + 1)}


def message_from_row(row: Any) -> OutboxMessage:
    """A `messages` row (sqlite3.Row or a dict) as an OutboxMessage."""
    payload = row["message"]
    return OutboxMessage(
        id=int(row["id"]),
        page_id=row["page_id"],
        recipient_id=row["recipient_id"],
        message=json.loads(payload) if isinstance(payload, (str, bytes)) else payload,
        sender=SenderKind(row["sender"]),
        purpose=Purpose(row["purpose"]),
        tag=row["tag"],
        promotional=bool(row["promotional"]),
        idempotency_key=row["idempotency_key"],
        status=Status(row["status"]),
        created_at=required_utc(row["created_at"]),
        due_at=required_utc(row["due_at"]),
        next_attempt_at=required_utc(row["next_attempt_at"]),
        attempts=int(row["attempts"]),
        max_attempts=int(row["max_attempts"]),
        sender_name=row["sender_name"],
        messaging_type=row["messaging_type"],
        sent_tag=row["sent_tag"],
        reason_code=row["reason_code"],
        reason=row["reason"],
        last_error_code=row["last_error_code"],
        graph_message_id=row["graph_message_id"],
        graph_recipient_id=row["graph_recipient_id"],
        sent_at=to_utc(row["sent_at"]),
        claimed_by=row["claimed_by"],
        lease_until=to_utc(row["lease_until"]),
        delivered_at=to_utc(row["delivered_at"]),
        read_at=to_utc(row["read_at"]),
    )


def page_from_row(page_id: str, row: Any | None) -> PageState:
    if row is None:
        return PageState(page_id)
    return PageState(
        page_id=row["page_id"],
        paused=bool(row["paused"]),
        paused_reason=row["paused_reason"],
        paused_at=to_utc(row["paused_at"]),
        utility_templates=bool(row["utility_templates"]),
    )


def alert_from_row(row: Any) -> Alert:
    return Alert(int(row["id"]), row["page_id"], row["code"], row["message"], required_utc(row["created_at"]))


def counts_from_rows(rows: Any) -> dict[str, int]:
    """Every status, zero included, so health checks and benchmarks see the same keys."""
    counts = {status.value: 0 for status in Status}
    for row in rows:
        counts[row["status"]] = int(row["count"])
    return counts


def transition_error(message: OutboxMessage, action: str) -> InvalidTransition:
    return InvalidTransition(f"cannot {action} message {message.id}: it is {message.status.value}")


def not_held_error(message: OutboxMessage, worker_id: str) -> InvalidTransition:
    """`complete` or `release` by a worker that no longer holds the message (its lease was taken over)."""
    return InvalidTransition(f"message {message.id} is not held by {worker_id} (it is {message.status.value})")


# --- in memory -------------------------------------------------------------------------------


class ReceiptsStore(ABC):
    """`record_receipt` written once for every store: what a receipt matches (`receipt_query`), then the store's own
    `_mark_received`."""

    @abstractmethod
    def _mark_received(self, query: str, params: dict[str, Any]) -> int:
        """Mark what a receipt covers: `query` names the SQL stores' query, `params` (`receipt_params` with page_id
        and recipient_id) what it matches and sets; the number of messages marked."""

    def record_receipt(
        self, page_id: str, recipient_id: str, kind: str, watermark: datetime | None, mids: Sequence[str],
        now: datetime,
    ) -> int:
        plan = receipt_query(kind, watermark, mids, now)
        if plan is None:
            return 0
        query, params = plan
        return self._mark_received(query, {"page_id": page_id, "recipient_id": recipient_id, **params})


class InMemoryOutboxStore(ReceiptsStore):
    """The fake: the same semantics as the SQL stores, one lock around plain dicts.

    Messages are kept as JSON text too, so a caller mutating what it passed in or got back never
    changes the stored message (as with a database)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: dict[int, OutboxMessage] = {}
        self._payloads: dict[int, str] = {}
        self._by_key: dict[str, int] = {}
        self._last_user_message: dict[tuple[str, str], datetime] = {}
        self._user_message_recorded: dict[tuple[str, str], datetime] = {}  # the store's own time (conversations_since)
        self._user_texts: dict[tuple[str, str], str | None] = {}
        self._user_message_counts: dict[tuple[str, str], int] = {}
        self._latest_recorded: datetime | None = None
        self._pages: dict[str, PageState] = {}
        self._alerts: list[Alert] = []
        self._latest_send_slots: dict[str, datetime] = {}
        self._finished_at: dict[int, datetime] = {}  # the messages' finished_at (final ones only)
        self._message_hours: dict[tuple[datetime, str], tuple[int, int, int]] = {}
        self._send_hours: dict[SendHourKey, int] = {}

    def _out(self, message: OutboxMessage) -> OutboxMessage:
        return message.with_changes(message=json.loads(self._payloads[message.id]))

    def _get(self, message_id: int) -> OutboxMessage:
        try:
            return self._messages[message_id]
        except KeyError:
            raise NotFound(f"no outbox message {message_id}") from None

    def _held(self, message_id: int, worker_id: str) -> OutboxMessage:
        message = self._get(message_id)
        if message.status is not Status.SENDING or message.claimed_by != worker_id:
            raise not_held_error(message, worker_id)
        return message

    def _put(self, message: OutboxMessage) -> OutboxMessage:
        self._messages[message.id] = message
        return self._out(message)

    def _put_counted(self, message: OutboxMessage, finished_at: datetime | None) -> OutboxMessage:
        """`_put` of a state change, with `send_hours` kept as the SQL stores keep it: what the message was leaves
        (if final), what it is now counts (if final, at `finished_at`)."""
        before = self._finished_at.pop(message.id, None)
        if before is not None:
            key = send_hour_key(self._messages[message.id], before)
            self._send_hours[key] = self._send_hours.get(key, 0) - 1
        if message.status in TERMINAL and finished_at is not None:
            self._finished_at[message.id] = finished_at
            key = send_hour_key(message, finished_at)
            self._send_hours[key] = self._send_hours.get(key, 0) + 1
        return self._put(message)

    def enqueue(self, new: NewMessage, now: datetime) -> tuple[OutboxMessage, bool]:
        record, message_json = new_message_record(new, now)
        with self._lock:
            return self._enqueue(record, message_json)

    def enqueue_many(self, news: Sequence[NewMessage], now: datetime) -> list[tuple[OutboxMessage, bool]]:
        check_batch(news, "messages")
        records = [new_message_record(new, now) for new in news]
        with self._lock:  # all or nothing, as a transaction: undo what this batch added when one is refused
            added: list[int] = []
            try:
                results = []
                for record, message_json in records:
                    message, created = self._enqueue(record, message_json)
                    if created:
                        added.append(message.id)
                    results.append((message, created))
                return results
            except BaseException:
                for message_id in added:
                    del self._by_key[self._messages.pop(message_id).idempotency_key]
                    del self._payloads[message_id]
                raise

    def _enqueue(self, record: OutboxMessage, message_json: str) -> tuple[OutboxMessage, bool]:
        existing = self._by_key.get(record.idempotency_key)
        if existing is not None:
            return self._out(self._messages[existing]), False
        if record.purpose is Purpose.PRIVATE_REPLY and any(
            message.purpose is Purpose.PRIVATE_REPLY
            and (message.page_id, message.recipient_id) == (record.page_id, record.recipient_id)
            and message.status not in NOT_A_PRIVATE_REPLY_YET
            for message in self._messages.values()
        ):
            raise private_reply_already_sent(record)
        message_id = len(self._messages) + 1
        self._by_key[record.idempotency_key] = message_id
        self._payloads[message_id] = message_json
        return self._put(record.with_changes(id=message_id)), True

    def get(self, message_id: int) -> OutboxMessage:
        with self._lock:
            return self._out(self._get(message_id))

    def get_many(self, message_ids: Sequence[int]) -> dict[int, OutboxMessage]:
        check_batch(message_ids, "ids")
        with self._lock:
            return {
                int(message_id): self._out(self._messages[int(message_id)])
                for message_id in message_ids
                if int(message_id) in self._messages
            }

    def find(self, query: MessageFilter) -> list[OutboxMessage]:
        limit = check_limit(query.limit)
        statuses = {Status(status) for status in query.statuses}
        with self._lock:
            found = [
                message
                for message in self._messages.values()
                if (query.page_id is None or message.page_id == query.page_id)
                and (query.recipient_id is None or message.recipient_id == query.recipient_id)
                and (not statuses or message.status in statuses)
                and (query.before_id is None or message.id < query.before_id)
            ]
            found.sort(key=lambda message: message.id, reverse=True)
            return [self._out(message) for message in found[:limit]]

    def claim(self, worker_id: str, now: datetime, lease_seconds: float, limit: int) -> list[OutboxMessage]:
        now = utc(now)
        lease_until = now + timedelta(seconds=lease_seconds)
        with self._lock:
            in_flight = {(m.page_id, m.recipient_id) for m in self._messages.values() if m.status is Status.SENDING}
            heads: dict[tuple[str, str], OutboxMessage] = {}
            for message in self._messages.values():
                lane = (message.page_id, message.recipient_id)
                if message.status is Status.PENDING and (
                    lane not in heads or queue_position(message) < queue_position(heads[lane])
                ):
                    heads[lane] = message
            claimable = sorted(
                (
                    head
                    for lane, head in heads.items()
                    if lane not in in_flight
                    and not self._page(head.page_id).paused
                    and head.due_at <= now
                    and head.next_attempt_at <= now
                ),
                key=queue_position,
            )[: max(limit, 0)]
            return [
                self._put(head.with_changes(status=Status.SENDING, claimed_by=worker_id, lease_until=lease_until))
                for head in claimable
            ]

    def complete(self, message_id: int, worker_id: str, outcome: Outcome) -> OutboxMessage:
        check_outcome(outcome)
        finished_at = finished_time(outcome)
        with self._lock:
            message = self._held(message_id, worker_id)
            return self._put_counted(
                message.with_changes(
                    status=Status(outcome.status),
                    attempts=message.attempts + 1,
                    next_attempt_at=(
                        utc(outcome.next_attempt_at) if outcome.next_attempt_at is not None else message.next_attempt_at
                    ),
                    messaging_type=outcome.messaging_type,
                    sent_tag=outcome.sent_tag,
                    reason_code=outcome.reason_code,
                    reason=outcome.reason,
                    last_error_code=outcome.last_error_code,
                    graph_message_id=outcome.graph_message_id,
                    graph_recipient_id=outcome.graph_recipient_id,
                    sent_at=utc(outcome.sent_at) if outcome.sent_at is not None else None,
                    claimed_by=None,
                    lease_until=None,
                ),
                finished_at,
            )

    def reclaim_expired(self, now: datetime) -> int:
        now = utc(now)
        with self._lock:
            expired = [
                message
                for message in self._messages.values()
                if message.status is Status.SENDING and message.lease_until is not None and message.lease_until < now
            ]
            for message in expired:
                self._put(message.with_changes(status=Status.PENDING, claimed_by=None, lease_until=None))
            return len(expired)

    def release(self, message_id: int, worker_id: str, not_before: datetime) -> OutboxMessage:
        not_before = utc(not_before)
        with self._lock:
            message = self._held(message_id, worker_id)
            return self._put(
                message.with_changes(
                    status=Status.PENDING, claimed_by=None, lease_until=None, next_attempt_at=not_before
                )
            )

    def reserve_send_slot(
        self, page_id: str, now: datetime, rate: float, not_after: datetime | None = None
    ) -> SendSlot:
        with self._lock:
            slot = next_send_slot(now, self._latest_send_slots.get(page_id), rate, not_after)
            if slot.granted:
                self._latest_send_slots[page_id] = slot.send_at
            return slot

    def cancel(self, message_id: int, now: datetime) -> OutboxMessage:
        now = utc(now)
        with self._lock:
            message = self._get(message_id)
            if message.status is not Status.PENDING:
                raise transition_error(message, "cancel")
            return self._put_counted(message.with_changes(status=Status.CANCELLED), now)

    def retry(self, message_id: int, now: datetime) -> OutboxMessage:
        now = utc(now)
        with self._lock:
            message = self._get(message_id)
            if message.status not in RETRYABLE:
                raise transition_error(message, "retry")
            return self._put_counted(
                message.with_changes(status=Status.PENDING, attempts=0, due_at=now, next_attempt_at=now), None
            )

    def record_user_message(self, page_id: str, user_id: str, at: datetime, text: str | None = None) -> None:
        at = utc(at)
        kept_text = user_text_excerpt(text)
        with self._lock:
            conversation = (page_id, user_id)
            self._user_message_counts[conversation] = self._user_message_counts.get(conversation, 0) + 1
            known = self._last_user_message.get(conversation)
            conversations, new_people = user_message_counts(known, at)
            hour = (hour_start(at), page_id)
            counted = self._message_hours.get(hour, (0, 0, 0))
            self._message_hours[hour] = (counted[0] + 1, counted[1] + conversations, counted[2] + new_people)
            if known is None or at > known:
                self._last_user_message[conversation] = at
                if kept_text is not None:
                    self._user_texts[conversation] = kept_text
                recorded = recording_time()
                if self._latest_recorded is not None and recorded <= self._latest_recorded:
                    recorded = self._latest_recorded + timedelta(microseconds=1)  # one clock tick, many writes
                self._latest_recorded = recorded
                self._user_message_recorded[(page_id, user_id)] = recorded

    def last_user_message_at(self, page_id: str, user_id: str) -> datetime | None:
        with self._lock:
            return self._last_user_message.get((page_id, user_id))

    def last_user_messages(self, page_id: str, user_ids: Sequence[str]) -> dict[str, datetime]:
        check_batch(user_ids, "users")
        with self._lock:
            return {user_id: self._last_user_message[(page_id, user_id)] for user_id in user_ids
                    if (page_id, user_id) in self._last_user_message}

    def cancel_pending_by_key_prefix(self, prefix: str, now: datetime) -> int:
        prefix = key_prefix_params(prefix, now)["prefix"]
        now = utc(now)
        with self._lock:
            found = [message for message in self._messages.values()
                     if message.status is Status.PENDING and message.idempotency_key.startswith(prefix)]
            for message in found:
                self._put_counted(message.with_changes(status=Status.CANCELLED), now)
        return len(found)

    def message_hours(self, page_id: str | None, since: datetime, until: datetime) -> list[MessageHour]:
        since, until = check_period(since, until)
        with self._lock:
            rows = [MessageHour(hour, page, *counted) for (hour, page), counted in self._message_hours.items()
                    if since <= hour < until and page_id in (None, page)]
        return sorted(rows, key=lambda row: (row.hour, row.page_id))

    def message_days(self, page_id: str | None, since: datetime, until: datetime,
                     offset_seconds: int) -> list[MessageDay]:
        offset = timedelta(seconds=check_offset(offset_seconds))
        days: dict[date, tuple[int, int, int]] = {}
        for row in self.message_hours(page_id, since, until):
            day = (row.hour + offset).date()
            counted = days.get(day, (0, 0, 0))
            days[day] = (counted[0] + row.messages, counted[1] + row.conversations, counted[2] + row.new_people)
        return [MessageDay(day, *counted) for day, counted in sorted(days.items())]

    def message_hours_since(self) -> datetime | None:
        return None  # an outbox in memory counts from its first message

    def send_hours(self, page_id: str | None, since: datetime, until: datetime) -> list[SendHour]:
        since, until = check_period(since, until)
        with self._lock:
            keys = sorted((key, n) for key, n in self._send_hours.items()
                          if n and since <= key[0] < until and page_id in (None, key[1]))
        return [SendHour(hour, page, Purpose(purpose), Status(status), reason or None, error or None, n)
                for (hour, page, purpose, status, reason, error), n in keys]

    def conversations_since(self, after: datetime | None, limit: int) -> list[ConversationSeen]:
        limit = check_limit(limit)
        with self._lock:
            rows = [ConversationSeen(page_id, user_id, self._last_user_message[(page_id, user_id)], recorded,
                                     self._user_texts.get((page_id, user_id)),
                                     self._user_message_counts.get((page_id, user_id), 0))
                    for (page_id, user_id), recorded in self._user_message_recorded.items()
                    if after is None or recorded > utc(after)]
        return sorted(rows, key=lambda row: (row.recorded_at, row.page_id, row.user_id))[:limit]

    def conversations_recorded_between(self, since: datetime, until: datetime, limit: int,
                                       after: ConversationSeen | None = None) -> list[ConversationSeen]:
        limit = check_limit(limit)
        since, until = utc(since), utc(until)
        cursor = recorded_cursor(since, after)
        with self._lock:
            rows = [ConversationSeen(page_id, user_id, self._last_user_message[(page_id, user_id)], recorded,
                                     self._user_texts.get((page_id, user_id)),
                                     self._user_message_counts.get((page_id, user_id), 0))
                    for (page_id, user_id), recorded in self._user_message_recorded.items()
                    if since <= recorded < until and (recorded, page_id, user_id) > cursor]
        return sorted(rows, key=lambda row: (row.recorded_at, row.page_id, row.user_id))[:limit]

    def _mark_received(self, query: str, params: dict[str, Any]) -> int:
        page_id, recipient_id, kind = params["page_id"], params["recipient_id"], params["kind"]
        covers: datetime | None = params["covers"]
        mark: datetime = params["at"]
        changed = 0
        with self._lock:
            for message in list(self._messages.values()):
                if (message.page_id, message.recipient_id, message.status) != (page_id, recipient_id, Status.SENT):
                    continue
                covered = covers is not None and message.sent_at is not None and message.sent_at <= covers
                if kind == RECEIPT_DELIVERY:
                    if message.delivered_at is None and (covered or message.graph_message_id in params["mids"]):
                        self._put(message.with_changes(delivered_at=mark))
                        changed += 1
                elif message.read_at is None and covered:
                    self._put(message.with_changes(read_at=mark, delivered_at=message.delivered_at or mark))
                    changed += 1
        return changed

    def unreachable(self, page_id: str, recipient_ids: Sequence[str]) -> dict[str, str]:
        check_batch(recipient_ids, "recipients")
        wanted = set(recipient_ids)
        with self._lock:
            latest: dict[str, OutboxMessage] = {}
            for message in self._messages.values():
                if message.page_id != page_id or message.recipient_id not in wanted:
                    continue
                if message.status not in REACHED_META:
                    continue
                known = latest.get(message.recipient_id)
                if known is None or (attempted_at(message), message.id) > (attempted_at(known), known.id):
                    latest[message.recipient_id] = message
            found = {}
            for recipient_id, message in latest.items():
                wrote = self._last_user_message.get((page_id, recipient_id))
                if (message.status is Status.FAILED and message.last_error_code in UNREACHABLE_ERROR_CODES
                        and (wrote is None or wrote <= attempted_at(message))):
                    found[recipient_id] = UNREACHABLE_BLOCKED
        return found

    def _page(self, page_id: str) -> PageState:
        return self._pages.get(page_id, PageState(page_id))

    def page(self, page_id: str) -> PageState:
        with self._lock:
            return self._page(page_id)

    def pause_page(self, page_id: str, reason: str, now: datetime) -> None:
        now = utc(now)
        with self._lock:
            state = self._page(page_id)
            if state.paused:
                return
            self._pages[page_id] = PageState(page_id, True, reason, now, state.utility_templates)
            self._alerts.append(Alert(len(self._alerts) + 1, page_id, TOKEN_INVALID, reason, now))

    def resume_page(self, page_id: str) -> None:
        with self._lock:
            self._pages[page_id] = PageState(page_id, utility_templates=self._page(page_id).utility_templates)

    def set_utility_templates(self, page_id: str, enabled: bool) -> None:
        with self._lock:
            state = self._page(page_id)
            self._pages[page_id] = PageState(page_id, state.paused, state.paused_reason, state.paused_at, enabled)

    def alerts(self, limit: int = 100) -> list[Alert]:
        limit = check_limit(limit)
        with self._lock:
            return list(reversed(self._alerts))[:limit]

    def counts(self) -> dict[str, int]:
        with self._lock:
            return counts_from_rows(
                {"status": status.value, "count": sum(1 for m in self._messages.values() if m.status is status)}
                for status in Status
            )

    def close(self) -> None:
        pass


# --- parameters of the SQL stores' queries -----------------------------------------------------


def record_params(record: OutboxMessage, message_json: str, time: Callable[[datetime | None], Any]) -> dict[str, Any]:
    return {
        "page_id": record.page_id,
        "recipient_id": record.recipient_id,
        "message": message_json,
        "sender": record.sender.value,
        "purpose": record.purpose.value,
        "tag": record.tag,
        "promotional": record.promotional,
        "idempotency_key": record.idempotency_key,
        "created_at": time(record.created_at),
        "due_at": time(record.due_at),
        "next_attempt_at": time(record.next_attempt_at),
        "max_attempts": record.max_attempts,
        "sender_name": record.sender_name,
    }


def outcome_params(
    message_id: int, worker_id: str, outcome: Outcome, time: Callable[[datetime | None], Any]
) -> dict[str, Any]:
    return {
        "finished_at": time(finished_time(outcome)),
        "id": message_id,
        "worker_id": worker_id,
        "status": Status(outcome.status).value,
        "next_attempt_at": time(outcome.next_attempt_at),
        "messaging_type": outcome.messaging_type,
        "sent_tag": outcome.sent_tag,
        "reason_code": outcome.reason_code,
        "reason": outcome.reason,
        "last_error_code": outcome.last_error_code,
        "graph_message_id": outcome.graph_message_id,
        "graph_recipient_id": outcome.graph_recipient_id,
        "sent_at": time(outcome.sent_at),
    }


def find_params(query: MessageFilter, statuses: Any) -> dict[str, Any]:
    return {
        "page_id": query.page_id,
        "recipient_id": query.recipient_id,
        "statuses": statuses,
        "before_id": query.before_id,
        "limit": check_limit(query.limit),
    }


def status_values(query: MessageFilter) -> list[str] | None:
    return [Status(status).value for status in query.statuses] or None


# --- SQLite ----------------------------------------------------------------------------------


def sqlite_time(value: datetime | None) -> str | None:
    """Fixed-width UTC ISO text: text order is time order."""
    return None if value is None else utc(value).isoformat(timespec="microseconds")


class SQLOutboxStore(ReceiptsStore):
    """What the SQLite and PostgreSQL stores share above their connections: each runs the named queries its own
    way (`_transition`, `_mark_received`)."""

    @abstractmethod
    def _transition(self, name: str, action: str, message_id: int, now: datetime) -> OutboxMessage:
        """Run the named state change on one message; `InvalidTransition` when its status does not allow it (and
        nothing is written). In the same transaction, `send_hours` loses what the message was (if final) and counts
        what it is now (if final): `count_send` -1 before the change, +1 after it."""

    def cancel(self, message_id: int, now: datetime) -> OutboxMessage:
        return self._transition("cancel_message", "cancel", message_id, now)

    def retry(self, message_id: int, now: datetime) -> OutboxMessage:
        return self._transition("retry_message", "retry", message_id, now)


class SQLiteOutboxStore(SQLOutboxStore):
    """One `core.sqlite.SQLiteFile` (a connection guarded by a lock). WAL + synchronous=FULL: a commit
    is on disk when it returns, and a store opened after a crash sees every committed write. Every
    write is a `BEGIN IMMEDIATE` transaction, so several stores (threads or processes: the Rasa
    process and the app) can share one file; readers never block the writer."""

    backend = "sqlite"

    def __init__(self, path: Path | str, *, busy_timeout_ms: int = 10_000) -> None:
        self.path = Path(path)
        sql_dir = SQL_DIR / self.backend
        try:
            self._db = SQLiteFile(
                path,
                "outbox",
                sql_dir,
                synchronous="FULL",
                busy_timeout_ms=busy_timeout_ms,
                foreign_keys=False,
                require_wal=True,
            )
        except (SchemaTooNew, WALUnavailable) as exc:
            raise OutboxError(str(exc)) from exc
        self._queries = self._db.queries

    def _read(self, name: str, params: Mapping[str, Any]) -> list[sqlite3.Row]:
        return self._db.read(name, params)

    def _one(self, conn: sqlite3.Connection, message_id: int) -> OutboxMessage:
        row = conn.execute(self._queries["get_message"], {"id": message_id}).fetchone()
        if row is None:
            raise NotFound(f"no outbox message {message_id}")
        return message_from_row(row)

    def enqueue(self, new: NewMessage, now: datetime) -> tuple[OutboxMessage, bool]:
        record, message_json = new_message_record(new, now)
        with self._db.write() as conn:
            return self._insert(conn, record, message_json)

    def _insert(self, conn: sqlite3.Connection, record: OutboxMessage, message_json: str) -> tuple[OutboxMessage, bool]:
        try:
            cursor: sqlite3.Cursor | None = conn.execute(
                self._queries["insert_message"], record_params(record, message_json, sqlite_time)
            )
        except sqlite3.IntegrityError as exc:
            # SQLite names the columns, not the index: (page_id, recipient_id) of a pending row can only be
            # the one-private-reply index (the key's conflict inserts nothing, a new row is never sending).
            if SQLITE_ONE_PRIVATE_REPLY_COLUMNS not in str(exc):
                raise
            cursor = None
        if cursor is not None and cursor.rowcount == 1 and cursor.lastrowid is not None:
            return self._one(conn, cursor.lastrowid), True
        row = conn.execute(self._queries["get_message_by_key"], {"idempotency_key": record.idempotency_key})
        stored = row.fetchone()
        if stored is None:
            raise private_reply_already_sent(record)
        return message_from_row(stored), False

    def enqueue_many(self, news: Sequence[NewMessage], now: datetime) -> list[tuple[OutboxMessage, bool]]:
        check_batch(news, "messages")
        records = [new_message_record(new, now) for new in news]
        with self._db.write() as conn:  # one BEGIN IMMEDIATE: a refusal rolls the whole batch back
            return [self._insert(conn, record, message_json) for record, message_json in records]

    def get(self, message_id: int) -> OutboxMessage:
        with self._db.connection() as conn:
            return self._one(conn, message_id)

    def get_many(self, message_ids: Sequence[int]) -> dict[int, OutboxMessage]:
        check_batch(message_ids, "ids")
        if not message_ids:
            return {}
        rows = self._read("get_messages", {"ids": json.dumps([int(message_id) for message_id in message_ids])})
        return {message.id: message for message in map(message_from_row, rows)}

    def find(self, query: MessageFilter) -> list[OutboxMessage]:
        statuses = status_values(query)
        params = find_params(query, json.dumps(statuses) if statuses else None)
        return [message_from_row(row) for row in self._read("find_messages", params)]

    def claim(self, worker_id: str, now: datetime, lease_seconds: float, limit: int) -> list[OutboxMessage]:
        if limit <= 0:
            return []
        now = utc(now)
        lease_until = sqlite_time(now + timedelta(seconds=lease_seconds))
        with self._db.write() as conn:
            ids = [
                row["id"]
                for row in conn.execute(self._queries["select_claimable"], {"now": sqlite_time(now), "limit": limit})
            ]
            conn.executemany(
                self._queries["mark_sending"],
                [{"id": message_id, "worker_id": worker_id, "lease_until": lease_until} for message_id in ids],
            )
            return [self._one(conn, message_id) for message_id in ids]

    def complete(self, message_id: int, worker_id: str, outcome: Outcome) -> OutboxMessage:
        check_outcome(outcome)
        params = outcome_params(message_id, worker_id, outcome, sqlite_time)
        return self._change_held("complete_message", params, message_id, worker_id, counted=True)

    def reclaim_expired(self, now: datetime) -> int:
        with self._db.write() as conn:
            return conn.execute(self._queries["reclaim_expired"], {"now": sqlite_time(now)}).rowcount

    def change_token(self) -> int:
        """Changes whenever another connection (another process's store: Rasa's enqueues) committed to the file
        (SQLite's `data_version`): an idle worker's cheap look for new messages, instead of a write transaction."""
        with self._db.connection() as conn:
            return int(conn.execute("PRAGMA data_version").fetchone()[0])

    def release(self, message_id: int, worker_id: str, not_before: datetime) -> OutboxMessage:
        params = {"id": message_id, "worker_id": worker_id, "not_before": sqlite_time(not_before)}
        return self._change_held("release_message", params, message_id, worker_id)

    def _change_held(self, name: str, params: Mapping[str, Any], message_id: int, worker_id: str, *,
                     counted: bool = False) -> OutboxMessage:
        """An UPDATE that only changes the message while `worker_id` holds it (SENDING, claimed by it). `counted`:
        the change may make it final, then counted in `send_hours` (a SENDING message was not final: nothing leaves)."""
        with self._db.write() as conn:
            cursor = conn.execute(self._queries[name], params)
            message = self._one(conn, message_id)
            if cursor.rowcount != 1:
                raise not_held_error(message, worker_id)
            if counted and message.status in TERMINAL:
                conn.execute(self._queries["count_send"], {"id": message_id, "delta": 1})
            return message

    def reserve_send_slot(
        self, page_id: str, now: datetime, rate: float, not_after: datetime | None = None
    ) -> SendSlot:
        with self._db.write() as conn:
            row = conn.execute(self._queries["latest_send_slot"], {"page_id": page_id}).fetchone()
            slot = next_send_slot(now, to_utc(row["latest_slot"]) if row else None, rate, not_after)
            if slot.granted:
                conn.execute(
                    self._queries["record_send_slot"], {"page_id": page_id, "latest_slot": sqlite_time(slot.send_at)}
                )
            return slot

    def _transition(self, name: str, action: str, message_id: int, now: datetime) -> OutboxMessage:
        with self._db.write() as conn:  # a refusal raises inside: the -1 is rolled back with the rest
            conn.execute(self._queries["count_send"], {"id": message_id, "delta": -1})
            cursor = conn.execute(self._queries[name], {"id": message_id, "now": sqlite_time(now)})
            message = self._one(conn, message_id)
            if cursor.rowcount != 1:
                raise transition_error(message, action)
            conn.execute(self._queries["count_send"], {"id": message_id, "delta": 1})
            return message

    def record_user_message(self, page_id: str, user_id: str, at: datetime, text: str | None = None) -> None:
        params = {"page_id": page_id, "user_id": user_id, "at": sqlite_time(at), "text": user_text_excerpt(text)}
        with self._db.write() as conn:  # the time taken inside the write lock: recording order is commit order
            row = conn.execute(self._queries["last_user_message_at"], params).fetchone()
            conversations, new_people = user_message_counts(to_utc(row["last_user_message_at"]) if row else None, at)
            conn.execute(self._queries["record_user_message"], {**params, "recorded_at": sqlite_time(recording_time())})
            conn.execute(self._queries["count_user_message"], {"hour": sqlite_time(hour_start(at)), "page_id": page_id,
                                                               "conversations": conversations,
                                                               "new_people": new_people})

    def _mark_received(self, query: str, params: dict[str, Any]) -> int:
        values = {**params, "mids": json.dumps(params["mids"]), "covers": sqlite_time(params["covers"]),
                  "at": sqlite_time(params["at"])}
        with self._db.write() as conn:
            return int(conn.execute(self._queries[query], values).rowcount)

    def unreachable(self, page_id: str, recipient_ids: Sequence[str]) -> dict[str, str]:
        check_batch(recipient_ids, "recipients")
        if not recipient_ids:
            return {}
        rows = self._read("unreachable", {"page_id": page_id, "recipient_ids": json.dumps(list(recipient_ids)),
                                          "codes": json.dumps(UNREACHABLE_ERROR_CODES)})
        return {row["recipient_id"]: UNREACHABLE_BLOCKED for row in rows}

    def last_user_message_at(self, page_id: str, user_id: str) -> datetime | None:
        rows = self._read("last_user_message_at", {"page_id": page_id, "user_id": user_id})
        return to_utc(rows[0]["last_user_message_at"]) if rows else None

    def last_user_messages(self, page_id: str, user_ids: Sequence[str]) -> dict[str, datetime]:
        check_batch(user_ids, "users")
        if not user_ids:
            return {}
        rows = self._read("last_user_messages", {"page_id": page_id, "user_ids": json.dumps(list(user_ids))})
        return {row["user_id"]: required_utc(row["last_user_message_at"]) for row in rows}

    def cancel_pending_by_key_prefix(self, prefix: str, now: datetime) -> int:
        params = {**key_prefix_params(prefix, now), "now": sqlite_time(now)}
        with self._db.write() as conn:  # counted first: BEGIN IMMEDIATE, so the same messages are then cancelled
            conn.execute(self._queries["count_cancelled_by_key_prefix"], params)
            return int(conn.execute(self._queries["cancel_pending_by_key_prefix"], params).rowcount)

    def message_hours(self, page_id: str | None, since: datetime, until: datetime) -> list[MessageHour]:
        rows = self._read("message_hours", period_params(page_id, since, until, sqlite_time))
        return [message_hour_from_row(row) for row in rows]

    def message_days(self, page_id: str | None, since: datetime, until: datetime,
                     offset_seconds: int) -> list[MessageDay]:
        rows = self._read("message_days", day_params(page_id, since, until, offset_seconds, sqlite_time))
        return message_days_from_rows(rows, offset_seconds)

    def message_hours_since(self) -> datetime | None:
        rows = self._read("message_hours_since", {})
        return required_utc(rows[0]["started_at"]) if rows else None

    def send_hours(self, page_id: str | None, since: datetime, until: datetime) -> list[SendHour]:
        rows = self._read("send_hours", period_params(page_id, since, until, sqlite_time))
        return [send_hour_from_row(row) for row in rows]

    def conversations_since(self, after: datetime | None, limit: int) -> list[ConversationSeen]:
        params: dict[str, Any] = {"limit": check_limit(limit)}
        if after is not None:
            params["after"] = sqlite_time(after)
        rows = self._read("conversations_since" if after is not None else "conversations_from_start", params)
        return [conversation_seen_from_row(row) for row in rows]

    def conversations_recorded_between(self, since: datetime, until: datetime, limit: int,
                                       after: ConversationSeen | None = None) -> list[ConversationSeen]:
        after_at, after_page, after_user = recorded_cursor(since, after)
        rows = self._read("conversations_recorded_between", {
            "since": sqlite_time(since), "until": sqlite_time(until), "after_at": sqlite_time(after_at),
            "after_page": after_page, "after_user": after_user, "limit": check_limit(limit)})
        return [conversation_seen_from_row(row) for row in rows]

    def page(self, page_id: str) -> PageState:
        rows = self._read("get_page", {"page_id": page_id})
        return page_from_row(page_id, rows[0] if rows else None)

    def pause_page(self, page_id: str, reason: str, now: datetime) -> None:
        at = sqlite_time(now)
        with self._db.write() as conn:
            if conn.execute(self._queries["pause_page"], {"page_id": page_id, "reason": reason, "now": at}).rowcount:
                conn.execute(
                    self._queries["insert_alert"],
                    {"page_id": page_id, "code": TOKEN_INVALID, "message": reason, "created_at": at},
                )

    def resume_page(self, page_id: str) -> None:
        with self._db.write() as conn:
            conn.execute(self._queries["resume_page"], {"page_id": page_id})

    def set_utility_templates(self, page_id: str, enabled: bool) -> None:
        with self._db.write() as conn:
            conn.execute(self._queries["set_utility_templates"], {"page_id": page_id, "enabled": bool(enabled)})

    def alerts(self, limit: int = 100) -> list[Alert]:
        return [alert_from_row(row) for row in self._read("list_alerts", {"limit": check_limit(limit)})]

    def counts(self) -> dict[str, int]:
        return counts_from_rows(self._read("count_by_status", {}))

    def close(self) -> None:
        self._db.close()


# --- PostgreSQL ------------------------------------------------------------------------------


def first_line(error: BaseException) -> str:
    """A driver error's first line (libpq adds context lines; none of them carries the password)."""
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def postgres_time(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


class PostgresOutboxStore(SQLOutboxStore):
    """One psycopg2 connection guarded by a lock; reconnects if the connection was lost.

    Why the claim is correct (`lock_claimable_recipients` + `claim_heads` in queries.sql):

    - Never the same message twice: the UPDATE re-checks `status = 'pending'` on the row it
      updates (READ COMMITTED re-evaluates the WHERE on the latest row version), and the inner
      `FOR UPDATE SKIP LOCKED` skips a row another transaction is changing.
    - Never two messages of one recipient at once, never out of order: a claim first locks the
      recipient's `conversations` row (SKIP LOCKED: nobody waits, a busy recipient is left to the
      next poll; a foreign key guarantees the row exists; NO KEY UPDATE leaves enqueue's foreign-key
      check alone). Step 2 is a new statement, so its snapshot is taken after that lock is held: it
      contains every claim of the recipient that committed before (one still running holds the lock,
      and we skipped the recipient). So step 2 sees the recipient's message in flight, if any, and
      its true head otherwise. Writes that take no lock can only make step 2 more cautious:
      complete and reclaim turn SENDING into something else (we take the next one a poll later),
      cancel turns the head into CANCELLED (the `status` re-check drops it). Enqueue and retry can
      add a message that sorts before the head step 2 takes but commits after its snapshot; it then
      goes right after that head (the order of a schedule where it committed a moment later), never
      at the same time, since the head is SENDING and blocks the queue.
    - Whatever a query decides, `messages_one_sending_per_recipient` (a partial unique index)
      refuses a second SENDING row per recipient.
    """

    backend = "postgres"

    def __init__(self, dsn: str) -> None:
        import psycopg2  # only the PostgreSQL store needs it
        import psycopg2.extras

        self._psycopg2 = psycopg2
        self._dict_cursor = psycopg2.extras.RealDictCursor
        self._dsn = dsn
        self._queries = load_queries(SQL_DIR / self.backend)
        self._lock = threading.Lock()
        self._conn: Any = None
        self._migrate()

    def _connection(self) -> Any:
        if self._conn is None or self._conn.closed:
            self._conn = None
            try:
                conn = self._psycopg2.connect(self._dsn, connect_timeout=POSTGRES_CONNECT_TIMEOUT_SECONDS)
                conn.set_session(isolation_level="READ COMMITTED", autocommit=False)
            except self._psycopg2.OperationalError as exc:
                raise StoreUnavailable(f"PostgreSQL is not reachable: {first_line(exc)}") from exc
            self._conn = conn
        return self._conn

    @contextmanager
    def _transaction(self) -> Iterator[Any]:
        """A cursor (rows as dicts) in one transaction: COMMIT on success, ROLLBACK on error. A lost
        connection (a server restart) is dropped, reconnected on the next call, and raised as
        `StoreUnavailable` so callers can tell "try again" from a real error."""
        with self._lock:
            conn = self._connection()
            try:
                with conn.cursor(cursor_factory=self._dict_cursor) as cursor:
                    yield cursor
                conn.commit()
            except (self._psycopg2.OperationalError, self._psycopg2.InterfaceError) as exc:
                self._roll_back(conn)
                raise StoreUnavailable(f"PostgreSQL connection lost: {first_line(exc)}") from exc
            except BaseException:
                self._roll_back(conn)
                raise

    def _roll_back(self, conn: Any) -> None:
        if conn.closed:
            return
        try:
            conn.rollback()
        except self._psycopg2.Error:  # the connection is broken: drop it, the next call reconnects
            conn.close()

    def _migrate(self) -> None:
        migrations = load_migrations(SQL_DIR / self.backend)
        with self._transaction() as cursor:
            cursor.execute(self._queries["lock_migrations"])
            cursor.execute(self._queries["create_migrations_table"])
            cursor.execute(self._queries["schema_version"])
            version = cursor.fetchone()["version"]
            if version > len(migrations):
                raise OutboxError(f"the database has outbox schema {version}, newer than this code knows")
            for migration in migrations[version:]:
                cursor.execute(migration.script)
                cursor.execute(
                    self._queries["record_migration"], {"version": migration.version, "name": migration.name}
                )

    def _one(self, cursor: Any, message_id: int) -> OutboxMessage:
        cursor.execute(self._queries["get_message"], {"id": message_id})
        row = cursor.fetchone()
        if row is None:
            raise NotFound(f"no outbox message {message_id}")
        return message_from_row(row)

    def enqueue(self, new: NewMessage, now: datetime) -> tuple[OutboxMessage, bool]:
        return self._enqueue_all([new_message_record(new, now)])[0]

    def enqueue_many(self, news: Sequence[NewMessage], now: datetime) -> list[tuple[OutboxMessage, bool]]:
        check_batch(news, "messages")
        return self._enqueue_all([new_message_record(new, now) for new in news])

    def _enqueue_all(self, records: list[tuple[OutboxMessage, str]]) -> list[tuple[OutboxMessage, bool]]:
        """One transaction. A second private reply to a comment rolls it back; if the batch's keys were all written
        meanwhile by another caller (the same batch, again), those are its messages; else the refusal stands."""
        try:
            with self._transaction() as cursor:
                return [self._insert(cursor, record, message_json) for record, message_json in records]
        except self._psycopg2.IntegrityError as exc:  # rolled back; only the one-private-reply index is ours
            if getattr(getattr(exc, "diag", None), "constraint_name", None) != ONE_PRIVATE_REPLY_INDEX:
                raise
        with self._transaction() as cursor:  # the same keys may have won meanwhile: those are their messages
            found = []
            for record, _ in records:
                cursor.execute(self._queries["get_message_by_key"], {"idempotency_key": record.idempotency_key})
                stored = cursor.fetchone()
                if stored is None:
                    raise private_reply_already_sent(record)
                found.append((message_from_row(stored), False))
        return found

    def _insert(self, cursor: Any, record: OutboxMessage, message_json: str) -> tuple[OutboxMessage, bool]:
        cursor.execute(self._queries["open_lane"], {"page_id": record.page_id, "recipient_id": record.recipient_id})
        cursor.execute(self._queries["insert_message"], record_params(record, message_json, postgres_time))
        row = cursor.fetchone()
        if row is not None:
            return message_from_row(row), True
        cursor.execute(self._queries["get_message_by_key"], {"idempotency_key": record.idempotency_key})
        return message_from_row(cursor.fetchone()), False

    def get(self, message_id: int) -> OutboxMessage:
        with self._transaction() as cursor:
            return self._one(cursor, message_id)

    def get_many(self, message_ids: Sequence[int]) -> dict[int, OutboxMessage]:
        check_batch(message_ids, "ids")
        if not message_ids:
            return {}
        with self._transaction() as cursor:
            cursor.execute(self._queries["get_messages"], {"ids": [int(message_id) for message_id in message_ids]})
            return {message.id: message for message in map(message_from_row, cursor.fetchall())}

    def find(self, query: MessageFilter) -> list[OutboxMessage]:
        with self._transaction() as cursor:
            cursor.execute(self._queries["find_messages"], find_params(query, status_values(query)))
            return [message_from_row(row) for row in cursor.fetchall()]

    def claim(self, worker_id: str, now: datetime, lease_seconds: float, limit: int) -> list[OutboxMessage]:
        if limit <= 0:
            return []
        now = utc(now)
        with self._transaction() as cursor:
            cursor.execute(self._queries["lock_claimable_recipients"], {"now": now, "limit": limit})
            lanes = cursor.fetchall()
            if not lanes:
                return []
            cursor.execute(
                self._queries["claim_heads"],
                {
                    "worker_id": worker_id,
                    "now": now,
                    "lease_until": now + timedelta(seconds=lease_seconds),
                    "page_ids": [lane["page_id"] for lane in lanes],
                    "recipient_ids": [lane["recipient_id"] for lane in lanes],
                },
            )
            return sorted((message_from_row(row) for row in cursor.fetchall()), key=queue_position)

    def complete(self, message_id: int, worker_id: str, outcome: Outcome) -> OutboxMessage:
        check_outcome(outcome)
        params = outcome_params(message_id, worker_id, outcome, postgres_time)
        return self._change_held("complete_message", params, message_id, worker_id, counted=True)

    def reclaim_expired(self, now: datetime) -> int:
        with self._transaction() as cursor:
            cursor.execute(self._queries["reclaim_expired"], {"now": utc(now)})
            return int(cursor.rowcount)

    def release(self, message_id: int, worker_id: str, not_before: datetime) -> OutboxMessage:
        params = {"id": message_id, "worker_id": worker_id, "not_before": utc(not_before)}
        return self._change_held("release_message", params, message_id, worker_id)

    def _change_held(self, name: str, params: Mapping[str, Any], message_id: int, worker_id: str, *,
                     counted: bool = False) -> OutboxMessage:
        """An UPDATE … RETURNING that only changes the message while `worker_id` holds it (SENDING, claimed by it).
        `counted`: the change may make it final, then counted in `send_hours` (a SENDING message was not final)."""
        with self._transaction() as cursor:
            cursor.execute(self._queries[name], params)
            row = cursor.fetchone()
            if row is not None:
                if counted and row["finished_at"] is not None:
                    cursor.execute(self._queries["count_send"], {"id": message_id, "delta": 1})
                return message_from_row(row)
            message = self._one(cursor, message_id)
        raise not_held_error(message, worker_id)

    def reserve_send_slot(
        self, page_id: str, now: datetime, rate: float, not_after: datetime | None = None
    ) -> SendSlot:
        with self._transaction() as cursor:
            cursor.execute(self._queries["send_slot_commit_without_waiting"])
            cursor.execute(self._queries["lock_send_slot"], {"page_id": page_id})
            slot = next_send_slot(now, to_utc(cursor.fetchone()["latest_slot"]), rate, not_after)
            if slot.granted:
                cursor.execute(self._queries["record_send_slot"], {"page_id": page_id, "latest_slot": slot.send_at})
            return slot

    def _transition(self, name: str, action: str, message_id: int, now: datetime) -> OutboxMessage:
        with self._transaction() as cursor:  # a refusal raises inside: the -1 is rolled back with the rest
            cursor.execute(self._queries["lock_message"], {"id": message_id})
            cursor.execute(self._queries["count_send"], {"id": message_id, "delta": -1})
            cursor.execute(self._queries[name], {"id": message_id, "now": utc(now)})
            row = cursor.fetchone()
            if row is None:
                raise transition_error(self._one(cursor, message_id), action)
            cursor.execute(self._queries["count_send"], {"id": message_id, "delta": 1})
            return message_from_row(row)

    def record_user_message(self, page_id: str, user_id: str, at: datetime, text: str | None = None) -> None:
        params = {"page_id": page_id, "user_id": user_id, "at": utc(at), "text": user_text_excerpt(text)}
        with self._transaction() as cursor:
            cursor.execute(self._queries["open_lane"], {"page_id": page_id, "recipient_id": user_id})
            cursor.execute(self._queries["lock_conversation"], params)
            conversations, new_people = user_message_counts(to_utc(cursor.fetchone()["last_user_message_at"]), at)
            cursor.execute(self._queries["record_user_message"], params)
            cursor.execute(self._queries["count_user_message"], {"hour": hour_start(at), "page_id": page_id,
                                                                 "conversations": conversations,
                                                                 "new_people": new_people})

    def _mark_received(self, query: str, params: dict[str, Any]) -> int:
        with self._transaction() as cursor:
            cursor.execute(self._queries[query], params)
            return int(cursor.rowcount)

    def unreachable(self, page_id: str, recipient_ids: Sequence[str]) -> dict[str, str]:
        check_batch(recipient_ids, "recipients")
        if not recipient_ids:
            return {}
        with self._transaction() as cursor:
            cursor.execute(self._queries["unreachable"], {"page_id": page_id, "recipient_ids": list(recipient_ids),
                                                          "codes": list(UNREACHABLE_ERROR_CODES)})
            return {row["recipient_id"]: UNREACHABLE_BLOCKED for row in cursor.fetchall()}

    def last_user_message_at(self, page_id: str, user_id: str) -> datetime | None:
        with self._transaction() as cursor:
            cursor.execute(self._queries["last_user_message_at"], {"page_id": page_id, "user_id": user_id})
            row = cursor.fetchone()
        return to_utc(row["last_user_message_at"]) if row else None

    def last_user_messages(self, page_id: str, user_ids: Sequence[str]) -> dict[str, datetime]:
        check_batch(user_ids, "users")
        if not user_ids:
            return {}
        with self._transaction() as cursor:
            cursor.execute(self._queries["last_user_messages"], {"page_id": page_id, "user_ids": list(user_ids)})
            return {row["user_id"]: required_utc(row["last_user_message_at"]) for row in cursor.fetchall()}

    def cancel_pending_by_key_prefix(self, prefix: str, now: datetime) -> int:
        params = {**key_prefix_params(prefix, now), "now": utc(now)}
        with self._transaction() as cursor:  # one statement cancels and counts (queries.sql)
            cursor.execute(self._queries["cancel_pending_by_key_prefix"], params)
            return int(cursor.fetchone()["cancelled"])

    def message_hours(self, page_id: str | None, since: datetime, until: datetime) -> list[MessageHour]:
        with self._transaction() as cursor:
            cursor.execute(self._queries["message_hours"], period_params(page_id, since, until, postgres_time))
            return [message_hour_from_row(row) for row in cursor.fetchall()]

    def message_days(self, page_id: str | None, since: datetime, until: datetime,
                     offset_seconds: int) -> list[MessageDay]:
        with self._transaction() as cursor:
            cursor.execute(self._queries["message_days"],
                           day_params(page_id, since, until, offset_seconds, postgres_time))
            return message_days_from_rows(cursor.fetchall(), offset_seconds)

    def message_hours_since(self) -> datetime | None:
        with self._transaction() as cursor:
            cursor.execute(self._queries["message_hours_since"])
            row = cursor.fetchone()
            return required_utc(row["started_at"]) if row is not None else None

    def send_hours(self, page_id: str | None, since: datetime, until: datetime) -> list[SendHour]:
        with self._transaction() as cursor:
            cursor.execute(self._queries["send_hours"], period_params(page_id, since, until, postgres_time))
            return [send_hour_from_row(row) for row in cursor.fetchall()]

    def conversations_since(self, after: datetime | None, limit: int) -> list[ConversationSeen]:
        params: dict[str, Any] = {"limit": check_limit(limit)}
        if after is not None:
            params["after"] = utc(after)
        with self._transaction() as cursor:
            cursor.execute(self._queries["conversations_since" if after is not None else "conversations_from_start"],
                           params)
            rows = cursor.fetchall()
        return [conversation_seen_from_row(row) for row in rows]

    def conversations_recorded_between(self, since: datetime, until: datetime, limit: int,
                                       after: ConversationSeen | None = None) -> list[ConversationSeen]:
        after_at, after_page, after_user = recorded_cursor(since, after)
        params = {"since": utc(since), "until": utc(until), "after_at": after_at, "after_page": after_page,
                  "after_user": after_user, "limit": check_limit(limit)}
        with self._transaction() as cursor:
            cursor.execute(self._queries["conversations_recorded_between"], params)
            rows = cursor.fetchall()
        return [conversation_seen_from_row(row) for row in rows]

    def page(self, page_id: str) -> PageState:
        with self._transaction() as cursor:
            cursor.execute(self._queries["get_page"], {"page_id": page_id})
            return page_from_row(page_id, cursor.fetchone())

    def pause_page(self, page_id: str, reason: str, now: datetime) -> None:
        at = utc(now)
        with self._transaction() as cursor:
            cursor.execute(self._queries["pause_page"], {"page_id": page_id, "reason": reason, "now": at})
            if cursor.rowcount:
                cursor.execute(
                    self._queries["insert_alert"],
                    {"page_id": page_id, "code": TOKEN_INVALID, "message": reason, "created_at": at},
                )

    def resume_page(self, page_id: str) -> None:
        with self._transaction() as cursor:
            cursor.execute(self._queries["resume_page"], {"page_id": page_id})

    def set_utility_templates(self, page_id: str, enabled: bool) -> None:
        with self._transaction() as cursor:
            cursor.execute(self._queries["set_utility_templates"], {"page_id": page_id, "enabled": bool(enabled)})

    def alerts(self, limit: int = 100) -> list[Alert]:
        with self._transaction() as cursor:
            cursor.execute(self._queries["list_alerts"], {"limit": check_limit(limit)})
            return [alert_from_row(row) for row in cursor.fetchall()]

    def counts(self) -> dict[str, int]:
        with self._transaction() as cursor:
            cursor.execute(self._queries["count_by_status"])
            return counts_from_rows(cursor.fetchall())

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and not self._conn.closed:
                self._conn.close()


# --- by URL ----------------------------------------------------------------------------------


def open_store(url: str) -> OutboxStore:
    """`memory://`, `sqlite:///relative/path`, `sqlite:////absolute/path` (as SQLAlchemy),
    `postgresql://…` or `postgres://…` (a libpq URI; `?options=-csearch_path%3Dmy_schema` picks a schema)."""
    if url == "memory://":
        return InMemoryOutboxStore()
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///") :]
        if not path:
            raise OutboxInputError("invalid_store_url", "sqlite:/// needs a path")
        return SQLiteOutboxStore(path)
    if url.startswith(("postgresql://", "postgres://")):
        create_schema_of(url)  # BOT_DATABASE_URL names a schema per store (core/settings.py); the tables go there
        return PostgresOutboxStore(url)
    scheme = url.split(":", 1)[0]
    raise OutboxInputError("invalid_store_url", f"unsupported outbox store URL scheme {scheme!r}")
