"""One busy conversation must not hide the others from `claim_pending` (SQLite and PostgreSQL).

Were the candidates the oldest pending events and `limit` a count of events (own in-flight ones included), a user
with `limit` or more pending messages would fill every claim with their own events, and a later user's message would
not be claimed by that instance until the backlog fell below `limit` (in the embedded profile, with one Rasa, nobody
else answered meanwhile). The candidates are conversations (`GROUP BY conversation_key ORDER BY min(id)`), their
events taken round robin up to `limit`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from connectors.ingest import IngestJournal
from meta.events import parse_webhook
from tests.support import meta_payloads as meta

SPAMMER, VICTIM = "7000000000000001", "7000000000000002"
LIMIT = 20


def test_a_backlog_of_one_user_does_not_starve_another_users_message(store: IngestJournal) -> None:
    items = [meta.text_message(mid=f"m_spam_{n}", text=str(n), sender=SPAMMER) for n in range(LIMIT + 5)]
    store.record(parse_webhook(meta.webhook(meta.entry(items))))
    store.record(parse_webhook(meta.webhook(meta.entry([meta.text_message(mid="m_victim", text="hola",
                                                                          sender=VICTIM)]))))
    now = datetime.now(timezone.utc)
    claimed = store.claim_pending("rasa", now, timedelta(seconds=30), limit=LIMIT)
    assert VICTIM in {stored.event.user_id for stored in claimed}, "the other user's message is claimed too"


def test_the_backlog_still_held_by_the_owner_does_not_hide_a_new_conversation(store: IngestJournal) -> None:
    """The owner's own in-flight backlog comes back on every claim: it still leaves room for the other user."""
    items = [meta.text_message(mid=f"m_spam_{n}", text=str(n), sender=SPAMMER) for n in range(LIMIT * 2)]
    store.record(parse_webhook(meta.webhook(meta.entry(items))))
    now = datetime.now(timezone.utc)
    first = store.claim_pending("rasa", now, timedelta(seconds=30), limit=LIMIT)
    assert {stored.event.user_id for stored in first} == {SPAMMER} and len(first) == LIMIT
    store.record(parse_webhook(meta.webhook(meta.entry([meta.text_message(mid="m_victim", text="hola",
                                                                          sender=VICTIM)]))))

    again = store.claim_pending("rasa", now, timedelta(seconds=30), limit=LIMIT)

    assert len(again) == LIMIT
    assert [stored.event.user_id for stored in again].count(VICTIM) == 1
    assert [stored.id for stored in again] == sorted(stored.id for stored in again), "in id order"
