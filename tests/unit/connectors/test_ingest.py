"""The durable inbox: a real SQLite file under tmp_path, reopened to simulate a restart."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from connectors.ingest import (
    _MIGRATIONS,
    DONE,
    FAILED,
    IGNORED,
    PENDING,
    RECORDED,
    IngestStore,
    initial_status,
)
from meta.events import InboundEvent, parse_webhook
from tests.support import meta_payloads as meta


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "var" / "messenger.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[IngestStore]:
    opened = IngestStore(db_path)
    yield opened
    opened.close()


def events_of(*items: dict[str, Any], standby: bool = False, page: str = meta.PAGE_ID) -> list[InboundEvent]:
    return parse_webhook(meta.webhook(meta.entry(list(items), page=page, standby=standby)))


def row(db_path: Path, event_id: int) -> dict[str, Any]:
    """Read one row with a separate connection, the way another process would see it."""
    with closing(sqlite3.connect(db_path)) as conn:
        conn.row_factory = sqlite3.Row
        found = conn.execute("SELECT * FROM inbound_events WHERE id = ?", (event_id,)).fetchone()
    assert found is not None
    return dict(found)


def test_record_returns_the_new_events_with_ids_and_statuses(store: IngestStore) -> None:
    events = events_of(meta.text_message(mid="m_1"), meta.read(meta.T0), meta.postback("m_3", "Menú", "/menu"))

    fresh = store.record(events)

    assert [stored.event for stored in fresh] == events
    assert [stored.status for stored in fresh] == [PENDING, RECORDED, PENDING]
    assert [stored.attempts for stored in fresh] == [0, 0, 0]
    assert fresh[0].id < fresh[1].id < fresh[2].id


def test_redelivery_returns_nothing_and_adds_no_row(store: IngestStore) -> None:
    body = meta.webhook(meta.entry([meta.text_message(mid="m_1"), meta.delivery(["m_x"], meta.T0)]))
    store.record(parse_webhook(body))

    again = store.record(parse_webhook(json.loads(json.dumps(body))))

    assert again == []
    assert store.counts_by_status() == {PENDING: 1, RECORDED: 1}


def test_partial_redelivery_returns_only_the_new_event(store: IngestStore) -> None:
    store.record(events_of(meta.text_message(mid="m_1", text="uno")))

    fresh = store.record(events_of(meta.text_message(mid="m_1", text="uno"), meta.text_message(mid="m_2", text="dos")))

    assert [stored.event.mid for stored in fresh] == ["m_2"]
    assert sum(store.counts_by_status().values()) == 2


def test_duplicate_inside_one_batch_is_recorded_once(store: IngestStore) -> None:
    fresh = store.record(events_of(meta.text_message(mid="m_dup"), meta.text_message(mid="m_dup")))

    assert len(fresh) == 1
    assert store.counts_by_status() == {PENDING: 1}


@pytest.mark.parametrize(
    ("item", "standby", "status"),
    [
        (meta.text_message(mid="m_u"), False, PENDING),
        (meta.quick_reply("m_q", "Sí", "/affirm"), False, PENDING),
        (meta.attachment_message("m_a", [meta.media("image")]), False, PENDING),
        (meta.postback("m_p", "Empezar", "GET_STARTED"), False, PENDING),
        (meta.delivery(["m_x"], meta.T0), False, RECORDED),
        (meta.read(meta.T0), False, RECORDED),
        (meta.reaction("m_x"), False, RECORDED),
        (meta.referral(meta.shortlink_referral()), False, PENDING),  # its link may start an answer (links/)
        (meta.referral(meta.shortlink_referral()), True, RECORDED),
        (meta.text_message(mid="m_sb"), True, RECORDED),  # standby: another app owns the thread
        (meta.postback("m_sbp", "Menú", "/menu"), True, RECORDED),
        (meta.pass_thread_control(), False, RECORDED),
        (meta.take_thread_control(), False, RECORDED),
        (meta.message_edit("m_e", "editado"), False, RECORDED),
        # a person writing from another app or the Page inbox: processed in order (it pauses the bot)
        (meta.echo("m_other", "de otra app", app_id=int(meta.OTHER_APP_ID)), False, PENDING),
        (meta.echo("m_inbox", "Soy Ana", app_id=meta.PAGE_INBOX_APP_ID_NUMBER), False, PENDING),
        (meta.echo("m_own", "respuesta del bot", app_id=int(meta.OUR_APP_ID)), False, IGNORED),
    ],
)
def test_initial_status(store: IngestStore, item: dict[str, Any], standby: bool, status: str) -> None:
    (event,) = events_of(item, standby=standby)

    (stored,) = store.record([event], own_app_id=meta.OUR_APP_ID)

    assert stored.status == status
    assert initial_status(event, meta.OUR_APP_ID) == status
    assert store.counts_by_status() == {status: 1}


def test_own_echo_needs_our_app_id_to_be_ignored(store: IngestStore) -> None:
    (event,) = events_of(meta.echo("m_own", "respuesta del bot", app_id=int(meta.OUR_APP_ID)))

    (stored,) = store.record([event], own_app_id="")

    assert stored.status == RECORDED


def test_changes_only_entry_is_recorded(store: IngestStore) -> None:
    (stored,) = store.record(parse_webhook(meta.webhook(meta.changes_entry())))

    assert stored.status == RECORDED
    assert stored.event.user_id == ""


def test_pending_survives_a_restart_in_insertion_order(db_path: Path) -> None:
    first = IngestStore(db_path)
    recorded = first.record(
        events_of(
            meta.text_message(mid="m_1", text="uno"),
            meta.read(meta.T0),
            meta.text_message(mid="m_2", text="dos", sender=meta.OTHER_USER_ID),
            meta.postback("m_3", "Menú", "/menu"),
        )
    )
    first.record(events_of(meta.text_message(mid="m_4", text="cuatro")))
    first.close()

    reopened = IngestStore(db_path)
    try:
        pending = reopened.pending()
    finally:
        reopened.close()

    assert [stored.event.mid for stored in pending] == ["m_1", "m_2", "m_3", "m_4"]
    assert [stored.id for stored in pending] == sorted(stored.id for stored in pending)
    assert pending[:3] == [stored for stored in recorded if stored.status == PENDING]
    assert pending[1].event.user_text() == "dos" and pending[1].event.user_id == meta.OTHER_USER_ID


def test_pending_rebuilds_standby_and_referral_fields(store: IngestStore) -> None:
    item = meta.postback("m_ref", "Empezar", "GET_STARTED", referral=meta.ad_referral(ad_id="23851234567890123"))
    item["x_future_field"] = {"nuevo": True}
    store.record(events_of(item))

    (stored,) = store.pending()

    assert stored.event.referral is not None and stored.event.referral["ad_id"] == "23851234567890123"
    assert stored.event.raw["x_future_field"] == {"nuevo": True}


def test_finish_done_leaves_pending_and_counts_an_attempt(store: IngestStore, db_path: Path) -> None:
    first, second = store.record(events_of(meta.text_message(mid="m_1"), meta.text_message(mid="m_2")))

    store.finish(first.id, DONE)

    assert [stored.id for stored in store.pending()] == [second.id]
    saved = row(db_path, first.id)
    assert (saved["status"], saved["attempts"], saved["last_error"]) == (DONE, 1, None)
    finished_at = datetime.fromisoformat(saved["finished_at"])
    assert finished_at.tzinfo is not None and finished_at.utcoffset() == timedelta(0)
    assert abs(datetime.now(timezone.utc) - finished_at) < timedelta(minutes=1)
    assert store.counts_by_status() == {DONE: 1, PENDING: 1}


def test_finish_failed_keeps_the_error(store: IngestStore, db_path: Path) -> None:
    (stored,) = store.record(events_of(meta.text_message(mid="m_1")))

    store.finish(stored.id, FAILED, "TransientGraphError('timed out')")

    saved = row(db_path, stored.id)
    assert (saved["status"], saved["last_error"]) == (FAILED, "TransientGraphError('timed out')")
    assert store.pending() == []
    assert store.counts_by_status() == {FAILED: 1}


def test_note_attempt_failed_counts_and_keeps_the_event_pending(store: IngestStore, db_path: Path) -> None:
    (stored,) = store.record(events_of(meta.text_message(mid="m_1")))

    assert store.note_attempt_failed(stored.id, "first error") == 1
    assert store.note_attempt_failed(stored.id, "second error") == 2

    (still_pending,) = store.pending()
    assert (still_pending.id, still_pending.status, still_pending.attempts) == (stored.id, PENDING, 2)
    assert row(db_path, stored.id)["last_error"] == "second error"


def test_attempts_survive_a_restart(db_path: Path) -> None:
    first = IngestStore(db_path)
    (stored,) = first.record(events_of(meta.text_message(mid="m_1")))
    first.note_attempt_failed(stored.id, "boom")
    first.close()

    reopened = IngestStore(db_path)
    try:
        assert [s.attempts for s in reopened.pending()] == [1]
        reopened.finish(stored.id, DONE)
        assert reopened.pending() == []
        assert row(db_path, stored.id)["attempts"] == 2
    finally:
        reopened.close()


def test_note_attempt_failed_on_an_unknown_id(store: IngestStore) -> None:
    assert store.note_attempt_failed(999_999, "nothing there") == 0


def test_page_for_user_is_the_last_page_written_to(store: IngestStore) -> None:
    store.record(events_of(meta.text_message(mid="m_1"), page=meta.PAGE_ID))
    assert store.page_for_user(meta.USER_ID) == meta.PAGE_ID

    store.record(events_of(meta.read(meta.T0, page=meta.OTHER_PAGE_ID), page=meta.OTHER_PAGE_ID))

    assert store.page_for_user(meta.USER_ID) == meta.OTHER_PAGE_ID
    assert store.page_for_user("7000000000000000") is None


def test_page_for_user_knows_the_recipient_of_an_echo(store: IngestStore) -> None:
    store.record(
        events_of(meta.echo("m_e", "Hola", app_id=meta.PAGE_INBOX_APP_ID_NUMBER, recipient=meta.OTHER_USER_ID))
    )

    assert store.page_for_user(meta.OTHER_USER_ID) == meta.PAGE_ID


def test_events_for_one_conversation_oldest_first(store: IngestStore) -> None:
    store.record(
        events_of(
            meta.text_message(mid="m_1", text="uno"),
            meta.text_message(mid="m_other", sender=meta.OTHER_USER_ID),
            meta.read(meta.T0),
        )
    )
    store.record(events_of(meta.echo("m_own", "respuesta", app_id=int(meta.OUR_APP_ID))), own_app_id=meta.OUR_APP_ID)

    rows = store.events_for(meta.PAGE_ID, meta.USER_ID)

    assert [(kind, status) for kind, status, _ in rows] == [("message", PENDING), ("read", RECORDED), ("echo", IGNORED)]
    assert json.loads(rows[0][2])["item"]["message"]["text"] == "uno"


def test_log_send_and_send_failures(store: IngestStore, db_path: Path) -> None:
    request = {"recipient": {"id": meta.USER_ID}, "messaging_type": "RESPONSE", "message": {"text": "¡Listo! 👍"}}
    store.log_send(meta.PAGE_ID, meta.USER_ID, request, "sent", message_id="m_sent1")
    store.log_send(
        meta.PAGE_ID,
        meta.USER_ID,
        request,
        "failed",
        error_code=551,
        error_message="This person isn't available right now.",
    )
    store.log_send(
        meta.OTHER_PAGE_ID,
        meta.OTHER_USER_ID,
        request,
        "failed",
        error_code=10,
        error_message="Message sent outside of allowed window",
    )

    assert store.send_failures() == [
        (meta.PAGE_ID, meta.USER_ID, 551, "This person isn't available right now."),
        (meta.OTHER_PAGE_ID, meta.OTHER_USER_ID, 10, "Message sent outside of allowed window"),
    ]
    with closing(sqlite3.connect(db_path)) as conn:
        sent = conn.execute(
            "SELECT request_json, message_id, created_at FROM send_log WHERE status = 'sent'"
        ).fetchall()
    assert len(sent) == 1
    assert json.loads(sent[0][0]) == request
    assert "¡Listo! 👍" in sent[0][0]  # stored readable, not \u-escaped
    assert sent[0][1] == "m_sent1"
    assert datetime.fromisoformat(sent[0][2]).utcoffset() == timedelta(0)


def test_no_send_failures_on_a_fresh_store(store: IngestStore) -> None:
    assert store.send_failures() == []


def test_a_failing_batch_records_nothing(store: IngestStore) -> None:
    good = events_of(meta.text_message(mid="m_1"))[0]

    def batch() -> Iterator[InboundEvent]:
        yield good
        raise RuntimeError("the parser broke mid-batch")

    with pytest.raises(RuntimeError, match="mid-batch"):
        store.record(batch())

    assert store.counts_by_status() == {}
    assert [stored.event.mid for stored in store.record([good])] == ["m_1"]  # no transaction left open


def test_migrations_set_user_version_and_are_idempotent(db_path: Path) -> None:
    IngestStore(db_path).close()
    with closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(_MIGRATIONS)

    second = IngestStore(db_path)
    second.record(events_of(meta.text_message(mid="m_1")))
    second.close()
    third = IngestStore(db_path)
    try:
        assert [stored.event.mid for stored in third.pending()] == ["m_1"]
    finally:
        third.close()

    with closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(_MIGRATIONS)
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"inbound_events", "send_log"} <= tables


def test_store_creates_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "messenger.sqlite3"

    IngestStore(path).close()

    assert path.is_file()


async def test_concurrent_deliveries_are_committed_together_and_each_gets_its_own_events(tmp_path) -> None:
    import asyncio

    from meta.events import parse_webhook

    store = IngestStore(tmp_path / "group.sqlite3")
    calls: list[int] = []
    original = store.record_many

    def counting(deliveries):
        calls.append(len(deliveries))
        return original(deliveries)

    store.record_many = counting  # type: ignore[method-assign]
    bodies = [
        {
            "object": "page",
            "entry": [
                {
                    "id": "1",
                    "time": 1,
                    "messaging": [
                        {
                            "sender": {"id": f"u{n}"},
                            "recipient": {"id": "1"},
                            "timestamp": 1,
                            "message": {"mid": f"m{n}", "text": f"hola {n}"},
                        }
                    ],
                }
            ],
        }
        for n in range(20)
    ]
    results = await asyncio.gather(*(store.record_async(parse_webhook(body)) for body in bodies))
    assert [[stored.event.mid for stored in fresh] for fresh in results] == [[f"m{n}"] for n in range(20)]
    assert sum(calls) == 20 and len(calls) < 20, calls
    again = await asyncio.gather(*(store.record_async(parse_webhook(body)) for body in bodies[:3]))
    assert again == [[], [], []]
    store.close()


# --- window journal (issue 8, item 10: window bookkeeping survives a crash) ---------------------------


def test_windows_of_events_not_for_rasa_are_journaled_in_the_same_commit(db_path: Path) -> None:
    """A reaction, a referral in standby and a standby message open the window but are not processed by Rasa: their
    window is journaled with the event (a crash right after the commit no longer loses it) and survives a restart.
    (A referral while we hold the thread is processed in order, like a message: its processing records the window.)"""
    store = IngestStore(db_path)
    fresh = store.record(
        events_of(meta.reaction("m_r"), meta.read(meta.T0))
        + events_of(meta.referral(meta.shortlink_referral()), standby=True)
        + events_of(meta.text_message(mid="m_sb"), standby=True)
        + events_of(meta.text_message(mid="m_rasa"), meta.referral(meta.shortlink_referral("otra")))
    )
    store.close()  # the crash: nothing applied

    assert [(s.event.kind.value, s.window_pending) for s in fresh] == [
        ("reaction", True),
        ("read", True),  # a receipt: the outbox marks what it sent as read (Outbox.record_receipt)
        ("referral", True),  # standby
        ("message", True),  # standby
        ("message", False),  # for Rasa: its processing records the window and is retried itself
        ("referral", False),  # processed in order (connectors/referrals.py): likewise
    ]
    reopened = IngestStore(db_path)
    try:
        journaled = reopened.windows_pending()
        assert [s.event.kind.value for s in journaled] == ["reaction", "read", "referral", "message"]
        reopened.window_applied(journaled[0].id)
        assert [s.event.kind.value for s in reopened.windows_pending()] == ["read", "referral", "message"]
        assert reopened.counts_by_status() == {RECORDED: 4, PENDING: 2}
    finally:
        reopened.close()


def test_a_stored_row_that_no_longer_parses_is_failed_not_crashing_recovery(store: IngestStore, db_path: Path) -> None:
    """Rows stored before the parser refused bad shapes (`text: 5`) must not crash the start-up recovery."""
    (good,) = store.record(events_of(meta.text_message(mid="m_ok")))
    (bad,) = store.record(events_of(meta.text_message(mid="m_bad")))
    poisoned = {"page_id": meta.PAGE_ID, "standby": False, "item": {**meta.text_message(mid="m_bad"), "message": 5}}
    with closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute("UPDATE inbound_events SET event_json = ? WHERE id = ?", (json.dumps(poisoned), bad.id))

    assert [s.id for s in store.pending()] == [good.id]
    assert row(db_path, bad.id)["status"] == FAILED
    assert row(db_path, bad.id)["last_error"].startswith("unparseable")


# --- retention (issue 8, item 10: inbound_events grows forever) -------------------------------------------

DAY = timedelta(days=1)


def _age(db_path: Path, event_id: int, days: float) -> None:
    at = (datetime.now(timezone.utc) - timedelta(days=days)).isoformat(timespec="milliseconds")
    with closing(sqlite3.connect(db_path)) as conn, conn:
        conn.execute("UPDATE inbound_events SET received_at = ? WHERE id = ?", (at, event_id))


def test_prune_deletes_old_finished_events_and_keeps_pending_ones(store: IngestStore, db_path: Path) -> None:
    done, failed, pending, recent = store.record(
        events_of(
            meta.text_message(mid="m_done"),
            meta.text_message(mid="m_failed"),
            meta.text_message(mid="m_pending"),
            meta.text_message(mid="m_recent"),
        )
    )
    store.finish(done.id, DONE)
    store.finish(failed.id, FAILED, "boom")
    store.finish(recent.id, DONE)
    for event in (done, failed, pending):
        _age(db_path, event.id, 40)
    store.log_send(meta.PAGE_ID, meta.USER_ID, {"message": {"text": "hola"}}, "sent", "m_out")

    result = store.prune(datetime.now(timezone.utc), retention=30 * DAY)

    assert result.events_deleted == 2
    assert {s.event.mid for s in store.pending()} == {"m_pending"}, "a pending event is never deleted"
    assert store.counts_by_status() == {PENDING: 1, DONE: 1}
    assert result.keys_kept == 0, "older than the dedup horizon: nothing to keep"
    assert result.sends_deleted == 0, "a recent send log stays"


def test_redelivery_inside_the_horizon_is_still_deduplicated_after_pruning(store: IngestStore, db_path: Path) -> None:
    """Retention shorter than Meta's redelivery horizon: the row goes, its dedup key stays, a redelivery is a no-op;
    past the horizon the key expires too."""
    body_items = (meta.text_message(mid="m_redelivered"), meta.reaction("m_redelivered"))
    fresh = store.record(events_of(*body_items))
    for stored in fresh:
        store.finish(stored.id, DONE)
        store.window_applied(stored.id)
        _age(db_path, stored.id, 2)

    result = store.prune(datetime.now(timezone.utc), retention=1 * DAY, dedup_horizon=7 * DAY)

    assert (result.events_deleted, result.keys_kept) == (2, 2)
    assert store.counts_by_status() == {}
    assert store.record(events_of(*body_items)) == [], "Meta's redelivery after pruning is still a duplicate"

    later = store.prune(datetime.now(timezone.utc) + 8 * DAY, retention=1 * DAY, dedup_horizon=7 * DAY)
    assert later.keys_expired == 2
    assert len(store.record(events_of(*body_items))) == 2, "past the horizon the keys are forgotten"


def test_prune_keeps_an_unapplied_window(store: IngestStore, db_path: Path) -> None:
    (reaction,) = store.record(events_of(meta.reaction("m_r")))
    _age(db_path, reaction.id, 40)

    assert store.prune(datetime.now(timezone.utc), retention=30 * DAY).events_deleted == 0
    assert [s.id for s in store.windows_pending()] == [reaction.id]


def test_prune_works_in_chunks(store: IngestStore, db_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import connectors.ingest as ingest

    monkeypatch.setattr(ingest, "_PRUNE_CHUNK", 3)
    fresh = store.record(events_of(*(meta.read(meta.T0 + n) for n in range(8))))
    for stored in fresh:
        store.window_applied(stored.id)  # the outbox heard of the receipt: nothing pending keeps the row
        _age(db_path, stored.id, 40)

    assert store.prune(datetime.now(timezone.utc), retention=30 * DAY).events_deleted == 8
    assert store.counts_by_status() == {}
