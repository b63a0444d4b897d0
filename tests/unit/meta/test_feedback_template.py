"""Meta's customer feedback template as the sandbox checks it (Meta's documented limits: title ≤ 65, subtitle ≤ 80,
button ≤ 20, one screen with one question, csat/nps/ces/free_form, question title 5–85, follow-up free_form with a
placeholder ≤ 65, no URLs, a privacy URL, 1–7 days; the CUSTOMER_FEEDBACK tag with this template only), and the
`messaging_feedback` webhook parsed (Meta's example, and any JSON: kept or refused, never a crash)."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from csat.model import feedback_template
from meta.events import EventKind, FeedbackAnswer, InboundEvent, MalformedItemError, parse_messaging_item, read_webhook
from meta.validate import validate_send_request
from sandbox import simulate

PAGE, USER = "100000000000001", "2000000000000001"


def request(message: dict[str, Any], tag: str | None = "CUSTOMER_FEEDBACK") -> dict[str, Any]:
    body: dict[str, Any] = {"recipient": {"id": USER}, "message": message,
                            "messaging_type": "MESSAGE_TAG" if tag else "RESPONSE"}
    if tag:
        body["tag"] = tag
    return body


def template() -> dict[str, Any]:
    return feedback_template(7, "https://tienda.example.ec/privacidad")


def payload_of(message: dict[str, Any]) -> dict[str, Any]:
    return message["attachment"]["payload"]


def question_of(message: dict[str, Any]) -> dict[str, Any]:
    return payload_of(message)["feedback_screens"][0]["questions"][0]


def test_our_template_is_accepted_in_the_window_and_with_the_tag() -> None:
    assert validate_send_request(request(template())) is None
    assert validate_send_request(request(template(), tag=None)) is None


def test_the_customer_feedback_tag_goes_with_the_template_only() -> None:
    error = validate_send_request(request({"text": "¿Cómo le atendimos?"}))
    assert error is not None and "CUSTOMER_FEEDBACK" in error.message


def set_in(path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    message = template()
    target: Any = payload_of(message)
    for key in path[:-1]:
        target = target[key]
    if value is _DROP:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return message


_DROP = object()
Q = ("feedback_screens", 0, "questions", 0)


@pytest.mark.parametrize(("path", "value", "words"), [
    (("title",), "x" * 66, "less than or equal to 65"),
    (("title",), _DROP, "title] is required"),
    (("title",), "Califíquenos en https://tienda.ec", "URL"),
    (("subtitle",), "x" * 81, "less than or equal to 80"),
    (("button_title",), "x" * 21, "less than or equal to 20"),
    (("business_privacy",), _DROP, "business_privacy] is required"),
    (("business_privacy",), {"url": "no es un enlace"}, "valid URL"),
    (("expires_in_days",), 8, "between 1 and 7"),
    (("expires_in_days",), 0, "between 1 and 7"),
    (("feedback_screens",), [], "too few"),
    (("feedback_screens",), [{"questions": [{"id": "a", "type": "csat"}]}] * 2, "too many"),
    (("feedback_screens", 0, "questions"), [{"id": "a", "type": "csat"}, {"id": "b", "type": "nps"}], "too many"),
    ((*Q, "id"), "abnj-4567", "alphanumeric"),
    ((*Q, "id"), "a" * 81, "less than or equal to 80"),
    ((*Q, "type"), "stars", "must be one of"),
    ((*Q, "title"), "¿Y?", "greater than or equal to 5"),
    ((*Q, "title"), "x" * 86, "less than or equal to 85"),
    ((*Q, "score_option"), "zero_to_ten", "must be one of"),
    ((*Q, "score_label"), "bueno_malo", "must be one of"),
    ((*Q, "follow_up"), {"type": "text"}, "must be one of"),
    ((*Q, "follow_up"), {"type": "free_form", "placeholder": "x" * 66}, "less than or equal to 65"),
    ((*Q, "colour"), "red", "Invalid keys"),
])
def test_meta_refuses_a_template_outside_its_documented_limits(path: tuple[Any, ...], value: Any,
                                                               words: str) -> None:
    error = validate_send_request(request(set_in(path, value)))
    assert error is not None and words in error.message, error


def test_a_free_form_question_and_a_question_without_title_are_accepted() -> None:
    message = set_in((*Q, "title"), _DROP)
    assert validate_send_request(request(message)) is None
    question = question_of(message)
    question.update(type="nps", score_option="zero_to_ten", score_label="unlike_like")
    assert validate_send_request(request(message)) is None


def test_metas_documented_webhook_is_read() -> None:
    item = simulate.feedback(PAGE, USER, "csat_7", 5, "I am very satisfied!")
    parsed = read_webhook(simulate.webhook_body(PAGE, [item]))
    [event] = parsed.events
    assert event.kind is EventKind.FEEDBACK and event.user_id == USER and event.page_id == PAGE
    assert event.feedback == (FeedbackAnswer("csat_7", "csat", "5", "I am very satisfied!"),)
    assert event.feedback[0].score == 5
    assert event.is_feedback and not event.is_user_input and not event.opens_window
    assert InboundEvent.from_dict(event.to_dict()) == event


@pytest.mark.parametrize("breakage", [
    {"feedback_screens": "no"},
    {"feedback_screens": [7]},
    {"feedback_screens": [{"questions": [1, 2]}]},
    {"feedback_screens": [{"questions": {"q": "5"}}]},
    {"feedback_screens": [{"questions": {"q": {"type": "csat", "payload": [5]}}}]},
    {"feedback_screens": [{"questions": {"q": {"type": "csat", "payload": "5", "follow_up": "bien"}}}]},
])
def test_a_feedback_in_another_shape_is_refused_as_an_item(breakage: dict[str, Any]) -> None:
    item = {"sender": {"id": USER}, "recipient": {"id": PAGE}, "messaging_feedback": breakage}
    with pytest.raises(MalformedItemError):
        parse_messaging_item(item, PAGE)


def test_a_feedback_without_a_sender_is_refused() -> None:
    item = simulate.feedback(PAGE, USER, "csat_1", 3)
    del item["sender"]
    with pytest.raises(MalformedItemError):
        parse_messaging_item(item, PAGE)


def test_a_quick_reply_rating_is_for_the_app_not_for_rasa() -> None:
    event = parse_messaging_item(simulate.quick_reply(PAGE, USER, "4 · Buena", '/csat{"score":4}'), PAGE)
    assert event.kind is EventKind.MESSAGE and event.csat_score == 4 and event.is_feedback
    assert not event.is_user_input and event.opens_window
    other = parse_messaging_item(simulate.quick_reply(PAGE, USER, "Sí", '/csat{"score":9}'), PAGE)
    assert other.csat_score is None and other.is_user_input


JSON = st.recursive(st.none() | st.booleans() | st.integers(-10, 10**6) | st.text(max_size=12),
                    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children,
                                                                                      max_size=3), max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(feedback=JSON, screens=st.lists(JSON, max_size=2))
def test_any_feedback_json_is_read_or_refused_as_an_item_never_a_crash(feedback: Any, screens: list[Any]) -> None:
    for value in (feedback, {"feedback_screens": screens}, {"feedback_screens": [{"questions": feedback}]}):
        item = {"sender": {"id": USER}, "recipient": {"id": PAGE}, "messaging_feedback": copy.deepcopy(value)}
        try:
            event = parse_messaging_item(item, PAGE)
        except MalformedItemError:
            continue
        assert event.kind in (EventKind.FEEDBACK, EventKind.UNKNOWN)
        for answer in event.feedback:
            assert isinstance(answer.payload, str) and isinstance(answer.type, str)
            assert answer.score is None or 0 <= answer.score <= 999
        assert InboundEvent.from_dict(event.to_dict()) == event
