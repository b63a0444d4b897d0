"""Reply keys of a retried turn: the ingest journal's count of reverted turns (`reverted_turns`, what the channel
derives a turn's outbox keys from) and the fault tests' count of replies queued twice under two keys.

Each test fails on the code before: the journal had no such count (the keys came from `attempts`, which every
failure bumps, so a turn merely replayed after a failed write queued its first replies again under new keys), and
the fault tests compared what was sent with what the outbox holds, which cannot see a reply queued twice.
"""

from __future__ import annotations

import collections
import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from connectors.ingest import _MIGRATIONS, PENDING, IngestStore, utc_now_iso
from meta.events import parse_webhook
from tests.integration.faults.support import repeated_replies, sent_twice
from tests.support import meta_payloads as meta

DISCLOSURE = "🤖 Hola, soy el asistente virtual automático de esta página."
ANSWER = "Ese tema todavía no está en mi información."


def test_a_journal_written_before_the_counter_gains_it_and_keeps_its_pending_event(tmp_path: Path) -> None:
    """A journal at the schema before `reverted_turns` (a pending event in it) is migrated in place: the event is
    still pending, with no reverted turn."""
    path = tmp_path / "messenger.sqlite3"
    event = parse_webhook(meta.webhook(meta.entry([meta.text_message(mid="m_old")])))[0]
    before = next(number for number, script in enumerate(_MIGRATIONS) if "reverted_turns" in script)
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        for script in _MIGRATIONS[:before]:
            conn.executescript("BEGIN;" + script + "COMMIT;")
        conn.execute(f"PRAGMA user_version={before}")
        conn.execute(
            "INSERT INTO inbound_events (dedup_key, page_id, user_id, kind, status, event_json, received_at, attempts)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 1)",
            (event.dedup_key, event.page_id, event.user_id, event.kind.value, PENDING,
             json.dumps(event.to_dict()), utc_now_iso()),
        )
    store = IngestStore(path)
    try:
        [pending] = store.pending()
        assert pending.event.mid == "m_old" and pending.attempts == 1
        assert store.reverted_turns(pending.id) == 0, "an event from before the counter has had no reverted turn"
    finally:
        store.close()


def test_only_a_reverted_turn_moves_the_counter_and_it_survives_a_restart(tmp_path: Path) -> None:
    """A failed attempt (a write refused, a crash) counts an attempt only; a turn undone after a failed action call
    counts both, in one write; both are read back after a restart."""
    path = tmp_path / "messenger.sqlite3"
    store = IngestStore(path)
    [stored] = store.record(parse_webhook(meta.webhook(meta.entry([meta.text_message(mid="m_1")]))))
    assert store.note_attempt_failed(stored.id, "OperationalError('database is locked')") == 1
    assert store.reverted_turns(stored.id) == 0, "a failed write replays the same turn: no new keys"
    assert store.note_turn_reverted(stored.id, "action_knowledge_answer: the action server answered 502") == (2, 1)
    store.close()

    reopened = IngestStore(path)
    try:
        [pending] = reopened.pending()
        assert pending.attempts == 2 and reopened.reverted_turns(pending.id) == 1
    finally:
        reopened.close()


def event_row(dedup_key: str, reverted_turns: int = 0) -> dict[str, Any]:
    return {"page_id": "p1", "dedup_key": dedup_key, "reverted_turns": reverted_turns}


def outbox_row(key: str, text: str, recipient: str = "u1") -> dict[str, Any]:
    return {"idempotency_key": key, "message": json.dumps({"text": text}), "recipient_id": recipient}


def test_a_reply_queued_again_under_new_keys_is_caught_where_sent_twice_sees_nothing() -> None:
    """Finding 1 as the outbox held it: the notice queued by the failed attempt and again by the replay under
    `…:attempt1:1`, each row sent once. Compared with the outbox, nothing was sent twice; per event it was."""
    rows = [
        outbox_row("reply:p1:message:m_1:1", DISCLOSURE),
        outbox_row("reply:p1:message:m_1:attempt1:1", DISCLOSURE),
        outbox_row("reply:p1:message:m_1:attempt1:2", ANSWER),
    ]
    sent = collections.Counter((row["recipient_id"], json.loads(row["message"])["text"]) for row in rows)
    assert sent_twice(sent, sent) == {}, "the blind spot: each of the two rows reached the Send API once"

    assert repeated_replies([event_row("message:m_1")], rows) == {("message:m_1", DISCLOSURE): 1}


def test_a_turn_undone_after_a_failed_action_call_may_say_its_first_replies_once_more() -> None:
    """The documented allowance: once per reverted turn, and not one more time."""
    rows = [
        outbox_row("reply:p1:message:m_1:1", DISCLOSURE),
        outbox_row("reply:p1:message:m_1:revert1:1", DISCLOSURE),
        outbox_row("reply:p1:message:m_1:revert1:2", ANSWER),
    ]
    assert repeated_replies([event_row("message:m_1", reverted_turns=1)], rows) == {}
    again = [*rows, outbox_row("reply:p1:message:m_1:revert1:3", DISCLOSURE)]
    assert repeated_replies([event_row("message:m_1", reverted_turns=1)], again) == {("message:m_1", DISCLOSURE): 1}


def test_replies_are_counted_per_event_not_across_events() -> None:
    """The same text answering two messages is two answers; `m_1` is not a prefix match for `m_10`."""
    rows = [outbox_row("reply:p1:message:m_1:1", ANSWER), outbox_row("reply:p1:message:m_10:1", ANSWER)]
    assert repeated_replies([event_row("message:m_1"), event_row("message:m_10")], rows) == {}
