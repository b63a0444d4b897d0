"""Who of an audience gets a broadcast, and what became of them: pure decisions over what the service read.

`decide_recipient` is the one decision the dry run, the runner and a retry share: never wrote, conversation paused
(a person is talking to them), blocked (Meta said they cannot be reached), then the outbox's policy for a SYSTEM
follow-up with the broadcast's `promotional` and `tag`. `outcome_of` turns the outbox messages of one recipient
into their state for the report. Nothing here reads or writes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from broadcasts.model import (
    BLOCKED,
    CONVERSATION_PAUSED,
    NEVER_WROTE,
    PARTIALLY_SENT,
    BroadcastDraft,
    PartsOutcome,
    RecipientState,
)
from outbox.model import NewMessage, OutboxMessage, Purpose, SenderKind, Status
from outbox.policy import ConversationWindow, Decision, SendRequest

KEY_PREFIX = "broadcast:"  # the outbox cancels pending SYSTEM messages with this key prefix when a person takes over
BROADCAST_CANCELLED = "broadcast_cancelled"

Decide = Callable[[SendRequest, ConversationWindow, datetime], Decision]


@dataclass(frozen=True)
class Verdict:
    """What the broadcast does for one contact: send (reason None) or skip with a reason code; `outside_window`:
    their 24-hour window is closed (whatever else)."""

    psid: str
    name: str
    send: bool
    reason_code: str | None
    outside_window: bool
    decision: Decision | None = None  # the policy's, when it was asked


def idempotency_key(broadcast_id: int, psid: str, attempt: int, part: int) -> str:
    """One outbox message per broadcast, person, attempt and message part: the same key again is the same message."""
    return f"{KEY_PREFIX}{broadcast_id}:{psid}:{attempt}:{part}"


def recipient_key_prefix(broadcast_id: int, psid: str | None = None) -> str:
    """The keys of every message of a broadcast (or of one person of it): what a cancel cancels by."""
    return f"{KEY_PREFIX}{broadcast_id}:" + (f"{psid}:" if psid is not None else "")


def send_time(start: datetime, position: int, page_rate: float) -> datetime:
    """The `position`-th slot at `page_rate` per second from `start` (replies due now still go first: the outbox
    sends by due time)."""
    return start + timedelta(seconds=position / page_rate)


def slots_start(next_free: datetime | None, now: datetime) -> datetime:
    """Where a reservation of the page's broadcast slots starts: the page's next free slot, never in the past (a
    backlog after downtime is spread from now, not due all at once)."""
    return max(next_free, now) if next_free is not None else now


def new_messages(draft: BroadcastDraft, broadcast_id: int, psid: str, attempt: int,
                 not_before: datetime | None, sent_parts: Collection[int] = ()) -> list[tuple[int, NewMessage]]:
    """The outbox messages of one recipient, (part, message) in order: one per part of the content, except the
    parts they already got (`sent_parts`: a retry never sends those again)."""
    return [(part, NewMessage(page_id=draft.page_id, recipient_id=psid, message=message, sender=SenderKind.SYSTEM,
                              purpose=Purpose.FOLLOW_UP, tag=draft.tag, promotional=draft.promotional,
                              not_before=not_before,
                              idempotency_key=idempotency_key(broadcast_id, psid, attempt, part)))
            for part, message in enumerate(draft.content.messages()) if part not in sent_parts]


def policy_request(draft: BroadcastDraft, psid: str) -> NewMessage:
    """What the policy is asked for a recipient (every part has the same sender, purpose, tag and content kind)."""
    return NewMessage(page_id=draft.page_id, recipient_id=psid, message=draft.content.messages()[0],
                      sender=SenderKind.SYSTEM, purpose=Purpose.FOLLOW_UP, tag=draft.tag,
                      promotional=draft.promotional)


def decide_recipient(draft: BroadcastDraft, psid: str, name: str, last_user_message_at: datetime | None,
                     paused: bool, unreachable: str | None, decide: Decide, standard_window: timedelta,
                     now: datetime) -> Verdict:
    """The one decision per contact: never wrote, paused, blocked, then the policy."""
    outside = last_user_message_at is None or now - last_user_message_at >= standard_window
    if last_user_message_at is None:
        return Verdict(psid, name, False, NEVER_WROTE, outside)
    if paused:
        return Verdict(psid, name, False, CONVERSATION_PAUSED, outside)
    if unreachable is not None:
        return Verdict(psid, name, False, unreachable or BLOCKED, outside)
    decision = decide(policy_request(draft, psid), ConversationWindow(last_user_message_at), now)
    if not decision.allowed:
        return Verdict(psid, name, False, decision.reason_code, outside, decision)
    return Verdict(psid, name, True, None, outside, decision)


# --- what became of a recipient -----------------------------------------------------------------------------------


def failure_label(error_code: int | None, reason_code: str | None) -> str:
    """How the report groups a failure: "code 551" for Meta's error codes, else the outbox's reason code."""
    if error_code is not None:
        return f"code {error_code}"
    return reason_code or "unknown"


def outcome_of(messages: Sequence[OutboxMessage | None], broadcast_cancelled: bool) -> PartsOutcome | None:
    """A recipient's state from the outbox messages of their attempt (in part order; a part they got in an earlier
    attempt is its SENT message); None while any is still on its way. A part failed or dead → failed (Meta's code);
    blocked by the policy at send time → blocked (its reason); cancelled → cancelled (the broadcast's cancel, or a
    person took the conversation over; `partially_sent` when an earlier part went out); all sent → sent, delivered
    and read as the last part was (a receipt covers what came before it). `sent_parts` names the parts SENT."""
    if not messages or any(message is None for message in messages):
        return None
    parts = [message for message in messages if message is not None]
    sent_parts = {part: message.id for part, message in enumerate(parts) if message.status is Status.SENT}
    for message in parts:
        if message.status in (Status.FAILED, Status.DEAD):
            return PartsOutcome(RecipientState.FAILED, message.reason_code, message.last_error_code,
                                sent_parts=sent_parts)
    for message in parts:
        if message.status is Status.BLOCKED:
            return PartsOutcome(RecipientState.BLOCKED, message.reason_code, message.last_error_code,
                                sent_parts=sent_parts)
    if any(message.status not in (Status.SENT, Status.CANCELLED) for message in parts):
        return None
    if any(message.status is Status.CANCELLED for message in parts):
        cancelled_by = BROADCAST_CANCELLED if broadcast_cancelled else CONVERSATION_PAUSED
        reason = PARTIALLY_SENT if sent_parts else cancelled_by
        return PartsOutcome(RecipientState.CANCELLED, reason, sent_parts=sent_parts)
    last = parts[-1]
    sent = [message.sent_at for message in parts if message.sent_at is not None]
    return PartsOutcome(RecipientState.SENT, sent_at=max(sent) if sent else None,
                        delivered_at=last.delivered_at, read_at=last.read_at, sent_parts=sent_parts)
