"""The feeder's claim holds the journal's write lock for the claims only (issue 11: the webhook's commits queue behind
it). Under a backlog the reads that pick the conversations and fetch their events scan the pending rows; inside
`BEGIN IMMEDIATE` they held every webhook commit for ~10 ms, longer when Rasa is short of CPU. SQLite's own trace
of the statements the feeder's connection runs tells which ran inside the transaction."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from connectors.ingest import DONE, ROLE_FEEDER, ROLE_WEBHOOK, IngestStore
from meta.events import InboundEvent, parse_webhook
from tests.support import meta_payloads as meta

NOW = datetime(2026, 11, 30, 21, 0, tzinfo=timezone.utc)
LEASE = timedelta(seconds=30)


def messages(count: int, users: int, tag: str) -> list[InboundEvent]:
    return [
        event
        for i in range(count)
        for event in parse_webhook(
            meta.webhook(meta.entry([meta.text_message(mid=f"{tag}-{i}", text="hola", sender=f"{7100 + i % users}")]))
        )
    ]


def traced(store: IngestStore) -> list[str]:
    statements: list[str] = []
    store._db._conn.set_trace_callback(statements.append)
    return statements


def inside_transactions(statements: list[str]) -> list[str]:
    inside, within = [], False
    for statement in statements:
        head = statement.strip().upper()
        if head.startswith("BEGIN"):
            within = True
        elif head.startswith(("COMMIT", "ROLLBACK")):
            within = False
        elif within:
            inside.append(head)
    return inside


def test_the_claim_reads_outside_the_write_lock_and_claims_inside_it(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    webhook = IngestStore(path, role=ROLE_WEBHOOK)
    feeder = IngestStore(path, role=ROLE_FEEDER)
    try:
        webhook.record(messages(300, 60, "backlog"))
        statements = traced(feeder)
        claimed = feeder.claim_pending("rasa", NOW, LEASE, limit=20)
        assert len(claimed) == 20 and len({stored.event.conversation_key for stored in claimed}) == 20
        inside = inside_transactions(statements)
        assert inside, "the claims are written in a transaction"
        assert all(
            s.startswith(("INSERT INTO INGEST_CLAIMS", "SELECT 1 FROM INBOUND_EVENTS WHERE", "PRAGMA")) for s in inside
        ), inside
        assert not any("GROUP BY" in s or "ROW_NUMBER" in s for s in inside)  # the scans of the pending rows
        assert set(feeder.claims()) == {stored.event.conversation_key for stored in claimed}
    finally:
        feeder.close()
        webhook.close()


def test_a_conversation_drained_since_the_read_is_not_claimed(tmp_path: Path) -> None:
    """Two owners race: the first picks conversations from its snapshot, the second claims, runs and finishes
    one of them and lets it go before the first takes its claims. The first claims only what still has pending
    events; the drained one is nobody's."""
    path = tmp_path / "journal.sqlite3"
    webhook = IngestStore(path, role=ROLE_WEBHOOK)
    first = IngestStore(path, role=ROLE_FEEDER)
    second = IngestStore(path, role=ROLE_FEEDER)
    try:
        webhook.record(messages(4, 2, "race"))  # two conversations, two events each
        drained: list[str] = []

        def drain_one_on_begin(statement: str) -> None:
            if statement.strip().upper().startswith("BEGIN") and not drained:
                key = second.claim_pending("other", NOW, LEASE, limit=1)[0].event.conversation_key
                for stored in second.pending():
                    if stored.event.conversation_key == key:
                        second.finish(stored.id, DONE)
                second.release_claim("other", key)
                drained.append(key)

        first._db._conn.set_trace_callback(drain_one_on_begin)
        claimed = first.claim_pending("rasa", NOW, LEASE)
        assert drained, "the second owner ran inside the first one's claim"
        assert {stored.event.conversation_key for stored in claimed}.isdisjoint(drained)
        assert drained[0] not in first.claims()
        assert len(first.claims()) == 1
    finally:
        second.close()
        first.close()
        webhook.close()
