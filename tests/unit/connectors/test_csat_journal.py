"""A rating reaches the app through the ingest journal: Meta's `messaging_feedback` and a satisfaction quick reply
are journaled for the app (`notice_pending`, never a turn of Rasa; the tap also opens the window), and the body the
connector posts to `POST /internal/csat/answer` says what the app records."""

from __future__ import annotations

import json

import pytest

from bot.internal_api import CsatAnswerRequest, FeedbackAnswerBody
from connectors.handoff import (
    FEEDBACK_ANSWER_MAX_CHARS,
    FEEDBACK_MAX_ANSWERS,
    Delivery,
    delivery_of,
    feedback_body,
)
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


def test_the_body_keeps_to_the_endpoints_caps_and_drops_nul() -> None:
    """Meta's parser takes NUL and any number of answers; the app's endpoint refuses them (422): the body the
    connector posts never carries them, so a signed rating is not refused for its shape."""
    item = simulate.feedback(PAGE, USER, "csat_\x003", 4, "Muy\x00 bien " + "x" * 3000, question_type="cs\x00at")
    questions = item["messaging_feedback"]["feedback_screens"][0]["questions"]
    for number in range(30):
        questions[f"q{number}"] = {"type": "free_form", "payload": "1"}
    body = feedback_body(parse_messaging_item(item, PAGE))
    assert len(body["answers"]) == FEEDBACK_MAX_ANSWERS
    first = body["answers"][0]
    assert (first["question_id"], first["type"], first["payload"]) == ("csat_3", "csat", "4")
    assert first["follow_up"].startswith("Muy bien x") and "\x00" not in json.dumps(body)
    request = CsatAnswerRequest.model_validate(body)  # what the endpoint reads: accepted
    assert len(request.answers) == FEEDBACK_MAX_ANSWERS


def test_the_caps_are_the_endpoints() -> None:
    assert CsatAnswerRequest.model_fields["answers"].metadata[0].max_length == FEEDBACK_MAX_ANSWERS
    for field, cap in FEEDBACK_ANSWER_MAX_CHARS.items():
        limits = [getattr(m, "max_length", None) for m in FeedbackAnswerBody.model_fields[field].metadata]
        assert cap in limits, field


@pytest.mark.parametrize(("status", "delivery"), [
    (200, Delivery.CONFIRMED), (400, Delivery.REFUSED), (413, Delivery.REFUSED), (422, Delivery.REFUSED),
    (401, Delivery.UNREACHABLE), (403, Delivery.UNREACHABLE), (404, Delivery.UNREACHABLE),
    (408, Delivery.UNREACHABLE), (429, Delivery.UNREACHABLE), (500, Delivery.UNREACHABLE),
    (503, Delivery.UNREACHABLE)])
def test_a_refusal_for_good_is_told_from_not_now(status: int, delivery: Delivery) -> None:
    assert delivery_of(status) is delivery
