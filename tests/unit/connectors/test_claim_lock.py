"""The feeder's claim holds the journal's write lock for the claims only (issue 11: the webhook's commits queue behind
it). Under a backlog the reads that pick the conversations and fetch their events scan the pending rows; inside
`BEGIN IMMEDIATE` they held every webhook commit for ~10 ms, longer when Rasa is short of CPU. And a transaction of
several statements holds the lock while the feeder's thread waits for the GIL between them (Rasa's event loop keeps
it busy): the feeder's frequent writes are one statement each, with no BEGIN (`SQLiteFile.write_statement`). SQLite's
own trace of the statements the feeder's connection runs tells what ran and where."""

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


def writes(statements: list[str]) -> list[str]:
    return [s.strip().upper() for s in statements if s.strip().upper().startswith(("INSERT", "UPDATE", "DELETE"))]


def test_the_claim_reads_outside_the_write_lock_and_claims_in_one_statement(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    webhook = IngestStore(path, role=ROLE_WEBHOOK)
    feeder = IngestStore(path, role=ROLE_FEEDER)
    try:
        webhook.record(messages(300, 60, "backlog"))
        statements = traced(feeder)
        claimed = feeder.claim_pending("rasa", NOW, LEASE, limit=20)
        assert len(claimed) == 20 and len({stored.event.conversation_key for stored in claimed}) == 20
        assert not any(s.strip().upper().startswith("BEGIN") for s in statements), statements
        assert not inside_transactions(statements)
        (claims,) = writes(statements)  # the 20 claims: one statement, its own transaction
        assert claims.startswith("INSERT INTO INGEST_CLAIMS")
        assert "GROUP BY" not in claims and "ROW_NUMBER" not in claims  # the scans of the pending rows are reads
        assert set(feeder.claims()) == {stored.event.conversation_key for stored in claimed}
    finally:
        feeder.close()
        webhook.close()


def test_a_conversation_drained_since_the_read_is_not_claimed(tmp_path: Path) -> None:
    """Two owners race: the first picks conversations from its snapshot, the second claims, runs and finishes
    one of them and lets it go before the first's claim statement runs. The first claims only what still has pending
    events; the drained one is nobody's."""
    path = tmp_path / "journal.sqlite3"
    webhook = IngestStore(path, role=ROLE_WEBHOOK)
    first = IngestStore(path, role=ROLE_FEEDER)
    second = IngestStore(path, role=ROLE_FEEDER)
    try:
        webhook.record(messages(4, 2, "race"))  # two conversations, two events each
        drained: list[str] = []

        def drain_one_on_claim(statement: str) -> None:  # SQLite traces a statement before it takes any lock
            if statement.strip().upper().startswith("INSERT INTO INGEST_CLAIMS") and not drained:
                key = second.claim_pending("other", NOW, LEASE, limit=1)[0].event.conversation_key
                for stored in second.pending():
                    if stored.event.conversation_key == key:
                        second.finish(stored.id, DONE)
                second.release_claim("other", key)
                drained.append(key)

        first._db._conn.set_trace_callback(drain_one_on_claim)
        claimed = first.claim_pending("rasa", NOW, LEASE)
        assert drained, "the second owner ran inside the first one's claim"
        assert {stored.event.conversation_key for stored in claimed}.isdisjoint(drained)
        assert drained[0] not in first.claims()
        assert len(first.claims()) == 1
    finally:
        second.close()
        first.close()
        webhook.close()


def test_the_feeders_turn_writes_are_one_statement_each(tmp_path: Path) -> None:
    """What the feeder writes for every message (renew, finish, release, the window and the send log) never opens a
    transaction: the lock lives inside one SQLite call."""
    path = tmp_path / "journal.sqlite3"
    webhook = IngestStore(path, role=ROLE_WEBHOOK)
    feeder = IngestStore(path, role=ROLE_FEEDER)
    try:
        webhook.record(messages(6, 3, "turn"))
        claimed = feeder.claim_pending("rasa", NOW, LEASE)
        keys = [stored.event.conversation_key for stored in claimed]
        statements = traced(feeder)
        assert feeder.renew_claims("rasa", [*keys, "nobody's"], NOW + LEASE, LEASE) == list(dict.fromkeys(keys))
        for stored in claimed:
            feeder.finish(stored.id, DONE)
            feeder.window_applied(stored.id)
            feeder.log_send(stored.event.page_id, stored.event.user_id, {"text": "hola"}, "sent", "m-1")
        for key in set(keys):
            feeder.release_claim("rasa", key)
        assert not any(s.strip().upper().startswith("BEGIN") for s in statements), statements
        assert len(writes(statements)) == 1 + 3 * len(claimed) + len(set(keys))
        assert feeder.claims() == {} and feeder.counts_by_status() == {DONE: len(claimed)}
    finally:
        feeder.close()
        webhook.close()


def test_a_renewal_keeps_only_what_the_owner_still_holds(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite3"
    webhook = IngestStore(path, role=ROLE_WEBHOOK)
    first = IngestStore(path, role=ROLE_FEEDER)
    second = IngestStore(path, role=ROLE_FEEDER)
    try:
        webhook.record(messages(4, 4, "renew"))
        keys = [stored.event.conversation_key for stored in first.claim_pending("rasa", NOW, LEASE)]
        assert len(keys) == 4
        later = NOW + LEASE + timedelta(seconds=1)  # the first owner's leases ran out: the second takes one over
        taken = second.claim_pending("other", later, LEASE, limit=1)[0].event.conversation_key
        asked = [keys[2], keys[0], "nobody's", keys[3], keys[1]]
        kept = [key for key in asked if key in keys and key != taken]
        assert len(kept) == 3
        assert first.renew_claims("rasa", asked, later, LEASE) == kept, "in the order asked"
        assert first.claims()[taken][0] == "other"
        assert all(first.claims()[key] == ("rasa", later + LEASE) for key in kept)
    finally:
        second.close()
        first.close()
        webhook.close()
