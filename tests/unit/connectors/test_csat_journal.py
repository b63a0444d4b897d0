"""A rating reaches the app through the ingest journal: Meta's `messaging_feedback` and a satisfaction quick reply
are journaled for the app (`notice_pending`, never a turn of Rasa; the tap also opens the window), and the body the
connector posts to `POST /internal/csat/answer` says what the app records."""

from __future__ import annotations

from connectors.handoff import feedback_body
from connectors.ingest_journal import PENDING, RECORDED, new_row
from meta.events import parse_messaging_item
from sandbox import simulate

PAGE, USER = "100000000000001", "2000000000000001"


def test_the_feedback_webhook_is_recorded_for_the_app() -> None:
    event = parse_messaging_item(simulate.feedback(PAGE, USER, "csat_12", 2, "Demoraron"), PAGE)
    row = new_row(event, own_app_id="999")
    assert (row.status, row.notice_pending, row.window_pending) == (RECORDED, True, False)
    assert feedback_body(event) == {
        "page_id": PAGE, "user_id": USER, "event_key": event.dedup_key, "timestamp_ms": 0, "via": "template",
        "answers": [{"question_id": "csat_12", "type": "csat", "payload": "2", "follow_up": "Demoraron"}]}


def test_a_rating_quick_reply_is_for_the_app_and_opens_the_window() -> None:
    event = parse_messaging_item(simulate.quick_reply(PAGE, USER, "5 · Excelente", '/csat{"score":5}'), PAGE)
    row = new_row(event, own_app_id="999")
    assert (row.status, row.notice_pending, row.window_pending) == (RECORDED, True, True)
    body = feedback_body(event)
    assert body["via"] == "quick_replies" and body["answers"][0]["payload"] == "5"
    assert body["timestamp_ms"] == event.timestamp_ms > 0


def test_any_other_message_still_goes_to_rasa() -> None:
    event = parse_messaging_item(simulate.quick_reply(PAGE, USER, "Sí", "/affirm"), PAGE)
    row = new_row(event, own_app_id="999")
    assert (row.status, row.notice_pending) == (PENDING, False)
