"""Comments in through the real webhook process (connectors/webhook_server.py in the session's stack): signed `feed`
deliveries in Meta's shapes are in the comment journal when the 200 comes back, a redelivery is recorded once, and
malformed feed values are a 400 alone or skipped beside good ones, never a 500. (The 10,000-body fuzz of the running
webhook, tests/integration/test_webhook_fuzz.py, sends feed entries too.) What the app's processor later decides
about a pending comment is not this test's: a pending comment may already be replied or skipped when it looks."""

from __future__ import annotations

import sqlite3
import uuid
from contextlib import closing

from bot.stack import Stack
from sandbox import simulate
from tests.support.stack import PAGE_ID, Messenger


def journal_rows(stack: Stack, post_id: str) -> list[tuple[str, str, str, str, str]]:
    """(item, verb, comment_id, status, reason_code) of the post's changes, in the order they were recorded."""
    with closing(sqlite3.connect(str(stack.data_dir / "comment_journal.sqlite3"), timeout=10)) as conn:
        return conn.execute(
            "SELECT item, verb, coalesce(comment_id, ''), status, coalesce(reason_code, '') FROM feed_changes"
            " WHERE post_id = ? ORDER BY id", (post_id,)
        ).fetchall()


def test_feed_deliveries_are_recorded_before_the_200_once_each(messenger: Messenger, stack: Stack) -> None:
    post_id = simulate.new_post_id(PAGE_ID)
    person = f"61{uuid.uuid4().int % 10**13}"
    first = simulate.comment(PAGE_ID, person, "Ana Torres", post_id, "¿Precio?")
    first_id = first["value"]["comment_id"]
    changes = [
        first,
        simulate.comment(PAGE_ID, "61999", "Luis", post_id, "yo también", parent_id=first_id),
        simulate.comment(PAGE_ID, person, "Ana Torres", post_id, "¿Precio del combo?", comment_id=first_id,
                         verb="edited"),
        simulate.comment(PAGE_ID, PAGE_ID, "La página", post_id, "¡Te escribimos por interno! 📩",
                         parent_id=first_id),
        simulate.visitor_post(PAGE_ID, person, "Ana Torres", "¿Abren el domingo?", post_id=post_id),
    ]
    raw, headers = simulate.signed_request(simulate.feed_body(PAGE_ID, changes), messenger.app_secret)

    assert messenger.deliver_raw(raw, headers).status_code == 200
    rows = journal_rows(stack, post_id)  # no waiting: durable before the 200
    for _ in range(2):  # Meta redelivers on a slow answer: the same body
        assert messenger.deliver_raw(raw, headers).status_code == 200
    removal = simulate.comment(PAGE_ID, person, "Ana Torres", post_id, "", comment_id=first_id, verb="remove")
    assert messenger.deliver(simulate.feed_body(PAGE_ID, [removal])).status_code == 200

    assert [(item, verb) for item, verb, *_ in rows] == [
        ("comment", "add"), ("comment", "add"), ("comment", "edited"), ("comment", "add"), ("status", "add")]
    assert rows[0][2] == first_id and rows[0][3] in ("pending", "replied", "skipped")
    assert rows[1][3] in ("pending", "replied", "skipped"), "a reply is a comment too"
    assert rows[2][3:] == ("recorded", "comment_edited")
    assert rows[3][3:] == ("ignored", "by_page"), "the page's own comment is never answered"
    assert rows[4][3:] == ("recorded", "not_a_comment")
    after = journal_rows(stack, post_id)
    assert len(after) == 6 and after[-1][1:2] + after[-1][3:] == ("remove", "recorded", "comment_removed"), after


def test_malformed_feed_values_are_a_400_alone_and_skipped_beside_good_ones(messenger: Messenger,
                                                                            stack: Stack) -> None:
    post_id = simulate.new_post_id(PAGE_ID)
    good = simulate.comment(PAGE_ID, "61777", "Rosa", post_id, "info")
    broken = simulate.comment(PAGE_ID, "61778", "Pepe", post_id, "info")
    del broken["value"]["comment_id"]
    bad_time = simulate.comment(PAGE_ID, "61779", "Juan", post_id, "info", created_time=-5)

    alone = messenger.deliver(simulate.feed_body(PAGE_ID, [broken, bad_time]))
    not_an_object = messenger.deliver(simulate.feed_body(PAGE_ID, [{"field": "feed", "value": "¿precio?"}]))
    beside = messenger.deliver(simulate.feed_body(PAGE_ID, [broken, good, bad_time]))

    assert alone.status_code == 400 and "comment_id" in alone.json()["error"]
    assert not_an_object.status_code == 400
    assert beside.status_code == 200
    assert [row[2] for row in journal_rows(stack, post_id)] == [good["value"]["comment_id"]]
