"""The `OutboxStore` contract for what broadcasts need, against the in-memory fake, SQLite and PostgreSQL (the
fixtures of test_store_contract.py): cancelling every pending message of a key prefix in one statement, and the last
own message of many users of a page in one query."""

from __future__ import annotations

import pytest

from outbox.model import MAX_BATCH, OutboxInputError, OutboxStore, SenderKind, Status
from tests.integration.outbox import test_store_contract as contract
from tests.integration.outbox.test_store_contract import OTHER_PAGE, PAGE, at, claim, enqueue, send

postgres_run_url = contract.postgres_run_url
store_url = contract.store_url
store = contract.store


def keyed(store: OutboxStore, key: str, recipient: str = "u1") -> int:
    return enqueue(store, recipient=recipient, idempotency_key=key, sender=SenderKind.SYSTEM).id


def test_cancel_by_key_prefix_cancels_only_pending_messages_with_that_prefix(store: OutboxStore) -> None:
    claimed = keyed(store, "broadcast:7:v1:0:0", "v1")
    done = keyed(store, "broadcast:7:v2:0:0", "v2")
    assert claim(store, limit=100) == [claimed, done]  # in flight: the worker owns them now
    send(store, done)
    pending = [keyed(store, f"broadcast:7:u{index}:0:0", f"u{index}") for index in range(3)]
    others = [keyed(store, "broadcast:71:u9:0:0", "u9"),  # another broadcast whose id starts the same
              keyed(store, "broadcast:8:u1:0:0", "u8"), keyed(store, "reply:broadcast:7:", "u7")]

    assert store.cancel_pending_by_key_prefix("broadcast:7:", at(1)) == 3

    assert [store.get(message_id).status for message_id in pending] == [Status.CANCELLED] * 3
    assert store.get(claimed).status is Status.SENDING
    assert store.get(done).status is Status.SENT
    assert [store.get(message_id).status for message_id in others] == [Status.PENDING] * 3
    assert store.cancel_pending_by_key_prefix("broadcast:7:", at(2)) == 0  # again: nothing left, no error


def test_cancel_by_key_prefix_takes_wildcards_literally(store: OutboxStore) -> None:
    literal = keyed(store, "x_%:1", "u1")
    lookalike = keyed(store, "xa%:1", "u2")
    assert store.cancel_pending_by_key_prefix("x_%:", at(1)) == 1
    assert (store.get(literal).status, store.get(lookalike).status) == (Status.CANCELLED, Status.PENDING)


def test_cancel_by_key_prefix_refuses_an_empty_prefix(store: OutboxStore) -> None:
    keyed(store, "broadcast:1:u1:0:0")
    with pytest.raises(OutboxInputError):
        store.cancel_pending_by_key_prefix("", at(1))
    assert store.cancel_pending_by_key_prefix("broadcast:1:u1:", at(1)) == 1


def test_last_user_messages_of_many_users_in_one_call(store: OutboxStore) -> None:
    store.record_user_message(PAGE, "u1", at(10))
    store.record_user_message(PAGE, "u1", at(5))  # older, handled late: the last stays at 10
    store.record_user_message(PAGE, "u2", at(20))
    store.record_user_message(OTHER_PAGE, "u3", at(30))

    assert store.last_user_messages(PAGE, ["u1", "u2", "u3", "nobody"]) == {"u1": at(10), "u2": at(20)}
    assert store.last_user_messages(PAGE, []) == {}
    assert store.last_user_messages(OTHER_PAGE, ["u3"]) == {"u3": at(30)}
    with pytest.raises(OutboxInputError):
        store.last_user_messages(PAGE, [f"u{index}" for index in range(MAX_BATCH + 1)])


async def test_the_facade_reads_many_windows_at_once_and_cancels_by_prefix(store: OutboxStore) -> None:
    from meta.graph import GraphClient
    from outbox.outbox import Outbox
    from outbox.policy_file import load_policy

    store.record_user_message(PAGE, "u1", at(10))
    keyed(store, "broadcast:3:u1:0:0", "u1")
    client = GraphClient({})
    outbox = Outbox(store, client, load_policy(), page_rate=0, clock=lambda: at(20))
    try:
        windows = await outbox.windows_of(PAGE, ["u1", "u2", "u1"])
        assert {user: window.last_user_message_at for user, window in windows.items()} == {"u1": at(10),
                                                                                            "u2": None}
        assert windows["u1"] == await outbox.conversation_window(PAGE, "u1")  # what the worker decides on
        assert await outbox.windows_of(PAGE, []) == {}
        assert await outbox.cancel_pending_by_key_prefix("broadcast:3:") == 1
        with pytest.raises(OutboxInputError):
            await outbox.cancel_pending_by_key_prefix(" ")
    finally:
        await outbox.stop()
        await client.close()
