"""`OutboxStore.message_days` on PostgreSQL: tests/unit/outbox/test_message_days.py's store tests against the contract
suite's PostgreSQL schema (the day of an hour from `timestamptz` in UTC whatever the session's time zone)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing

import psycopg2
import pytest

from outbox.model import OutboxStore
from outbox.store import open_store
from tests.integration.outbox import test_store_contract as contract
from tests.unit.outbox import test_message_days as days

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


test_the_days_equal_the_hours_folded_in_python = days.test_the_days_equal_the_hours_folded_in_python
test_an_hour_belongs_to_the_local_day_of_its_start = days.test_an_hour_belongs_to_the_local_day_of_its_start
test_an_offset_of_a_day_or_more_and_a_bad_period_are_refused = (
    days.test_an_offset_of_a_day_or_more_and_a_bad_period_are_refused)
