"""The `OutboxStore` contract for the survey after the bot resolved a conversation (issue 14, CSAT): the
conversations whose user's last message was recorded in [since, until), in recording order, a page at a time after
the previous page's last row. Against the in-memory fake, SQLite and PostgreSQL (test_store_contract.py's
fixtures); on SQLite the range is read through the index on the recording time, not a scan.

The recording time is the store's own clock (on purpose, `outbox.store.recording_time`), so the bounds are taken
from the rows as recorded, never from the wall clock.

Would catch: an inclusive `until` (a conversation asked a round early), an exclusive `since` (one lost between
rounds), a page that repeats or skips a row when several were recorded, another range's rows, a full scan."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest

from outbox.model import ConversationSeen, OutboxStore
from tests.integration.outbox import test_store_contract as contract
from tests.integration.outbox.test_store_contract import OTHER_PAGE, PAGE, at

# The contract suite's fixtures: every test runs against the in-memory fake, SQLite and PostgreSQL.
postgres_run_url = contract.postgres_run_url
store_url = contract.store_url
store = contract.store

TICK = timedelta(microseconds=1)


def recorded(store: OutboxStore) -> list[ConversationSeen]:
    """Every conversation, in recording order (the contacts' sync's read)."""
    return store.conversations_since(None, 100)


def keys(rows: list[ConversationSeen]) -> list[tuple[str, str]]:
    return [(row.page_id, row.user_id) for row in rows]


def test_the_range_holds_the_conversations_recorded_from_since_to_before_until(store: OutboxStore) -> None:
    for user in ("u1", "u2", "u3", "u4"):
        store.record_user_message(PAGE, user, at(10), f"hola {user}")
    store.record_user_message(OTHER_PAGE, "u5", at(10), "otra página")
    rows = recorded(store)
    assert len(rows) == 5

    between = store.conversations_recorded_between(rows[1].recorded_at, rows[4].recorded_at, 100)

    assert between == rows[1:4], "since inclusive, until exclusive, in recording order, with every field"
    assert store.conversations_recorded_between(rows[0].recorded_at, rows[0].recorded_at, 100) == []
    assert keys(store.conversations_recorded_between(rows[0].recorded_at, rows[-1].recorded_at + TICK, 100)) == \
        keys(rows)
    assert store.conversations_recorded_between(rows[-1].recorded_at + TICK, rows[-1].recorded_at + timedelta(
        hours=1), 100) == []


def test_a_newer_message_moves_the_conversation_to_its_new_recording_time(store: OutboxStore) -> None:
    store.record_user_message(PAGE, "u1", at(10), "hola")
    store.record_user_message(PAGE, "u2", at(10), "hola")
    [first_u1, _u2] = recorded(store)
    store.record_user_message(PAGE, "u1", at(20), "¿y el precio?")
    store.record_user_message(PAGE, "u2", at(5), "llegó tarde")  # older than u2's last: the time stays

    rows = recorded(store)
    assert keys(rows) == [(PAGE, "u2"), (PAGE, "u1")]
    assert store.conversations_recorded_between(first_u1.recorded_at, rows[1].recorded_at, 100) == [rows[0]]
    assert rows[1].last_user_message_at == at(20)


def test_pages_after_the_previous_row_read_each_conversation_once(store: OutboxStore) -> None:
    for user in ("u1", "u2", "u3", "u4", "u5"):
        store.record_user_message(PAGE, user, at(10))
    rows = recorded(store)
    since, until = rows[0].recorded_at, rows[-1].recorded_at + TICK

    pages: list[list[ConversationSeen]] = []
    previous = None
    while True:
        page = store.conversations_recorded_between(since, until, 2, previous)
        pages.append(page)
        if len(page) < 2:
            break
        previous = page[-1]

    assert [len(page) for page in pages] == [2, 2, 1]
    assert [row for page in pages for row in page] == rows
    assert store.conversations_recorded_between(since, until, 0) == []


def test_on_sqlite_the_range_reads_the_index_on_the_recording_time(store: OutboxStore, store_url: str) -> None:
    if not store_url.startswith("sqlite:///"):
        pytest.skip("SQLite's plan (the fake has none; PostgreSQL plans by its statistics)")
    with sqlite3.connect(store_url.removeprefix("sqlite:///")) as conn:
        plan = [str(tuple(row)) for row in conn.execute(
            "EXPLAIN QUERY PLAN " + store._queries["conversations_recorded_between"],  # type: ignore[attr-defined]
            {"since": "2026", "until": "2027", "after_at": "2026", "after_page": "", "after_user": "",
             "limit": 10}).fetchall()]
    assert any("conversations_by_user_message_recorded" in step for step in plan), plan
