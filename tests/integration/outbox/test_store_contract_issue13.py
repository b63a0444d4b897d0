"""The `OutboxStore` contract for issue 13's parts, against the in-memory fake, SQLite and PostgreSQL (the fixtures of
test_store_contract.py): the person's last text and message count, Meta's delivery and read receipts, reading many
messages at once, enqueuing a batch in one transaction, and who cannot be reached.

`now` is always passed in: no sleeping, no patching.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from outbox.model import (
    MAX_BATCH,
    USER_TEXT_LIMIT,
    OutboxInputError,
    OutboxMessage,
    OutboxStore,
    Outcome,
    Purpose,
    Status,
)
from tests.integration.outbox import test_store_contract as contract
from tests.integration.outbox.test_store_contract import OTHER_PAGE, PAGE, T0, at, claim, enqueue, new

# The contract suite's fixtures: every test runs against the in-memory fake, SQLite and PostgreSQL.
postgres_run_url = contract.postgres_run_url
store_url = contract.store_url
store = contract.store

def sent_to(
    store: OutboxStore, recipient: str = "u1", sent_at: datetime = T0, mid: str | None = None, page: str = PAGE
) -> OutboxMessage:
    """A message sent to `recipient` at `sent_at` (Meta's message id `mid`)."""
    message = enqueue(store, now=sent_at, recipient=recipient, page=page)
    assert [m.id for m in store.claim("w1", sent_at, 30, 100) if m.id == message.id] == [message.id]
    outcome = Outcome(Status.SENT, messaging_type="RESPONSE", graph_message_id=mid or f"m_{message.id}",
                      sent_at=sent_at)
    return store.complete(message.id, "w1", outcome)


def failed_to(store: OutboxStore, recipient: str, attempted: datetime, code: int | None,
              status: Status = Status.FAILED, page: str = PAGE) -> OutboxMessage:
    message = enqueue(store, now=attempted, recipient=recipient, page=page)
    assert message.id in [m.id for m in store.claim("w1", attempted, 30, 100)]
    return store.complete(message.id, "w1", Outcome(status, reason_code=f"graph_{code}", last_error_code=code))


def receipt_times(store: OutboxStore, *messages: OutboxMessage) -> list[tuple[datetime | None, datetime | None]]:
    return [(found.delivered_at, found.read_at) for found in (store.get(m.id) for m in messages)]


# --- the person's last text and how many messages they wrote -------------------------------------------------


def test_the_last_message_s_text_and_the_count_of_messages_go_with_the_conversation(store: OutboxStore) -> None:
    store.record_user_message(PAGE, "u1", at(10), "hola")
    store.record_user_message(PAGE, "u1", at(20), "¿tienen envío a Quito?")
    store.record_user_message(PAGE, "u1", at(15), "llegó tarde")  # an older message handled late: counted, not last
    store.record_user_message(OTHER_PAGE, "u1", at(5), "otra página")
    store.record_user_message(PAGE, "u2", at(30))  # no text (e.g. a reaction)

    rows = {(row.page_id, row.user_id): row for row in store.conversations_since(None, 10)}

    assert (rows[(PAGE, "u1")].last_text, rows[(PAGE, "u1")].message_count) == ("¿tienen envío a Quito?", 3)
    assert (rows[(OTHER_PAGE, "u1")].last_text, rows[(OTHER_PAGE, "u1")].message_count) == ("otra página", 1)
    assert (rows[(PAGE, "u2")].last_text, rows[(PAGE, "u2")].message_count) == (None, 1)


def test_a_message_without_text_keeps_the_last_text(store: OutboxStore) -> None:
    store.record_user_message(PAGE, "u1", at(10), "quiero el combo")
    store.record_user_message(PAGE, "u1", at(20), None)  # a reaction: newer, but says nothing

    [row] = store.conversations_since(None, 10)
    assert (row.last_text, row.message_count, row.last_user_message_at) == ("quiero el combo", 2, at(20))


def test_the_kept_text_is_cleaned_and_cut(store: OutboxStore) -> None:
    store.record_user_message(PAGE, "u1", at(1), "línea\x00uno\nlínea\tdos\x07" + "ñ" * 1000)
    store.record_user_message(PAGE, "u2", at(1), "\x00\x01 \n")  # nothing but control characters and spaces

    rows = {row.user_id: row for row in store.conversations_since(None, 10)}

    assert rows["u1"].last_text == ("líneauno línea dos" + "ñ" * 1000)[:USER_TEXT_LIMIT]
    assert len(rows["u1"].last_text or "") == USER_TEXT_LIMIT
    assert rows["u2"].last_text is None


def test_a_conversation_the_page_only_wrote_to_has_no_text_and_no_count(store: OutboxStore) -> None:
    sent_to(store, "u9")
    store.record_user_message(PAGE, "u9", at(50), "gracias")

    [row] = store.conversations_since(None, 10)
    assert (row.user_id, row.last_text, row.message_count) == ("u9", "gracias", 1)


# --- receipts ---------------------------------------------------------------------------------------------------


def test_a_delivery_marks_the_messages_it_names_and_those_sent_up_to_its_watermark(store: OutboxStore) -> None:
    early = sent_to(store, "u1", at(0))
    within_slack = sent_to(store, "u1", at(11.5))
    named_later = sent_to(store, "u1", at(30), mid="m_named")
    after = sent_to(store, "u1", at(40))
    someone_else = sent_to(store, "u2", at(0))
    other_page = sent_to(store, "u1", at(0), page=OTHER_PAGE)

    changed = store.record_receipt(PAGE, "u1", "delivery", at(10), ["m_named", "m_unknown"], at(60))

    assert changed == 3
    assert receipt_times(store, early, within_slack, named_later) == [(at(10), None)] * 3
    assert receipt_times(store, after, someone_else, other_page) == [(None, None)] * 3
    assert store.record_receipt(PAGE, "u1", "delivery", at(10), ["m_named"], at(61)) == 0, "already delivered"
    assert store.get(early.id).delivered_at == at(10)


def test_a_delivery_without_a_watermark_marks_only_its_mids_at_now(store: OutboxStore) -> None:
    named = sent_to(store, "u1", at(0), mid="m_a")
    other = sent_to(store, "u1", at(1))

    assert store.record_receipt(PAGE, "u1", "delivery", None, ["m_a"], at(90)) == 1
    assert receipt_times(store, named, other) == [(at(90), None), (None, None)]
    assert store.record_receipt(PAGE, "u1", "delivery", None, [], at(91)) == 0


def test_a_read_marks_what_was_sent_up_to_its_watermark_and_delivers_it_too(store: OutboxStore) -> None:
    delivered = sent_to(store, "u1", at(0))
    undelivered = sent_to(store, "u1", at(5))
    later = sent_to(store, "u1", at(30))
    store.record_receipt(PAGE, "u1", "delivery", at(2), [], at(3))

    assert store.record_receipt(PAGE, "u1", "read", at(10), [], at(60)) == 2

    assert receipt_times(store, delivered, undelivered, later) == [(at(2), at(10)), (at(10), at(10)), (None, None)]
    assert store.record_receipt(PAGE, "u1", "read", at(20), [], at(61)) == 0, "read once, at the first watermark"
    assert store.record_receipt(PAGE, "u1", "read", None, [], at(62)) == 0, "a read without a watermark says nothing"
    assert store.record_receipt(PAGE, "u1", "delivery", at(50), [], at(63)) == 1  # `later` only: the rest was read
    assert store.get(delivered.id).delivered_at == at(2)


def test_receipts_only_touch_sent_messages(store: OutboxStore) -> None:
    pending = enqueue(store, now=at(0), recipient="u1")
    blocked = enqueue(store, now=at(0), recipient="u2")
    claim(store, at(0))
    store.complete(blocked.id, "w1", Outcome(Status.BLOCKED, reason_code="outside_window"))

    assert store.record_receipt(PAGE, "u1", "read", at(100), [], at(100)) == 0
    assert store.record_receipt(PAGE, "u2", "delivery", at(100), [f"m_{blocked.id}"], at(100)) == 0
    assert receipt_times(store, pending, blocked) == [(None, None), (None, None)]


def test_receipt_times_come_back_as_utc_and_show_in_to_dict(store: OutboxStore) -> None:
    message = sent_to(store, "u1", at(0))
    store.record_receipt(PAGE, "u1", "read", at(5).astimezone(timezone(timedelta(hours=-5))), [], at(6))

    found = store.get(message.id)
    assert found.read_at == at(5) and found.read_at.tzinfo == timezone.utc
    assert found.to_dict()["read_at"] == at(5).isoformat() and found.to_dict()["delivered_at"] == at(5).isoformat()


def test_a_receipt_of_another_kind_is_refused(store: OutboxStore) -> None:
    with pytest.raises(OutboxInputError) as refused:
        store.record_receipt(PAGE, "u1", "seen", at(5), [], at(6))
    assert refused.value.reason_code == "invalid_receipt"


# --- many at once -------------------------------------------------------------------------------------------------


def test_get_many_returns_the_known_ids_only(store: OutboxStore) -> None:
    first, second = enqueue(store, recipient="u1"), enqueue(store, recipient="u2")
    sent = sent_to(store, "u3")

    found = store.get_many([second.id, first.id, sent.id, 999_999])

    assert set(found) == {first.id, second.id, sent.id}
    assert found[sent.id].status is Status.SENT and found[first.id] == store.get(first.id)
    assert store.get_many([]) == {}
    with pytest.raises(OutboxInputError):
        store.get_many(list(range(1, MAX_BATCH + 2)))


def test_enqueue_many_is_enqueue_for_each_in_order(store: OutboxStore) -> None:
    known = enqueue(store, recipient="u0", idempotency_key="broadcast:1:u0:0:0")
    news = [new(f"u{n}", idempotency_key=f"broadcast:1:u{n}:0:0", purpose=Purpose.FOLLOW_UP) for n in range(5)]
    news.append(new("u1", idempotency_key="broadcast:1:u1:0:0"))  # the same key twice in one batch

    results = store.enqueue_many(news, at(1))

    assert [created for _, created in results] == [False, True, True, True, True, False]
    assert results[0][0].id == known.id and results[5][0].id == results[1][0].id
    assert [message.recipient_id for message, _ in results] == ["u0", "u1", "u2", "u3", "u4", "u1"]
    assert all(message.status is Status.PENDING and message.due_at == at(1) for message, _ in results[1:5])
    assert store.enqueue_many(news, at(2)) == [(store.get(message.id), False) for message, _ in results]
    assert store.enqueue_many([], at(3)) == []


def test_a_batch_with_a_refused_message_writes_nothing(store: OutboxStore) -> None:
    store.enqueue(new("c_1", purpose=Purpose.PRIVATE_REPLY, idempotency_key="first reply"), at(0))
    batch = [
        new("u1", idempotency_key="batch:u1"),
        new("c_1", purpose=Purpose.PRIVATE_REPLY, idempotency_key="second reply"),  # one per comment
    ]

    with pytest.raises(OutboxInputError) as refused:
        store.enqueue_many(batch, at(1))

    assert refused.value.reason_code == "private_reply_already_sent"
    assert store.counts()["pending"] == 1, "the batch's first message was not written either"
    with pytest.raises(OutboxInputError):
        store.enqueue_many([new("u1", max_attempts=0)], at(1))
    with pytest.raises(OutboxInputError):
        store.enqueue_many([new(f"u{n}") for n in range(MAX_BATCH + 1)], at(1))
    assert store.counts()["pending"] == 1


def test_a_batch_of_a_thousand_is_one_call(store: OutboxStore) -> None:
    results = store.enqueue_many([new(f"u{n}", idempotency_key=f"k{n}") for n in range(MAX_BATCH)], at(0))

    assert len(results) == MAX_BATCH and all(created for _, created in results)
    assert len({message.id for message, _ in results}) == MAX_BATCH
    assert len(store.get_many([message.id for message, _ in results])) == MAX_BATCH


# --- who cannot be reached ------------------------------------------------------------------------------------


def test_a_person_whose_latest_message_failed_with_551_is_unreachable_until_they_write(store: OutboxStore) -> None:
    failed_to(store, "blocked", at(10), 551)
    failed_to(store, "subcode", at(10), 1545041)
    failed_to(store, "wrote", at(10), 551)
    store.record_user_message(PAGE, "wrote", at(20), "hola de nuevo")
    failed_to(store, "wrote_before", at(10), 551)
    store.record_user_message(PAGE, "wrote_before", at(5), "hola")
    failed_to(store, "sent_since", at(10), 551)
    sent_to(store, "sent_since", at(20))
    failed_to(store, "other_error", at(10), 100)
    failed_to(store, "dead", at(10), 2, status=Status.DEAD)
    sent_to(store, "fine", at(10))
    failed_to(store, "cancelled_since", at(10), 551)
    cancelled = enqueue(store, now=at(30), recipient="cancelled_since")
    store.cancel(cancelled.id, at(31))  # never reached Meta: says nothing about the person
    failed_to(store, "other_page", at(10), 551, page=OTHER_PAGE)

    everyone = ["blocked", "subcode", "wrote", "wrote_before", "sent_since", "other_error", "dead", "fine",
                "cancelled_since", "other_page", "never_messaged"]
    assert store.unreachable(PAGE, everyone) == {
        "blocked": "blocked", "subcode": "blocked", "wrote_before": "blocked", "cancelled_since": "blocked"}
    assert store.unreachable(OTHER_PAGE, everyone) == {"other_page": "blocked"}
    assert store.unreachable(PAGE, ["fine"]) == {} and store.unreachable(PAGE, []) == {}
    with pytest.raises(OutboxInputError):
        store.unreachable(PAGE, [f"u{n}" for n in range(MAX_BATCH + 1)])


def test_the_latest_message_is_the_latest_attempt_not_the_latest_enqueued(store: OutboxStore) -> None:
    """A message scheduled earlier but sent later counts as later: what Meta answered last decides."""
    scheduled = store.enqueue(new("u1", not_before=at(100)), at(0))[0]  # enqueued first, due later
    failed_to(store, "u1", at(50), 551)  # enqueued second, tried first
    assert store.unreachable(PAGE, ["u1"]) == {"u1": "blocked"}

    assert [m.id for m in store.claim("w1", at(100), 30, 10)] == [scheduled.id]
    store.complete(scheduled.id, "w1", Outcome(Status.SENT, graph_message_id="m_late", sent_at=at(100)))
    assert store.unreachable(PAGE, ["u1"]) == {}
