"""The per-recipient decision (pure) and what a recipient's outbox messages come to, as properties over the shipped
policy: never to someone who never wrote or whose conversation a person holds or whom Meta said is unreachable; no
promotional content outside the 24-hour window; never a tag on promotional content; keys and send slots."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import partial

from hypothesis import given
from hypothesis import strategies as st

from broadcasts.model import BroadcastDraft, RecipientState
from broadcasts.planner import (
    decide_recipient,
    idempotency_key,
    new_messages,
    outcome_of,
    recipient_key_prefix,
    send_time,
    slots_start,
)
from meta.limits import MESSAGE_TAGS
from outbox.model import OutboxMessage, Purpose, SenderKind, Status
from outbox.policy import decide
from outbox.policy_file import load_policy

PAGE = "100000000000001"
NOW = datetime(2026, 11, 30, 15, 0, tzinfo=timezone.utc)
STANDARD = timedelta(hours=24)
SHIPPED = partial(decide, policy=load_policy())
TAGS_VALID = partial(decide, policy=load_policy(retired_tags_until=NOW + timedelta(days=365)))


def a_draft(promotional: bool, tag: str | None) -> BroadcastDraft:
    base = BroadcastDraft.from_dict({"page_id": PAGE, "name": "B", "content": {"text": "Hola"},
                                     "audience": {"page_id": PAGE}})
    return BroadcastDraft(PAGE, "B", base.content, base.audience, promotional, tag)


@given(hours_ago=st.one_of(st.none(), st.floats(0, 24 * 10)), paused=st.booleans(), blocked=st.booleans(),
       promotional=st.booleans(), tag=st.one_of(st.none(), st.sampled_from(sorted(MESSAGE_TAGS))),
       tags_valid=st.booleans())
def test_a_recipient_is_sent_to_only_within_messenger_s_rules(
        hours_ago: float | None, paused: bool, blocked: bool, promotional: bool, tag: str | None,
        tags_valid: bool) -> None:
    last = NOW - timedelta(hours=hours_ago) if hours_ago is not None else None
    verdict = decide_recipient(a_draft(promotional, tag), "u1", "Ana", last, paused, "blocked" if blocked else None,
                               TAGS_VALID if tags_valid else SHIPPED, STANDARD, NOW)
    assert verdict.outside_window == (last is None or NOW - last >= STANDARD)
    if last is None:
        assert (verdict.send, verdict.reason_code) == (False, "never_wrote")
    elif paused:
        assert (verdict.send, verdict.reason_code) == (False, "conversation_paused")
    elif blocked:
        assert (verdict.send, verdict.reason_code) == (False, "blocked")
    if verdict.send:
        assert verdict.decision is not None and verdict.decision.allowed and verdict.reason_code is None
        if promotional:
            assert not verdict.outside_window and verdict.decision.tag is None
        if verdict.outside_window:
            assert verdict.decision.tag is not None and not promotional
    else:
        assert verdict.reason_code
    if promotional and tag is not None and last is not None and not paused and not blocked:
        assert verdict.reason_code == "promotional_with_tag"


def test_each_part_has_its_own_key_and_the_same_slot() -> None:
    draft = BroadcastDraft.from_dict({"page_id": PAGE, "name": "B", "audience": {"page_id": PAGE}, "content": {
        "text": "Hola", "image": {"attachment_id": "77"}}})
    at = NOW + timedelta(seconds=3)
    (image_part, image), (text_part, text) = new_messages(draft, 9, "u1", 2, at)
    assert (image_part, text_part) == (0, 1)
    assert (image.idempotency_key, text.idempotency_key) == ("broadcast:9:u1:2:0", "broadcast:9:u1:2:1")
    assert idempotency_key(9, "u1", 2, 1) == text.idempotency_key
    assert image.not_before == text.not_before == at
    assert (text.sender, text.purpose, text.promotional, text.tag) == (SenderKind.SYSTEM, Purpose.FOLLOW_UP, True,
                                                                       None)
    assert send_time(NOW, 25, 10.0) == NOW + timedelta(seconds=2.5)


def test_a_retry_leaves_out_the_parts_already_sent() -> None:
    draft = BroadcastDraft.from_dict({"page_id": PAGE, "name": "B", "audience": {"page_id": PAGE}, "content": {
        "text": "Hola", "image": {"attachment_id": "77"}}})
    [(part, text)] = new_messages(draft, 9, "u1", 1, NOW, sent_parts={0: 41})
    assert (part, text.idempotency_key, text.message.get("text")) == (1, "broadcast:9:u1:1:1", "Hola")
    assert new_messages(draft, 9, "u1", 1, NOW, sent_parts={0: 41, 1: 42}) == []
    assert recipient_key_prefix(9) == "broadcast:9:" and recipient_key_prefix(9, "u1") == "broadcast:9:u1:"


def test_slots_start_at_the_page_s_next_free_slot_never_in_the_past() -> None:
    assert slots_start(None, NOW) == NOW
    assert slots_start(NOW - timedelta(minutes=10), NOW) == NOW  # a backlog after downtime: from now, spread
    assert slots_start(NOW + timedelta(seconds=5), NOW) == NOW + timedelta(seconds=5)  # behind another broadcast


def message(status: Status, **fields: object) -> OutboxMessage:
    base = OutboxMessage(id=1, page_id=PAGE, recipient_id="u1", message={"text": "x"}, sender=SenderKind.SYSTEM,
                         purpose=Purpose.FOLLOW_UP, tag=None, promotional=True, idempotency_key="k", status=status,
                         created_at=NOW, due_at=NOW, next_attempt_at=NOW)
    return base.with_changes(**fields)


def test_what_a_recipient_s_messages_come_to() -> None:
    sent = message(Status.SENT, sent_at=NOW, delivered_at=NOW + timedelta(seconds=1))
    assert outcome_of([message(Status.PENDING)], False) is None
    assert outcome_of([sent, None], False) is None  # a part the outbox does not know (yet)
    done = outcome_of([message(Status.SENT, sent_at=NOW - timedelta(seconds=1)), sent], False)
    assert done is not None and (done.state, done.sent_at, done.delivered_at, done.read_at) == (
        RecipientState.SENT, NOW, NOW + timedelta(seconds=1), None)
    failed = outcome_of([sent, message(Status.FAILED, reason_code="person_unavailable", last_error_code=551)], False)
    assert failed is not None and (failed.state, failed.error_code) == (RecipientState.FAILED, 551)
    dead = outcome_of([message(Status.DEAD, reason_code="transient", last_error_code=2)], False)
    assert dead is not None and dead.state is RecipientState.FAILED
    blocked = outcome_of([message(Status.BLOCKED, reason_code="promotional_outside_window")], False)
    assert blocked is not None and (blocked.state, blocked.reason_code) == (RecipientState.BLOCKED,
                                                                            "promotional_outside_window")
    by_pause = outcome_of([message(Status.CANCELLED)], False)
    by_cancel = outcome_of([message(Status.CANCELLED), message(Status.CANCELLED, id=2)], True)
    assert by_pause is not None and by_pause.reason_code == "conversation_paused"
    assert by_cancel is not None and (by_cancel.state, by_cancel.reason_code, dict(by_cancel.sent_parts)) == (
        RecipientState.CANCELLED, "broadcast_cancelled", {})


def test_the_parts_sent_are_named_and_a_partial_cancel_is_a_partial_send() -> None:
    image = message(Status.SENT, id=41, sent_at=NOW)
    failed = outcome_of([image, message(Status.FAILED, id=42, last_error_code=100)], False)
    assert failed is not None and (failed.state, dict(failed.sent_parts)) == (RecipientState.FAILED, {0: 41})
    blocked = outcome_of([image, message(Status.BLOCKED, id=42, reason_code="outside_window")], False)
    assert blocked is not None and dict(blocked.sent_parts) == {0: 41}
    partial = outcome_of([image, message(Status.CANCELLED, id=42)], True)
    assert partial is not None and (partial.state, partial.reason_code, dict(partial.sent_parts)) == (
        RecipientState.CANCELLED, "partially_sent", {0: 41})
    done = outcome_of([image, message(Status.SENT, id=42, sent_at=NOW)], False)
    assert done is not None and dict(done.sent_parts) == {0: 41, 1: 42}
