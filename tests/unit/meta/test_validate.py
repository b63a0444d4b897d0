"""`validate_send_request` accepts what Meta accepts and reports what Meta reports, first problem first."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meta import limits
from meta.validate import GraphErrorSpec, validate_send_request

PSID = "24863291170007543"


def text_request(text: str = "Hola, ¿en qué te ayudo?", **extra: Any) -> dict[str, Any]:
    return {"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text": text}, **extra}


def message_request(message: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": message, **extra}


def template_request(payload: dict[str, Any]) -> dict[str, Any]:
    return message_request({"attachment": {"type": "template", "payload": payload}})


def button_template(buttons: list[dict[str, Any]], text: str = "What do you want to do next?") -> dict[str, Any]:
    return template_request({"template_type": "button", "text": text, "buttons": buttons})


def generic_template(elements: list[dict[str, Any]]) -> dict[str, Any]:
    return template_request({"template_type": "generic", "elements": elements})


def postback(title: str = "Start Chatting", payload: str = "DEVELOPER_DEFINED_PAYLOAD") -> dict[str, Any]:
    return {"type": "postback", "title": title, "payload": payload}


def web_url(title: str = "View Website", url: str = "https://www.messenger.com") -> dict[str, Any]:
    return {"type": "web_url", "url": url, "title": title}


def element(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "title": "Welcome!",
        "image_url": "https://petersfancybrownhats.com/company_image.png",
        "subtitle": "We have the right hat for everyone.",
        "default_action": {
            "type": "web_url",
            "url": "https://petersfancybrownhats.com/view?item=103",
            "webview_height_ratio": "tall",
        },
        "buttons": [web_url("View Website", "https://petersfancybrownhats.com"), postback()],
    }
    base.update(fields)
    return {key: value for key, value in base.items() if value is not None}


def text_quick_reply(title: str = "Red", payload: Any = "PICKED_RED", **extra: Any) -> dict[str, Any]:
    return {"content_type": "text", "title": title, "payload": payload, **extra}


def error_of(body: Any) -> tuple[int, int | None, str]:
    error = validate_send_request(body)
    assert error is not None, "expected Meta to reject this request"
    assert error.http_status == 400
    assert error.type == "OAuthException"
    return error.code, error.error_subcode, error.message


# --- accepted: realistic requests from Meta's documentation ----------------------------------

VALID_REQUESTS: dict[str, dict[str, Any]] = {
    "text": text_request(),
    "text at the limit": text_request("a" * limits.TEXT_MAX_CHARS),
    "text with emoji": text_request("¡Gracias! 🙌"),
    "update": text_request(messaging_type="UPDATE"),
    "numeric psid": {"recipient": {"id": 24863291170007543}, "messaging_type": "RESPONSE", "message": {"text": "hi"}},
    "user_ref": {
        "recipient": {"user_ref": "UNIQUE_REF_PARAM"},
        "messaging_type": "RESPONSE",
        "message": {"text": "hello, world!"},
    },
    "private reply to a post": {
        "recipient": {"post_id": "PAGE-POST-ID"},
        "messaging_type": "RESPONSE",
        "message": {"text": "Thanks for your post"},
    },
    "private reply to a comment": {
        "recipient": {"comment_id": "1234567890_987654321"},
        "messaging_type": "RESPONSE",
        "message": {"text": "Thanks for your comment"},
    },
    "notification messages token": {
        "recipient": {"notification_messages_token": "6202021371839498186"},
        "messaging_type": "MESSAGE_TAG",
        "tag": "ACCOUNT_UPDATE",
        "message": {"text": "Your order shipped"},
    },
    "metadata": message_request({"text": "hi", "metadata": "DEVELOPER_DEFINED_METADATA"}),
    "quick replies": message_request(
        {
            "text": "Pick a color:",
            "quick_replies": [
                text_quick_reply(
                    "Red", "DEVELOPER_DEFINED_PAYLOAD_FOR_PICKING_RED", image_url="http://example.com/img/red.png"
                ),
                text_quick_reply("Green", "DEVELOPER_DEFINED_PAYLOAD_FOR_PICKING_GREEN"),
            ],
        }
    ),
    "quick replies asking for email and phone": message_request(
        {
            "text": "How can we reach you?",
            "quick_replies": [{"content_type": "user_email"}, {"content_type": "user_phone_number"}],
        }
    ),
    "quick replies at the limits": message_request(
        {
            "text": "Pick one",
            "quick_replies": [
                text_quick_reply("t" * limits.QUICK_REPLY_TITLE_MAX_CHARS, "p" * limits.PAYLOAD_MAX_CHARS)
                for _ in range(limits.QUICK_REPLIES_MAX)
            ],
        }
    ),
    "quick replies on an attachment": message_request(
        {
            "attachment": {"type": "image", "payload": {"url": "https://example.com/menu.jpg"}},
            "quick_replies": [text_quick_reply()],
        }
    ),
    "integer quick reply payload": message_request({"text": "Pick", "quick_replies": [text_quick_reply("One", 1)]}),
    "image by url": message_request(
        {
            "attachment": {
                "type": "image",
                "payload": {"url": "http://www.messenger-rocks.com/image.jpg", "is_reusable": True},
            }
        }
    ),
    "audio by attachment id": message_request(
        {"attachment": {"type": "audio", "payload": {"attachment_id": "1857777774821032"}}}
    ),
    "video": message_request({"attachment": {"type": "video", "payload": {"url": "https://example.com/v.mp4"}}}),
    "file": message_request({"attachment": {"type": "file", "payload": {"url": "https://example.com/menu.pdf"}}}),
    "button template": button_template(
        [
            web_url("Visit Messenger", "https://www.messenger.com"),
            postback("Start Chatting", "USER_DEFINED_PAYLOAD"),
            {"type": "phone_number", "title": "Call Representative", "payload": "+15105551234"},
        ]
    ),
    "button template at the limits": button_template(
        [postback("b" * limits.BUTTON_TITLE_MAX_CHARS, "p" * limits.PAYLOAD_MAX_CHARS)],
        text="x" * limits.BUTTON_TEMPLATE_TEXT_MAX_CHARS,
    ),
    "generic template": generic_template([element()]),
    "generic template, title and subtitle only": generic_template([{"title": "Hats", "subtitle": "For all"}]),
    "generic template at the limits": generic_template(
        [
            element(
                title="t" * limits.ELEMENT_TITLE_MAX_CHARS,
                subtitle="s" * limits.ELEMENT_SUBTITLE_MAX_CHARS,
                buttons=[postback() for _ in range(limits.ELEMENT_BUTTONS_MAX)],
            )
            for _ in range(limits.GENERIC_ELEMENTS_MAX)
        ]
    ),
    "media template": template_request(
        {
            "template_type": "media",
            "elements": [
                {
                    "media_type": "image",
                    "attachment_id": "1854626884821032",
                    "buttons": [web_url("View Website", "https://www.example.com")],
                },
            ],
        }
    ),
    "media template by url": template_request(
        {
            "template_type": "media",
            "elements": [
                {"media_type": "video", "url": "https://business.facebook.com/MyPage/videos/1234567890/"},
            ],
        }
    ),
    "typing on": {"recipient": {"id": PSID}, "sender_action": "typing_on"},
    "typing off": {"recipient": {"id": PSID}, "sender_action": "typing_off"},
    "mark seen": {"recipient": {"id": PSID}, "sender_action": "mark_seen"},
    "sender action with a messaging type": {
        "recipient": {"id": PSID},
        "messaging_type": "RESPONSE",
        "sender_action": "typing_on",
    },
}


@pytest.mark.parametrize("body", VALID_REQUESTS.values(), ids=VALID_REQUESTS.keys())
def test_meta_accepts_valid_requests(body: dict[str, Any]) -> None:
    assert validate_send_request(body) is None


# CUSTOMER_FEEDBACK goes with the customer feedback template only (tests/unit/meta/test_feedback_template.py).
@pytest.mark.parametrize("tag", sorted(limits.MESSAGE_TAGS - {"CUSTOMER_FEEDBACK"}))
def test_every_documented_tag_is_accepted_with_message_tag(tag: str) -> None:
    assert validate_send_request(text_request(messaging_type="MESSAGE_TAG", tag=tag)) is None


def test_validation_does_not_change_the_request() -> None:
    body = generic_template([element()])
    before = copy.deepcopy(body)
    validate_send_request(body)
    assert body == before


# --- the request as a whole ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({}, (100, None, "(#100) The parameter recipient is required")),
        ([], (100, None, "(#100) The parameter recipient is required")),
        (
            {"messaging_type": "RESPONSE", "message": {"text": "hi"}},
            (100, None, "(#100) The parameter recipient is required"),
        ),
        (
            {"recipient": "24863291170007543", "messaging_type": "RESPONSE", "message": {"text": "hi"}},
            (100, None, "(#100) param recipient must be an object."),
        ),
    ],
    ids=["empty body", "not an object", "no recipient", "recipient not an object"],
)
def test_recipient_is_required(body: Any, expected: tuple[int, int | None, str]) -> None:
    assert error_of(body) == expected


def test_recipient_needs_one_identifier() -> None:
    code, subcode, message = error_of({"recipient": {}, "messaging_type": "RESPONSE", "message": {"text": "hi"}})
    assert (code, subcode) == (100, None)
    assert message.startswith("(#100) param recipient must contain one of id, user_ref, post_id, comment_id")


@pytest.mark.parametrize("other", ["user_ref", "post_id", "comment_id", "notification_messages_token"])
def test_recipient_accepts_only_one_identifier(other: str) -> None:
    body = text_request()
    body["recipient"] = {"id": PSID, other: "X"}
    code, _, message = error_of(body)
    assert code == 100
    assert "only one of" in message


@pytest.mark.parametrize("value", ["", "   ", None, True, ["1"]])
def test_recipient_id_must_be_a_non_empty_string(value: Any) -> None:
    body = text_request()
    body["recipient"] = {"id": value}
    code, _, message = error_of(body)
    assert code == 100
    assert "recipient" in message


def test_user_ref_must_be_a_string() -> None:
    body = text_request()
    body["recipient"] = {"user_ref": 12345}
    assert error_of(body)[2] == "(#100) Param recipient[user_ref] must be a non-empty UTF-8 encoded string"


def test_message_or_sender_action_is_required() -> None:
    assert error_of({"recipient": {"id": PSID}, "messaging_type": "RESPONSE"}) == (
        100,
        2018015,
        "(#100) Must send either message or state",
    )


def test_message_and_sender_action_are_exclusive() -> None:
    code, _, message = error_of(text_request(sender_action="typing_on"))
    assert (code, message) == (100, "(#100) Cannot send both message and state at the same time.")


@pytest.mark.parametrize("action", ["typing", "TYPING_ON", "seen", ""])
def test_sender_action_must_be_known(action: str) -> None:
    assert error_of({"recipient": {"id": PSID}, "sender_action": action}) == (
        100,
        None,
        "(#100) Param sender_action must be one of {MARK_SEEN, TYPING_OFF, TYPING_ON}",
    )


def test_messaging_type_is_required_with_a_message() -> None:
    body = text_request()
    del body["messaging_type"]
    assert error_of(body) == (100, None, "(#100) The parameter messaging_type is required")


@pytest.mark.parametrize("messaging_type", ["NON_PROMOTIONAL_SUBSCRIPTION", "response", ""])
def test_messaging_type_must_be_known(messaging_type: str) -> None:
    assert error_of(text_request(messaging_type=messaging_type)) == (
        100,
        None,
        "(#100) Param messaging_type must be one of {MESSAGE_TAG, RESPONSE, UPDATE, UTILITY}",
    )


def test_message_tag_needs_a_tag() -> None:
    assert error_of(text_request(messaging_type="MESSAGE_TAG")) == (
        100,
        None,
        "(#100) Tag is required for MESSAGE_TAG messaging type",
    )


@pytest.mark.parametrize("tag", ["ISSUE_RESOLUTION", "human_agent", "SHIPPING_UPDATE"])
def test_tag_must_be_documented(tag: str) -> None:
    code, _, message = error_of(text_request(messaging_type="MESSAGE_TAG", tag=tag))
    assert code == 100
    assert message == (
        "(#100) Param tag must be one of {ACCOUNT_UPDATE, CONFIRMED_EVENT_UPDATE, CUSTOMER_FEEDBACK, HUMAN_AGENT, "
        "POST_PURCHASE_UPDATE}"
    )


@pytest.mark.parametrize("messaging_type", ["RESPONSE", "UPDATE"])
def test_tag_only_with_message_tag(messaging_type: str) -> None:
    code, _, message = error_of(text_request(messaging_type=messaging_type, tag="HUMAN_AGENT"))
    assert (code, message) == (100, "(#100) Tag can only be used with messaging_type MESSAGE_TAG")


def test_checks_run_in_meta_order_recipient_first() -> None:
    """With several problems, the recipient is reported before the message."""
    body = {"messaging_type": "BOGUS", "message": {"text": ""}}
    assert error_of(body)[2] == "(#100) The parameter recipient is required"


# --- text ----------------------------------------------------------------------------------


def test_text_over_the_limit() -> None:
    assert error_of(text_request("a" * (limits.TEXT_MAX_CHARS + 1))) == (
        100,
        None,
        "(#100) Length of param message[text] must be less than or equal to 2000",
    )


@pytest.mark.parametrize("message", [{}, {"text": ""}, {"text": "   \n"}, {"text": None}])
def test_empty_message(message: dict[str, Any]) -> None:
    assert error_of(message_request(message)) == (
        100,
        2018034,
        "(#100) Message cannot be empty, must provide valid attachment or text",
    )


def test_text_and_attachment_are_exclusive() -> None:
    body = message_request(
        {"text": "this is text", "attachment": {"type": "image", "payload": {"url": "https://myweb.com/image.png"}}}
    )
    assert error_of(body) == (100, None, "(#100) Only one of text or attachment can be specified")


def test_text_must_be_a_string() -> None:
    assert error_of(message_request({"text": 42}))[2] == "(#100) Param message[text] must be a UTF-8 encoded string"


def test_message_must_be_an_object() -> None:
    assert error_of(message_request("hello"))[2] == "(#100) param message must be an object."  # type: ignore[arg-type]


def test_unknown_message_keys_are_rejected() -> None:
    body = message_request({"text": "Pick", "quick_reply": [text_quick_reply()]})
    assert error_of(body) == (100, None, '(#100) Invalid keys "quick_reply" were found in param "message".')


def test_metadata_limit() -> None:
    assert error_of(message_request({"text": "hi", "metadata": "m" * 1001}))[2] == (
        "(#100) Length of param message[metadata] must be less than or equal to 1000"
    )


@given(st.text(min_size=1, max_size=limits.TEXT_MAX_CHARS).filter(lambda text: text.strip()))
def test_any_non_blank_text_within_the_limit_is_accepted(text: str) -> None:
    assert validate_send_request(text_request(text)) is None


@given(st.integers(min_value=limits.TEXT_MAX_CHARS + 1, max_value=limits.TEXT_MAX_CHARS * 3))
def test_any_text_over_the_limit_is_rejected(length: int) -> None:
    error = validate_send_request(text_request("é" * length))
    assert error is not None
    assert error.message.startswith("(#100) Length of param message[text]")


# --- quick replies -------------------------------------------------------------------------


def quick_replies_request(quick_replies: Any) -> dict[str, Any]:
    return message_request({"text": "Pick a color:", "quick_replies": quick_replies})


def test_too_many_quick_replies() -> None:
    replies = [text_quick_reply(f"Option {n}", f"OPTION_{n}") for n in range(limits.QUICK_REPLIES_MAX + 1)]
    assert error_of(quick_replies_request(replies)) == (
        100,
        None,
        "(#100) param message[quick_replies] has too many elements.",
    )


def test_empty_quick_replies() -> None:
    assert error_of(quick_replies_request([])) == (
        194,
        None,
        "(#194) param message[quick_replies] has too few elements.",
    )


def test_quick_replies_must_be_an_array() -> None:
    assert error_of(quick_replies_request({"content_type": "text"}))[2] == (
        "(#100) param message[quick_replies] must be an array."
    )


def test_quick_reply_content_type_is_required() -> None:
    assert error_of(quick_replies_request([{"title": "Red", "payload": "RED"}])) == (
        100,
        None,
        "(#100) The parameter message[quick_replies][0][content_type] is required",
    )


@pytest.mark.parametrize("content_type", ["location", "TEXT", "button"])
def test_quick_reply_content_type_must_be_known(content_type: str) -> None:
    assert error_of(quick_replies_request([text_quick_reply(content_type=content_type)]))[2] == (
        "(#100) Param message[quick_replies][0][content_type] must be one of {TEXT, USER_EMAIL, USER_PHONE_NUMBER}"
    )


@pytest.mark.parametrize("title", [None, "", "  "])
def test_text_quick_reply_needs_a_title(title: Any) -> None:
    reply = {"content_type": "text", "title": title, "payload": "RED"}
    assert error_of(quick_replies_request([text_quick_reply(), reply])) == (
        100,
        2018098,
        "(#100) Title is required for this quick reply content type",
    )


@pytest.mark.parametrize("payload", [None, ""])
def test_text_quick_reply_needs_a_payload(payload: Any) -> None:
    reply = {"content_type": "text", "title": "Red", "payload": payload}
    assert error_of(quick_replies_request([reply])) == (
        100,
        2018099,
        "(#100) Payload is required for this quick reply content type",
    )


def test_quick_reply_title_limit() -> None:
    reply = text_quick_reply("t" * (limits.QUICK_REPLY_TITLE_MAX_CHARS + 1))
    assert error_of(quick_replies_request([text_quick_reply(), reply]))[2] == (
        "(#100) Length of param message[quick_replies][1][title] must be less than or equal to 20"
    )


def test_quick_reply_payload_limit() -> None:
    reply = text_quick_reply(payload="p" * (limits.PAYLOAD_MAX_CHARS + 1))
    assert error_of(quick_replies_request([reply]))[2] == (
        "(#100) Length of param message[quick_replies][0][payload] must be less than or equal to 1000"
    )


def test_quick_reply_image_url_must_be_a_url() -> None:
    reply = text_quick_reply(image_url="red.png")
    assert error_of(quick_replies_request([reply]))[2] == (
        "(#100) message[quick_replies][0][image_url] should represent a valid URL"
    )


def test_quick_reply_unknown_keys() -> None:
    reply = text_quick_reply(url="https://example.com")
    assert error_of(quick_replies_request([reply]))[2] == (
        '(#100) Invalid keys "url" were found in param "message[quick_replies][0]".'
    )


# --- media attachments ---------------------------------------------------------------------


def attachment_request(attachment: Any) -> dict[str, Any]:
    return message_request({"attachment": attachment})


def test_attachment_type_is_required() -> None:
    assert error_of(attachment_request({"payload": {"url": "https://example.com/a.png"}})) == (
        100,
        None,
        "(#100) The parameter message[attachment][type] is required",
    )


@pytest.mark.parametrize("kind", ["imaaaagie", "sticker", "fallback", "IMAGE"])
def test_attachment_type_must_be_supported(kind: str) -> None:
    assert error_of(attachment_request({"type": kind, "payload": {"url": "https://example.com/a.png"}}))[2] == (
        "(#100) Param message[attachment][type] is not supported. Please check developer docs for details"
    )


def test_attachment_payload_is_required() -> None:
    assert error_of(attachment_request({"type": "image"})) == (
        100,
        None,
        "(#100) The parameter message[attachment][payload] is required",
    )


def test_media_needs_url_or_attachment_id() -> None:
    assert error_of(attachment_request({"type": "image", "payload": {"is_reusable": True}}))[2] == (
        "(#100) Param message[attachment][payload] must contain a url or an attachment_id"
    )


def test_media_takes_only_one_source() -> None:
    payload = {"url": "https://example.com/a.png", "attachment_id": "1857777774821032"}
    assert "only one of url or attachment_id" in error_of(attachment_request({"type": "file", "payload": payload}))[2]


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.png",
        "https://",
        "example.com/a.png",
        "javascript:alert(1)",
        "https://exa mple.com/a.png",
        "",
    ],
)
def test_media_url_must_be_http(url: str) -> None:
    assert error_of(attachment_request({"type": "image", "payload": {"url": url}}))[2] == (
        f"(#100) {url} should represent a valid URL"
    )


# --- templates -----------------------------------------------------------------------------


def test_template_type_is_required() -> None:
    assert error_of(template_request({"text": "hi", "buttons": [postback()]}))[2] == (
        "(#100) The parameter message[attachment][payload][template_type] is required"
    )


@pytest.mark.parametrize("template_type", ["list", "open_graph", "BUTTON", "receipt"])
def test_template_type_must_be_supported(template_type: str) -> None:
    assert error_of(template_request({"template_type": template_type}))[2] == "(#100) Invalid template type"


def test_button_template_text_is_required() -> None:
    assert error_of(template_request({"template_type": "button", "buttons": [postback()]}))[2] == (
        "(#100) The parameter message[attachment][payload][text] is required"
    )


def test_button_template_text_must_not_be_empty() -> None:
    assert error_of(button_template([postback()], text=" "))[2] == (
        "(#100) Param message[attachment][payload][text] must be a non-empty UTF-8 encoded string"
    )


def test_button_template_text_limit() -> None:
    body = button_template([postback()], text="x" * (limits.BUTTON_TEMPLATE_TEXT_MAX_CHARS + 1))
    assert error_of(body)[2] == (
        "(#100) Length of param message[attachment][payload][text] must be less than or equal to 640"
    )


def test_button_template_buttons_are_required() -> None:
    assert error_of(template_request({"template_type": "button", "text": "Next?"}))[2] == (
        "(#100) The parameter message[attachment][payload][buttons] is required"
    )


def test_button_template_needs_a_button() -> None:
    assert error_of(button_template([])) == (
        100,
        None,
        "(#100) param message[attachment][payload][buttons] must be non-empty.",
    )


def test_button_template_at_most_three_buttons() -> None:
    buttons = [postback(f"Option {n}", f"OPTION_{n}") for n in range(limits.BUTTONS_MAX + 1)]
    assert error_of(button_template(buttons))[2] == (
        "(#100) param message[attachment][payload][buttons] has too many elements."
    )


def test_generic_template_elements_are_required() -> None:
    assert error_of(template_request({"template_type": "generic"}))[2] == (
        "(#100) The parameter message[attachment][payload][elements] is required"
    )


def test_generic_template_needs_an_element() -> None:
    assert error_of(generic_template([])) == (
        194,
        None,
        "(#194) param message[attachment][payload][elements] has too few elements.",
    )


def test_generic_template_at_most_ten_elements() -> None:
    assert error_of(generic_template([element()] * (limits.GENERIC_ELEMENTS_MAX + 1)))[2] == (
        "(#100) param message[attachment][payload][elements] has too many elements."
    )


def test_element_title_is_required() -> None:
    assert error_of(generic_template([element(), element(title=None)]))[2] == (
        "(#100) The parameter message[attachment][payload][elements][1][title] is required"
    )


def test_element_title_must_not_be_empty() -> None:
    assert error_of(generic_template([element(title="")]))[2] == (
        "(#100) Param message[attachment][payload][elements][0][title] must be a non-empty UTF-8 encoded string"
    )


def test_element_title_limit() -> None:
    assert error_of(generic_template([element(title="t" * (limits.ELEMENT_TITLE_MAX_CHARS + 1))]))[2] == (
        "(#100) Length of param message[attachment][payload][elements][0][title] must be less than or equal to 80"
    )


def test_element_subtitle_limit() -> None:
    body = generic_template([element(subtitle="s" * (limits.ELEMENT_SUBTITLE_MAX_CHARS + 1))])
    assert error_of(body)[2] == (
        "(#100) Length of param message[attachment][payload][elements][0][subtitle] must be less than or equal to 80"
    )


def test_element_at_most_three_buttons() -> None:
    body = generic_template([element(buttons=[postback()] * (limits.ELEMENT_BUTTONS_MAX + 1))])
    assert error_of(body)[2] == (
        "(#100) param message[attachment][payload][elements][0][buttons] has too many elements."
    )


def test_element_empty_buttons() -> None:
    assert error_of(generic_template([element(buttons=[])]))[:2] == (194, None)


def test_element_needs_more_than_a_title() -> None:
    assert error_of(generic_template([{"title": "Only a title"}])) == (
        100,
        2018035,
        "(#100) Incomplete element data: title and at least one other field (image url, subtitle or buttons) is "
        "required with non-empty value",
    )


def test_element_image_url_must_be_a_url() -> None:
    assert error_of(generic_template([element(image_url="hat.png")]))[2] == (
        "(#100) message[attachment][payload][elements][0][image_url] should represent a valid URL"
    )


def test_element_default_action_must_be_web_url() -> None:
    body = generic_template([element(default_action={"type": "postback", "payload": "X"})])
    assert "default_action][type] must be one of {WEB_URL}" in error_of(body)[2]


def test_element_unknown_keys() -> None:
    assert error_of(generic_template([element(item_url="https://example.com")]))[2] == (
        '(#100) Invalid keys "item_url" were found in param "message[attachment][payload][elements][0]".'
    )


def media_template(elements: Any) -> dict[str, Any]:
    return template_request({"template_type": "media", "elements": elements})


def test_media_template_one_element() -> None:
    one = {"media_type": "image", "attachment_id": "1854626884821032"}
    assert error_of(media_template([one, one]))[2] == (
        "(#100) param message[attachment][payload][elements] has too many elements."
    )
    assert error_of(media_template([]))[0] == 194


def test_media_template_media_type() -> None:
    assert error_of(media_template([{"attachment_id": "1"}]))[2] == (
        "(#100) The parameter message[attachment][payload][elements][0][media_type] is required"
    )
    assert error_of(media_template([{"media_type": "audio", "attachment_id": "1"}]))[2] == (
        "(#100) Param message[attachment][payload][elements][0][media_type] must be one of {IMAGE, VIDEO}"
    )


def test_media_template_needs_a_source() -> None:
    assert "must contain a url or an attachment_id" in error_of(media_template([{"media_type": "image"}]))[2]


# --- buttons -------------------------------------------------------------------------------


def test_button_type_is_required() -> None:
    assert error_of(button_template([{"title": "Go", "payload": "GO"}]))[2] == (
        "(#100) The parameter message[attachment][payload][buttons][0][type] is required"
    )


@pytest.mark.parametrize("kind", ["element_share", "account_link", "POSTBACK", "game_play"])
def test_button_type_must_be_supported(kind: str) -> None:
    assert error_of(button_template([{"type": kind, "title": "Go", "payload": "GO"}]))[2] == (
        "(#100) Param message[attachment][payload][buttons][0][type] must be one of {PHONE_NUMBER, POSTBACK, WEB_URL}"
    )


def test_button_title_is_required() -> None:
    assert error_of(button_template([{"type": "postback", "payload": "GO"}])) == (
        100,
        2018053,
        "(#100) Element button title cannot be empty.",
    )


def test_button_title_must_not_be_empty() -> None:
    assert error_of(button_template([postback(title="")]))[2] == (
        "(#100) Param message[attachment][payload][buttons][0][title] must be a non-empty UTF-8 encoded string"
    )


def test_button_title_limit() -> None:
    body = button_template([postback(), postback(title="t" * (limits.BUTTON_TITLE_MAX_CHARS + 1))])
    assert error_of(body)[2] == (
        "(#100) Length of param message[attachment][payload][buttons][1][title] must be less than or equal to 20"
    )


@pytest.mark.parametrize("payload", [None, ""])
def test_postback_needs_a_payload(payload: Any) -> None:
    button = {"type": "postback", "title": "Start", "payload": payload}
    assert error_of(button_template([button])) == (
        100,
        2018040,
        "(#100) Payload cannot be empty for postback type button",
    )


def test_postback_payload_limit() -> None:
    assert error_of(button_template([postback(payload="p" * (limits.PAYLOAD_MAX_CHARS + 1))]))[2] == (
        "(#100) Length of param message[attachment][payload][buttons][0][payload] must be less than or equal to 1000"
    )


def test_web_url_needs_a_url() -> None:
    assert error_of(button_template([{"type": "web_url", "title": "Visit"}])) == (
        100,
        2018041,
        "(#100) Web url cannot be empty for url type button",
    )


@pytest.mark.parametrize("url", ["www.messenger.com", "mailto:a@b.c", "ftp://example.com"])
def test_web_url_must_be_http(url: str) -> None:
    assert error_of(button_template([web_url(url=url)]))[2] == (
        "(#100) message[attachment][payload][buttons][0][url] should represent a valid URL"
    )


@pytest.mark.parametrize("number", ["", "5105551234", "+1 510 CALL", "+12"])
def test_phone_number_button_needs_a_phone_number(number: str) -> None:
    button = {"type": "phone_number", "title": "Call us", "payload": number}
    code, _, message = error_of(button_template([button]))
    assert code == 100
    assert "phone_number" in message or "phone number" in message


def test_button_unknown_keys() -> None:
    button = postback() | {"url": "https://example.com", "image": "x"}
    assert error_of(button_template([button]))[2] == (
        '(#100) Invalid keys "image" were found in param "message[attachment][payload][buttons][0]".'
    )


# --- the error value -----------------------------------------------------------------------


def test_error_body_has_meta_shape() -> None:
    error = validate_send_request(message_request({}))
    assert error is not None
    assert error.to_body("AbCdEfGhIjK") == {
        "error": {
            "message": "(#100) Message cannot be empty, must provide valid attachment or text",
            "type": "OAuthException",
            "code": 100,
            "error_subcode": 2018034,
            "fbtrace_id": "AbCdEfGhIjK",
        }
    }


def test_error_body_omits_absent_subcode_and_flags_transient() -> None:
    assert "error_subcode" not in GraphErrorSpec("(#100) x", 100).to_body("t")["error"]
    assert GraphErrorSpec("Temporary", 2, is_transient=True).to_body("t")["error"]["is_transient"] is True


def test_error_spec_is_frozen() -> None:
    error = GraphErrorSpec("(#100) x", 100)
    with pytest.raises(AttributeError):
        error.code = 190  # type: ignore[misc]


def test_limits_are_metas() -> None:
    assert (limits.TEXT_MAX_CHARS, limits.QUICK_REPLIES_MAX, limits.QUICK_REPLY_TITLE_MAX_CHARS) == (2000, 13, 20)
    assert (limits.PAYLOAD_MAX_CHARS, limits.BUTTON_TEMPLATE_TEXT_MAX_CHARS, limits.BUTTONS_MAX) == (1000, 640, 3)
    assert (limits.BUTTON_TITLE_MAX_CHARS, limits.GENERIC_ELEMENTS_MAX) == (20, 10)
    assert (limits.ELEMENT_TITLE_MAX_CHARS, limits.ELEMENT_SUBTITLE_MAX_CHARS) == (80, 80)
    assert set(limits.MESSAGING_TYPES) == {"RESPONSE", "UPDATE", "MESSAGE_TAG", "UTILITY"}
    assert set(limits.SENDER_ACTIONS) == {"typing_on", "typing_off", "mark_seen"}
    assert set(limits.MESSAGE_TAGS) == {
        "HUMAN_AGENT",
        "CONFIRMED_EVENT_UPDATE",
        "POST_PURCHASE_UPDATE",
        "ACCOUNT_UPDATE",
        "CUSTOMER_FEEDBACK",
    }


def test_utility_messages_carry_a_template_and_only_with_utility() -> None:
    template = {"template": {"name": "order_shipped", "language": "es", "components": []}}
    ok = {"recipient": {"id": "1"}, "messaging_type": "UTILITY", "message": template}
    assert validate_send_request(ok) is None
    assert validate_send_request({**ok, "messaging_type": "UPDATE"}) is not None
    assert validate_send_request({**ok, "message": {"text": "hola"}}) is not None
    assert validate_send_request({**ok, "message": {"template": {"name": "x"}}}) is not None
    assert validate_send_request({**ok, "message": {**template, "text": "hola"}}) is not None


# An enum field holding a list or an object: Meta's (#100) naming the param, never a TypeError (unhashable) that the
# outbox API, the rules API (comments.rules) or the Graph sandbox would answer as a 500.
BASE = {"recipient": {"id": "1"}, "messaging_type": "RESPONSE"}
UNHASHABLE_ENUMS = [
    ({**BASE, "sender_action": "X"}, "sender_action"),
    ({"recipient": {"id": "1"}, "messaging_type": "X", "message": {"text": "a"}}, "messaging_type"),
    ({"recipient": {"id": "1"}, "messaging_type": "MESSAGE_TAG", "tag": "X", "message": {"text": "a"}}, "tag"),
    ({**BASE, "message": {"text": "a", "quick_replies": [{"content_type": "X", "title": "a", "payload": "p"}]}},
     "content_type"),
    ({**BASE, "message": {"attachment": {"type": "X", "payload": {}}}}, "type"),
    ({**BASE, "message": {"attachment": {"type": "template", "payload": {"template_type": "X"}}}}, "template_type"),
    ({**BASE, "message": {"attachment": {"type": "template", "payload": {
        "template_type": "button", "text": "a", "buttons": [{"type": "X", "title": "a", "payload": "p"}]}}}}, "type"),
    ({**BASE, "message": {"attachment": {"type": "template", "payload": {
        "template_type": "media", "elements": [{"media_type": "X", "url": "https://example.com/a.png"}]}}}},
     "media_type"),
]


def _with(body: Any, wrong: Any) -> Any:
    """`body` with its "X" replaced by `wrong`."""
    if body == "X":
        return copy.deepcopy(wrong)
    if isinstance(body, dict):
        return {key: _with(value, wrong) for key, value in body.items()}
    if isinstance(body, list):
        return [_with(value, wrong) for value in body]
    return body


@pytest.mark.parametrize(("body", "field"), UNHASHABLE_ENUMS)
@pytest.mark.parametrize("wrong", [["text"], {"a": 1}, [], {}, 5, None])
def test_an_enum_field_of_the_wrong_type_is_metas_param_error(body: dict[str, Any], field: str, wrong: Any) -> None:
    error = validate_send_request(_with(body, wrong))

    assert error is not None and error.code == 100 and error.http_status == 400
    if wrong is not None:  # a missing value may be reported as another required param first
        assert field in error.message or field.replace("_", " ") in error.message.lower(), error.message
