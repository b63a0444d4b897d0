"""Fuzzing the webhook's decision in-process: 10,000 generated bodies (issue 8, "Prove it holds").

For every body, signed or not: `judge_delivery` answers 200, 400, 403 or 413 and never raises; nothing unsigned is
accepted; every accepted event serialises for storage, round-trips, and its `user_text()`, `shown_text()` and
`metadata()` work. The accepted events are then stored in a real SQLite ingest store and every stored row is read
back and parsed: no half-stored event. On the old code, `messaging: 5`, `attachments: 7`, `1e400`, deep nesting
and lone surrogates raised (TypeError, OverflowError, RecursionError, UnicodeEncodeError), i.e. a 500.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from contextlib import closing
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.ingest import IngestStore
from meta.delivery import judge_delivery
from meta.events import InboundEvent
from tests.support.webhook_fuzz import (
    FuzzBody,
    random_byte_bodies,
    random_json_bodies,
    shaped_bodies,
    signed_or_not,
)

SECRET = "fuzz-app-secret-not-real"
FUZZ_SETTINGS = settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))


def check_event(event: InboundEvent) -> None:
    stored = json.dumps(event.to_dict(), ensure_ascii=False).encode("utf-8")  # what the ingest store writes
    assert InboundEvent.from_dict(json.loads(stored)) == event
    assert isinstance(event.user_text(), str) and isinstance(event.shown_text(), str)
    json.dumps(event.metadata(), ensure_ascii=False).encode("utf-8")  # travels into Rasa's tracker
    assert isinstance(event.dedup_key, str)
    if event.is_user_input or event.opens_window:
        assert event.user_id, "what Rasa or the window acts on has its user"


def fuzz(family: st.SearchStrategy[FuzzBody], examples: int, tmp_path: Path) -> Counter[str]:
    statuses: Counter[str] = Counter()
    accepted: list[list[InboundEvent]] = []

    @settings(FUZZ_SETTINGS, max_examples=examples)
    @given(family)
    def run(body: FuzzBody) -> None:
        verdict = judge_delivery(body.raw, body.signature, SECRET)
        statuses[f"{body.family}/{'signed' if body.signed else 'unsigned'}/{verdict.status}"] += 1
        assert verdict.status in (200, 400, 403, 413), verdict
        if not body.signed:
            assert verdict.status == 403, "nothing unsigned is parsed or stored"
            return
        assert verdict.status != 403
        for event in verdict.events:
            check_event(event)
        if verdict.events:
            accepted.append(list(verdict.events))

    run()
    store = IngestStore(tmp_path / "messenger.sqlite3")
    try:
        for start in range(0, len(accepted), 500):
            store.record_many([(events, "") for events in accepted[start : start + 500]])
    finally:
        store.close()
    with closing(sqlite3.connect(tmp_path / "messenger.sqlite3")) as conn:
        rows = conn.execute("SELECT event_json FROM inbound_events").fetchall()
    for (event_json,) in rows:
        check_event(InboundEvent.from_dict(json.loads(event_json)))
    statuses["stored rows, all parsed back"] = len(rows)
    print(f"\nwebhook fuzz (in-process), {sum(v for k, v in statuses.items() if '/' in k)} bodies:", dict(statuses))
    return statuses


def test_fuzz_meta_shapes_with_random_and_poisoned_values(tmp_path: Path) -> None:
    statuses = fuzz(signed_or_not(shaped_bodies(), "shaped", SECRET), 3000, tmp_path)
    assert statuses["shaped/signed/200"] > 0 and statuses["shaped/signed/400"] > 0, statuses


def test_fuzz_random_json(tmp_path: Path) -> None:
    statuses = fuzz(signed_or_not(random_json_bodies, "json", SECRET), 2500, tmp_path)
    assert statuses["json/signed/400"] > 0, statuses


def test_fuzz_random_bytes(tmp_path: Path) -> None:
    statuses = fuzz(signed_or_not(random_byte_bodies, "bytes", SECRET), 4500, tmp_path)
    assert statuses["bytes/signed/400"] > 0, statuses
