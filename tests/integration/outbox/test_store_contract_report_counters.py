"""The reports' counters (issue 14) on PostgreSQL: tests/unit/outbox/test_report_counters.py's store tests against
the contract suite's PostgreSQL schema, the migration's backfill, the hours truncated in UTC whatever the session's
time zone, and two messages of one person recorded at once counted one after the other."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import closing

import psycopg2
import pytest

from core.sqlite import load_migrations, load_queries
from outbox.model import MessageFilter, MessageHour, OutboxStore, Purpose, Status
from outbox.store import open_store
from tests.integration.outbox import test_store_contract as contract
from tests.unit.outbox import test_report_counters as counters
from tests.unit.outbox.test_report_counters import DAY, PAGE, ROOT, T0, WIDE, at, enqueue, failed, finish, row, sent

postgres_run_url = contract.postgres_run_url


@pytest.fixture
def store(postgres_run_url: str) -> Iterator[OutboxStore]:
    """The contract suite's schema, emptied, counters included."""
    contract.empty_postgres_tables(postgres_run_url)
    with closing(psycopg2.connect(postgres_run_url)) as conn, conn, conn.cursor() as cursor:
        cursor.execute("DELETE FROM message_hours; DELETE FROM send_hours")
    opened = open_store(postgres_run_url)
    yield opened
    opened.close()


# The unit module's store tests, here on PostgreSQL (the `store` fixture above).
test_conversations_start_with_a_first_message_or_after_24_hours_of_silence = (
    counters.test_conversations_start_with_a_first_message_or_after_24_hours_of_silence)
test_a_late_message_is_counted_but_never_starts_a_conversation = (
    counters.test_a_late_message_is_counted_but_never_starts_a_conversation)
test_messages_fall_in_the_utc_hour_of_metas_time_and_the_period_is_half_open = (
    counters.test_messages_fall_in_the_utc_hour_of_metas_time_and_the_period_is_half_open)
test_a_report_period_must_be_aware_and_not_reversed = counters.test_a_report_period_must_be_aware_and_not_reversed
test_every_final_outcome_counts_once_at_the_hour_it_was_reached = (
    counters.test_every_final_outcome_counts_once_at_the_hour_it_was_reached)
test_outcomes_of_one_key_add_up_per_page_and_for_every_page = (
    counters.test_outcomes_of_one_key_add_up_per_page_and_for_every_page)
test_a_failed_message_retried_then_sent_counts_once_as_sent = (
    counters.test_a_failed_message_retried_then_sent_counts_once_as_sent)
test_a_dead_message_retried_and_failing_again_counts_once_at_its_new_hour = (
    counters.test_a_dead_message_retried_and_failing_again_counts_once_at_its_new_hour)
test_a_refused_transition_changes_no_counter = counters.test_a_refused_transition_changes_no_counter
test_what_never_becomes_final_counts_nothing = counters.test_what_never_becomes_final_counts_nothing
test_a_broadcast_cancel_counts_each_message_it_cancelled_once = (
    counters.test_a_broadcast_cancel_counts_each_message_it_cancelled_once)
test_a_cancelled_message_keeps_the_error_of_its_last_attempt = (
    counters.test_a_cancelled_message_keeps_the_error_of_its_last_attempt)
test_an_outcome_without_a_time_counts_at_its_send_time_else_at_the_stores_clock = (
    counters.test_an_outcome_without_a_time_counts_at_its_send_time_else_at_the_stores_clock)


def test_hours_are_utc_hours_whatever_the_sessions_time_zone(postgres_run_url: str) -> None:
    """India is UTC+05:30: an hour truncated in the session's zone would start at half past in UTC."""
    contract.empty_postgres_tables(postgres_run_url)
    url = postgres_run_url + "%20-cTimeZone%3DAsia/Kolkata"  # a second option in the URL's `options`
    opened = open_store(url)
    try:
        with closing(psycopg2.connect(url)) as conn, conn.cursor() as cursor:
            cursor.execute("DELETE FROM message_hours; DELETE FROM send_hours; SHOW TimeZone")
            assert cursor.fetchone()[0] == "Asia/Kolkata"
            conn.commit()
        opened.record_user_message(PAGE, "u1", at(50), "hola")
        message = finish(opened, enqueue(opened, "u1"), failed(at(50)))
        opened.retry(message.id, at(55))
        finish(opened, opened.get(message.id), failed(at(58)), now=at(58))
        opened.cancel(enqueue(opened, "u2").id, at(59))
        enqueue(opened, "u3", key="broadcast:1:u3:0:0")
        assert opened.cancel_pending_by_key_prefix("broadcast:1:", at(59)) == 1

        assert opened.message_hours(PAGE, *WIDE) == [MessageHour(T0, PAGE, 1, 1, 1)]
        assert opened.send_hours(PAGE, *WIDE) == [row(T0, Status.CANCELLED, 2),
                                                  row(T0, Status.FAILED, reason="graph_551", error=551)]
    finally:
        opened.close()


