"""One busy conversation must not hide the others from `claim_pending` (SQLite and PostgreSQL).

`limit` counts events, and the candidates are the oldest pending events (own in-flight ones included): a user with
`limit` or more pending messages fills every claim with their own events, and a later user's message is not claimed
by that instance until the backlog falls below `limit` (in the embedded profile, with one Rasa, nobody else is
answered meanwhile). Marked xfail(strict) until the candidates are chosen per conversation (e.g. `GROUP BY
conversation_key ORDER BY min(id)`, and a per-conversation cap on the events returned); the marker then comes off."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from connectors.ingest import IngestJournal
from meta.events import parse_webhook
from tests.support import meta_payloads as meta

SPAMMER, VICTIM = "7000000000000001", "7000000000000002"
LIMIT = 20


@pytest.mark.xfail(strict=True, raises=AssertionError,
                   reason="claim_pending picks candidates per event, not per conversation")
def test_a_backlog_of_one_user_does_not_starve_another_users_message(store: IngestJournal) -> None:
    items = [meta.text_message(mid=f"m_spam_{n}", text=str(n), sender=SPAMMER) for n in range(LIMIT + 5)]
    store.record(parse_webhook(meta.webhook(meta.entry(items))))
    store.record(parse_webhook(meta.webhook(meta.entry([meta.text_message(mid="m_victim", text="hola",
                                                                          sender=VICTIM)]))))
    now = datetime.now(timezone.utc)
    claimed = store.claim_pending("rasa", now, timedelta(seconds=30), limit=LIMIT)
    assert VICTIM in {stored.event.user_id for stored in claimed}, "the other user's message is claimed too"
