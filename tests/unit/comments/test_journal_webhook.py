"""The webhook process's ASGI app (connectors/webhook_server.py) with a real comment journal (a SQLite file): a
signed `feed` delivery is in the journal before the 200, a redelivery is recorded once, a journal it cannot write
is 503 (Meta delivers again), malformed feed values are skipped or a 400, and a fuzz of Meta-shaped bodies with
feed changes answers 200 or a 4xx, every accepted change stored and read back."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from comments.journal import PENDING, RECORDED, CommentJournal, open_comment_journal
from connectors.ingest import IngestStore
from connectors.webhook_server import WEBHOOK_PATH, WebhookApp
from meta.signature import SIGNATURE_HEADER, sign
from sandbox import simulate
from tests.support import meta_payloads as meta
from tests.support.webhook_fuzz import FuzzBody, shaped_bodies, signed_or_not
from tests.unit.connectors.test_webhook_server import request

SECRET = "feed-webhook-test-secret-0123456789"
NOW = datetime(2026, 3, 2, 15, 0, tzinfo=timezone.utc)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[IngestStore]:
    journal = IngestStore(tmp_path / "messenger.sqlite3")
    yield journal
    journal.close()


@pytest.fixture
def comments(tmp_path: Path) -> Iterator[CommentJournal]:
    journal = open_comment_journal(f"sqlite:///{tmp_path / 'comment_journal.sqlite3'}")
    yield journal
    journal.close()


@pytest.fixture
def app(store: IngestStore, comments: CommentJournal) -> WebhookApp:
    return WebhookApp(store, app_secret=SECRET, verify_token="v", comments=comments, clock=lambda: NOW)


def post(app: WebhookApp, body: dict[str, Any] | bytes) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode("utf-8")
    return request(app, "POST", WEBHOOK_PATH, [raw], {SIGNATURE_HEADER: sign(raw, SECRET)})


def test_a_comment_delivery_is_in_the_journal_before_the_200(app: WebhookApp, comments: CommentJournal,
                                                             store: IngestStore) -> None:
    body = meta.webhook(meta.feed_entry(meta.comment_value("¿Precio?"), meta.reply_value(), meta.edited_value()))

    call = post(app, body)

    assert call.status == 200 and call.body == b"EVENT_RECEIVED"
    rows = list(reversed(comments.recent(meta.PAGE_ID, limit=10)))
    assert [(row.comment_id, row.status) for row in rows] == [
        (meta.COMMENT_ID, PENDING), (meta.OTHER_COMMENT_ID, PENDING), (meta.COMMENT_ID, RECORDED)]
    assert rows[0].message == "¿Precio?" and rows[0].received_at == NOW
    assert store.counts_by_status() == {}, "a feed change is no messaging event"


def test_a_redelivery_is_recorded_once(app: WebhookApp, comments: CommentJournal) -> None:
    raw = json.dumps(meta.webhook(meta.feed_entry(meta.comment_value()))).encode()

    statuses = [post(app, raw).status for _ in range(3)]

    assert statuses == [200, 200, 200]
    assert len(comments.recent(None, limit=10)) == 1


def test_messaging_and_feed_in_one_delivery_go_to_their_journals(app: WebhookApp, comments: CommentJournal,
                                                                  store: IngestStore) -> None:
    body = meta.webhook(meta.entry([meta.text_message(mid="m_mixed")]), meta.feed_entry(meta.visitor_post_value()))

    assert post(app, body).status == 200

    assert sum(store.counts_by_status().values()) == 1
    assert [row.item for row in comments.recent(None, limit=5)] == ["status"]


def test_a_comment_journal_it_cannot_write_is_503_and_the_redelivery_lands(
    store: IngestStore, tmp_path: Path
) -> None:
    class Broken(CommentJournal):
        failing = True

        def record(self, changes: Any, now: datetime) -> list[int]:
            if self.failing:
                raise OSError("disk full")
            return super().record(changes, now)

    broken = Broken(f"sqlite:///{tmp_path / 'broken.sqlite3'}")
    try:
        app = WebhookApp(store, app_secret=SECRET, verify_token="v", comments=broken)
        body = meta.webhook(meta.feed_entry(meta.comment_value()))
        assert post(app, body).status == 503
        assert broken.recent(None, 5) == []
        broken.failing = False
        assert post(app, body).status == 200, "Meta's redelivery"
        assert [row.comment_id for row in broken.recent(None, 5)] == [meta.COMMENT_ID]
    finally:
        broken.close()


def test_malformed_feed_values_are_skipped_beside_good_ones_or_refused_alone(app: WebhookApp,
                                                                             comments: CommentJournal) -> None:
    no_comment_id = meta.comment_value()
    del no_comment_id["comment_id"]
    bad_time = {**meta.comment_value(comment_id="1_2"), "created_time": "mañana"}

    alone = post(app, meta.webhook(meta.feed_entry(no_comment_id, bad_time)))
    beside = post(app, meta.webhook(meta.feed_entry(no_comment_id, meta.reply_value())))

    assert alone.status == 400 and b"comment_id" in alone.body
    assert beside.status == 200
    assert [row.comment_id for row in comments.recent(None, 5)] == [meta.OTHER_COMMENT_ID]


def test_the_sandbox_builders_go_through(app: WebhookApp, comments: CommentJournal) -> None:
    post_id = simulate.new_post_id(meta.PAGE_ID)
    first = simulate.comment(meta.PAGE_ID, "61001", "Ana", post_id, "info porfa")
    own = simulate.comment(meta.PAGE_ID, meta.PAGE_ID, "La página", post_id, "¡Te escribimos!",
                           parent_id=first["value"]["comment_id"])
    raw, headers = simulate.signed_request(simulate.feed_body(meta.PAGE_ID, [first, own]), SECRET)

    assert request(app, "POST", WEBHOOK_PATH, [raw], headers).status == 200
    rows = {row.from_id: row for row in comments.recent(meta.PAGE_ID, limit=5)}
    assert rows["61001"].status == PENDING and rows[meta.PAGE_ID].status == "ignored"
    assert rows[meta.PAGE_ID].is_reply


@settings(deadline=None, database=None, max_examples=150, suppress_health_check=list(HealthCheck))
@given(signed_or_not(shaped_bodies(), "shaped", SECRET))
def test_fuzzed_bodies_with_feed_changes_are_200_or_4xx_and_read_back(tmp_path_factory: Any, body: FuzzBody) -> None:
    folder = tmp_path_factory.mktemp("feedfuzz")
    store = IngestStore(folder / "messenger.sqlite3")
    comments = open_comment_journal(f"sqlite:///{folder / 'comment_journal.sqlite3'}")
    try:
        app = WebhookApp(store, app_secret=SECRET, verify_token="v", comments=comments)
        headers = {SIGNATURE_HEADER: body.signature} if body.signature is not None else {}
        call = request(app, "POST", WEBHOOK_PATH, [body.raw], headers)
        assert call.status == 200 or 400 <= call.status < 500, (call.status, call.body[:200])
        stored = comments.recent(None, limit=1000)
        if call.status != 200:
            assert stored == [], "nothing refused is stored"
        for row in stored:  # every stored change parses back to what was keyed
            assert row.change.dedup_key == row.dedup_key
    finally:
        comments.close()
        store.close()