def test_two_messages_of_one_new_person_recorded_at_once_count_one_new_person(postgres_run_url: str) -> None:
    """Two stores (two processes: the Rasa channel and the app) record the same person's first messages at the same
    time: the person's row is locked, so the second sees the first and only one is a new person."""
    contract.empty_postgres_tables(postgres_run_url)
    with closing(psycopg2.connect(postgres_run_url)) as conn, conn, conn.cursor() as cursor:
        cursor.execute("DELETE FROM message_hours; DELETE FROM send_hours")
    stores = [open_store(postgres_run_url) for _ in range(4)]
    start = threading.Barrier(len(stores))
    errors: list[BaseException] = []

    def record(store: OutboxStore, n: int) -> None:
        try:
            start.wait()
            for person in range(5):
                store.record_user_message(PAGE, f"p{person}", at(n), f"mensaje {n}")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=record, args=(store, n)) for n, store in enumerate(stores)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for store in stores:
            store.close()
    assert errors == []
    checking = open_store(postgres_run_url)
    try:
        assert checking.message_hours(PAGE, *WIDE) == [MessageHour(T0, PAGE, 20, 5, 5)]
    finally:
        checking.close()


def test_the_migration_counts_the_outcomes_already_stored(postgres_run_url: str) -> None:
    """PostgreSQL migration 009 on a schema at 008 holding final messages: each at its send time, else its creation
    time; a retry takes back exactly what the backfill counted."""
    migrations = load_migrations(ROOT / "outbox" / "sql" / "postgres")
    with contract.postgres_schema() as url:
        with closing(psycopg2.connect(url)) as conn, conn, conn.cursor() as cursor:
            queries = load_queries(ROOT / "outbox" / "sql" / "postgres")
            cursor.execute(queries["create_migrations_table"])
            for migration in migrations[:8]:
                cursor.execute(migration.script)
                cursor.execute(queries["record_migration"], {"version": migration.version, "name": migration.name})
            for key, status, created, sent_at, reason, error, purpose in [
                ("a", "sent", at(-130), at(10), None, None, "reply"),
                ("b", "blocked", at(-50), None, "outside_window", None, "reply"),
                ("c", "failed", at(70), None, "graph_551", 551, "reply"),
                ("d", "cancelled", at(80), None, None, None, "follow_up"),
                ("e", "pending", at(90), None, None, None, "reply"),
            ]:
                cursor.execute("INSERT INTO conversations (page_id, user_id) VALUES (%s, %s)", (PAGE, key))
                cursor.execute(
                    "INSERT INTO messages (page_id, recipient_id, message, sender, purpose, idempotency_key, status,"
                    " created_at, due_at, next_attempt_at, attempts, max_attempts, reason_code, last_error_code,"
                    " sent_at) VALUES (%s, %s, '{}', 'bot', %s, %s, %s, %s, %s, %s, 1, 8, %s, %s, %s)",
                    (PAGE, key, purpose, key, status, created, created, created, reason, error, sent_at))
        store = open_store(url)
        try:
            assert store.send_hours(None, *WIDE) == [
                row(at(-60), Status.BLOCKED, reason="outside_window"),
                row(T0, Status.SENT),
                row(at(60), Status.CANCELLED, purpose=Purpose.FOLLOW_UP),
                row(at(60), Status.FAILED, reason="graph_551", error=551),
            ]
            [old_failed] = store.find(MessageFilter(statuses=(Status.FAILED,)))
            store.retry(old_failed.id, at(300))
            finish(store, store.get(old_failed.id), sent(at(310)), now=at(310))
            assert [(found.hour, found.status) for found in store.send_hours(None, T0 - DAY, T0 + DAY)] == [
                (at(-60), Status.BLOCKED), (T0, Status.SENT), (at(60), Status.CANCELLED), (at(300), Status.SENT)]
            assert store.message_hours(None, *WIDE) == []
            assert store.message_hours_since() is None  # nobody had written before the counter
        finally:
            store.close()


def test_an_outbox_upgraded_with_peoples_messages_says_when_its_counter_began(postgres_run_url: str) -> None:
    """PostgreSQL migration 009 on an outbox where people had written: the reports say «sin datos» before it."""
    migrations = load_migrations(ROOT / "outbox" / "sql" / "postgres")
    with contract.postgres_schema() as url:
        with closing(psycopg2.connect(url)) as conn, conn, conn.cursor() as cursor:
            queries = load_queries(ROOT / "outbox" / "sql" / "postgres")
            cursor.execute(queries["create_migrations_table"])
            for migration in migrations[:8]:
                cursor.execute(migration.script)
                cursor.execute(queries["record_migration"], {"version": migration.version, "name": migration.name})
            cursor.execute("INSERT INTO conversations (page_id, user_id, last_user_message_at) VALUES (%s, 'u1', %s)",
                           (PAGE, T0))
        store = open_store(url)
        try:
            started = store.message_hours_since()
            assert started is not None and started.utcoffset() is not None and started > T0
        finally:
            store.close()


def test_a_new_outbox_counts_people_from_the_start(store: OutboxStore) -> None:
    store.record_user_message(PAGE, "u1", T0, "hola")
    assert store.message_hours_since() is None
