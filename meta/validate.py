"""Check a Send API request body the way Meta does, and say what Meta would say.

`validate_send_request` is pure: it takes the parsed body of `POST /{page_id}/messages` and
returns the first problem as a `GraphErrorSpec` (HTTP status, code, subcode, type and message
in Meta's words), or None when Meta would accept the request. The sandbox answers with it; tests
of the outgoing builder use it to prove that what we build would be accepted.

Where Meta's exact wording and subcode are known (seen in real answers) they are used; the
remaining messages follow the Graph API's own phrasing ("(#100) The parameter X is required",
"(#100) Length of param X must be less than or equal to N", ...), with no subcode.

Imported inside the Rasa process (Python 3.10): standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from meta.limits import (
    ATTACHMENT_TYPES,
    BUTTON_TEMPLATE_TEXT_MAX_CHARS,
    BUTTON_TITLE_MAX_CHARS,
    BUTTON_TYPES,
    BUTTONS_MAX,
    ELEMENT_BUTTONS_MAX,
    ELEMENT_SUBTITLE_MAX_CHARS,
    ELEMENT_TITLE_MAX_CHARS,
    FEEDBACK_BUTTON_TITLE_MAX_CHARS,
    FEEDBACK_EXPIRES_DAYS,
    FEEDBACK_PLACEHOLDER_MAX_CHARS,
    FEEDBACK_QUESTION_ID_MAX_CHARS,
    FEEDBACK_QUESTION_KEYS,
    FEEDBACK_QUESTION_TITLE_MAX_CHARS,
    FEEDBACK_QUESTION_TITLE_MIN_CHARS,
    FEEDBACK_QUESTION_TYPES,
    FEEDBACK_QUESTIONS_MAX,
    FEEDBACK_SCORE_LABELS,
    FEEDBACK_SCORE_OPTIONS,
    FEEDBACK_SCREENS_MAX,
    FEEDBACK_SUBTITLE_MAX_CHARS,
    FEEDBACK_TEMPLATE_KEYS,
    FEEDBACK_TITLE_MAX_CHARS,
    GENERIC_ELEMENTS_MAX,
    MEDIA_ATTACHMENT_TYPES,
    MEDIA_TEMPLATE_ELEMENTS_MAX,
    MEDIA_TEMPLATE_MEDIA_TYPES,
    MESSAGE_TAGS,
    MESSAGING_TYPES,
    PAYLOAD_MAX_CHARS,
    QUICK_REPLIES_MAX,
    QUICK_REPLY_CONTENT_TYPES,
    QUICK_REPLY_TITLE_MAX_CHARS,
    RECIPIENT_KEYS,
    SENDER_ACTIONS,
    TEMPLATE_TYPES,
    TEXT_MAX_CHARS,
)

OAUTH_EXCEPTION = "OAuthException"

# Meta's error codes and subcodes used below.
INVALID_PARAMETER = 100
TOO_FEW_ELEMENTS = 194
SUBCODE_MUST_SEND_MESSAGE_OR_STATE = 2018015
SUBCODE_EMPTY_MESSAGE = 2018034
SUBCODE_INCOMPLETE_ELEMENT = 2018035
SUBCODE_EMPTY_POSTBACK_PAYLOAD = 2018040
SUBCODE_EMPTY_WEB_URL = 2018041
SUBCODE_EMPTY_BUTTON_TITLE = 2018053
SUBCODE_QUICK_REPLY_TITLE_REQUIRED = 2018098
SUBCODE_QUICK_REPLY_PAYLOAD_REQUIRED = 2018099

# Keys Meta accepts; anything else is "Invalid keys ... were found in param ...".
MESSAGE_KEYS = frozenset({"text", "attachment", "quick_replies", "metadata", "sticker_id", "reply_to", "template"})
QUICK_REPLY_KEYS = frozenset({"content_type", "title", "payload", "image_url"})
BUTTON_KEYS = frozenset(
    {
        "type",
        "title",
        "url",
        "payload",
        "webview_height_ratio",
        "messenger_extensions",
        "fallback_url",
        "webview_share_button",
    }
)
ELEMENT_KEYS = frozenset({"title", "subtitle", "image_url", "default_action", "buttons"})
MEDIA_ELEMENT_KEYS = frozenset({"media_type", "url", "attachment_id", "buttons"})
METADATA_MAX_CHARS = 1000


@dataclass(frozen=True)
class GraphErrorSpec:
    """One Graph API error as Meta reports it: `{"error": {...}}` with this HTTP status."""

    message: str
    code: int
    error_subcode: int | None = None
    type: str = OAUTH_EXCEPTION
    http_status: int = 400
    is_transient: bool = False

    def to_body(self, fbtrace_id: str) -> dict[str, Any]:
        """The JSON body Meta sends; optional fields appear only when set, as Meta does."""
        error: dict[str, Any] = {"message": self.message, "type": self.type, "code": self.code}
        if self.error_subcode is not None:
            error["error_subcode"] = self.error_subcode
        if self.is_transient:
            error["is_transient"] = True
        error["fbtrace_id"] = fbtrace_id
        return {"error": error}


def validate_send_request(body: Mapping[str, Any]) -> GraphErrorSpec | None:
    """The first problem Meta would report for this Send API body, or None if it would be accepted."""
    if not isinstance(body, Mapping):
        return _required("recipient")
    return (
        _check_recipient(body.get("recipient"))
        or _check_message_or_action(body)
        or _check_messaging_type(body)
        or _check_tag(body)
        or (_check_message(body["message"]) if body.get("message") is not None else None)
        or _check_feedback_tag(body)
    )


# --- the request as a whole ---------------------------------------------------------------


def _check_recipient(recipient: Any) -> GraphErrorSpec | None:
    if recipient is None:
        return _required("recipient")
    if not isinstance(recipient, Mapping):
        return _param_error("param recipient must be an object.")
    given = [key for key in RECIPIENT_KEYS if recipient.get(key) is not None]
    choices = ", ".join(RECIPIENT_KEYS[:-1]) + " or " + RECIPIENT_KEYS[-1]
    if not given:
        return _param_error(f"param recipient must contain one of {choices}.")
    if len(given) > 1:
        return _param_error(f"param recipient must contain only one of {choices}.")
    key = given[0]
    value = recipient[key]
    numeric_allowed = key in ("id", "post_id", "comment_id")
    if numeric_allowed and isinstance(value, int) and not isinstance(value, bool):
        return None
    if not _is_non_empty_string(value):
        return _not_non_empty_string(f"recipient[{key}]")
    return None


def _check_message_or_action(body: Mapping[str, Any]) -> GraphErrorSpec | None:
    has_message = body.get("message") is not None
    has_action = body.get("sender_action") is not None
    if not has_message and not has_action:
        return _param_error("Must send either message or state", SUBCODE_MUST_SEND_MESSAGE_OR_STATE)
    if has_message and has_action:
        return _param_error("Cannot send both message and state at the same time.")
    if has_action and not _is_one_of(body["sender_action"], SENDER_ACTIONS):
        return _enum_error("sender_action", SENDER_ACTIONS)
    return None


def _check_messaging_type(body: Mapping[str, Any]) -> GraphErrorSpec | None:
    messaging_type = body.get("messaging_type")
    if messaging_type is None:
        return _required("messaging_type") if body.get("message") is not None else None
    if not _is_one_of(messaging_type, MESSAGING_TYPES):
        return _enum_error("messaging_type", MESSAGING_TYPES)
    is_template = isinstance(body.get("message"), Mapping) and "template" in body["message"]
    if (messaging_type == "UTILITY") != is_template:
        return _param_error("messaging_type UTILITY goes with a message[template], and only with it")
    return None


def _check_tag(body: Mapping[str, Any]) -> GraphErrorSpec | None:
    tag = body.get("tag")
    if body.get("messaging_type") == "MESSAGE_TAG":
        if tag is None:
            return _param_error("Tag is required for MESSAGE_TAG messaging type")
        if not _is_one_of(tag, MESSAGE_TAGS):
            return _enum_error("tag", MESSAGE_TAGS)
        return None
    if tag is not None:
        return _param_error("Tag can only be used with messaging_type MESSAGE_TAG")
    return None


# --- the message ---------------------------------------------------------------------------


def _check_message(message: Any) -> GraphErrorSpec | None:
    if not isinstance(message, Mapping):
        return _param_error("param message must be an object.")
    if "template" in message:
        return _check_utility_template(message)
    return (
        _check_keys("message", message, MESSAGE_KEYS)
        or _check_text_or_attachment(message)
        or _check_metadata(message.get("metadata"))
        or _check_quick_replies(message.get("quick_replies"))
    )


def _check_utility_template(message: Mapping[str, Any]) -> GraphErrorSpec | None:
    """A utility message: `message.template` with a name and language, nothing else beside it."""
    if set(message) - {"template", "metadata"}:
        return _param_error("A template message cannot also carry text, attachment or quick_replies")
    template = message["template"]
    if not isinstance(template, Mapping) or not template.get("name") or not template.get("language"):
        return _param_error("param message[template] must have a name and a language")
    return None


def _check_text_or_attachment(message: Mapping[str, Any]) -> GraphErrorSpec | None:
    text = message.get("text")
    attachment = message.get("attachment")
    if text is not None and attachment is not None:
        return _param_error("Only one of text or attachment can be specified")
    if attachment is not None:
        return _check_attachment(attachment)
    if text is None or (isinstance(text, str) and not text.strip()):
        return _param_error("Message cannot be empty, must provide valid attachment or text", SUBCODE_EMPTY_MESSAGE)
    if not isinstance(text, str):
        return _param_error("Param message[text] must be a UTF-8 encoded string")
    return _check_length("message[text]", text, TEXT_MAX_CHARS)


def _check_metadata(metadata: Any) -> GraphErrorSpec | None:
    if metadata is None:
        return None
    if not isinstance(metadata, str):
        return _param_error("Param message[metadata] must be a UTF-8 encoded string")
    return _check_length("message[metadata]", metadata, METADATA_MAX_CHARS)


def _check_quick_replies(quick_replies: Any) -> GraphErrorSpec | None:
    if quick_replies is None:
        return None
    path = "message[quick_replies]"
    return _check_array(path, quick_replies, QUICK_REPLIES_MAX) or _first(
        _check_quick_reply(f"{path}[{index}]", item) for index, item in enumerate(quick_replies)
    )


def _check_quick_reply(path: str, item: Any) -> GraphErrorSpec | None:
    if not isinstance(item, Mapping):
        return _param_error(f"param {path} must be an object.")
    error = _check_keys(path, item, QUICK_REPLY_KEYS)
    if error:
        return error
    content_type = item.get("content_type")
    if content_type is None:
        return _required(f"{path}[content_type]")
    if not _is_one_of(content_type, QUICK_REPLY_CONTENT_TYPES):
        return _enum_error(f"{path}[content_type]", QUICK_REPLY_CONTENT_TYPES)
    if item.get("image_url") is not None:
        error = _check_url(f"{path}[image_url]", item["image_url"])
        if error:
            return error
    if content_type != "text":
        return None
    title = item.get("title")
    if not _is_non_empty_string(title):
        return _param_error("Title is required for this quick reply content type", SUBCODE_QUICK_REPLY_TITLE_REQUIRED)
    payload = item.get("payload")
    if payload is None or payload == "":
        return _param_error(
            "Payload is required for this quick reply content type", SUBCODE_QUICK_REPLY_PAYLOAD_REQUIRED
        )
    if not isinstance(payload, (str, int)) or isinstance(payload, bool):
        return _param_error(f"Param {path}[payload] must be a UTF-8 encoded string")
    return _check_length(f"{path}[title]", title, QUICK_REPLY_TITLE_MAX_CHARS) or _check_length(
        f"{path}[payload]", str(payload), PAYLOAD_MAX_CHARS
    )


# --- attachments and templates -------------------------------------------------------------


def _check_attachment(attachment: Any) -> GraphErrorSpec | None:
    path = "message[attachment]"
    if not isinstance(attachment, Mapping):
        return _param_error(f"param {path} must be an object.")
    kind = attachment.get("type")
    if kind is None:
        return _required(f"{path}[type]")
    if not _is_one_of(kind, ATTACHMENT_TYPES):
        return _param_error(f"Param {path}[type] is not supported. Please check developer docs for details")
    payload = attachment.get("payload")
    if payload is None:
        return _required(f"{path}[payload]")
    if not isinstance(payload, Mapping):
        return _param_error(f"param {path}[payload] must be an object.")
    if kind in MEDIA_ATTACHMENT_TYPES:
        return _check_media_source(f"{path}[payload]", payload)
    return _check_template(f"{path}[payload]", payload)


def _check_media_source(path: str, payload: Mapping[str, Any]) -> GraphErrorSpec | None:
    """A media payload names its file by exactly one of `url` and `attachment_id`."""
    url = payload.get("url")
    attachment_id = payload.get("attachment_id")
    if url is None and attachment_id is None:
        return _param_error(f"Param {path} must contain a url or an attachment_id")
    if url is not None and attachment_id is not None:
        return _param_error(f"Param {path} must contain only one of url or attachment_id")
    if url is not None:
        if not _is_http_url(url):
            return _param_error(f"{url} should represent a valid URL")
        return None
    if isinstance(attachment_id, int) and not isinstance(attachment_id, bool):
        return None
    if not _is_non_empty_string(attachment_id):
        return _not_non_empty_string(f"{path}[attachment_id]")
    return None


def _check_template(path: str, payload: Mapping[str, Any]) -> GraphErrorSpec | None:
    template_type = payload.get("template_type")
    if template_type is None:
        return _required(f"{path}[template_type]")
    if not _is_one_of(template_type, TEMPLATE_TYPES):
        return _param_error("Invalid template type")
    if template_type == "button":
        return _check_button_template(path, payload)
    if template_type == "generic":
        return _check_generic_template(path, payload)
    if template_type == "customer_feedback":
        return _check_feedback_template(path, payload)
    return _check_media_template(path, payload)


# --- the customer feedback template ----------------------------------------------------------


def _is_feedback_template(message: Any) -> bool:
    attachment = message.get("attachment") if isinstance(message, Mapping) else None
    payload = attachment.get("payload") if isinstance(attachment, Mapping) else None
    return isinstance(payload, Mapping) and payload.get("template_type") == "customer_feedback"


def _check_feedback_tag(body: Mapping[str, Any]) -> GraphErrorSpec | None:
    """Meta: "the tag can only be used with the customer feedback template. Use in any other form is prohibited and
    will fail"."""
    if body.get("tag") == "CUSTOMER_FEEDBACK" and not _is_feedback_template(body.get("message")):
        return _param_error("The CUSTOMER_FEEDBACK tag can only be used with the customer feedback template")
    return None


def _has_url(text: str) -> bool:
    lowered = text.lower()
    return "://" in lowered or "www." in lowered


def _check_feedback_text(path: str, value: Any, most: int, *, required: bool, least: int = 0
                         ) -> GraphErrorSpec | None:
    """A text of the template: required or not, within its length, and without a URL (Meta: "No URLs")."""
    if value is None:
        return _required(path) if required else None
    if not _is_non_empty_string(value):
        return _not_non_empty_string(path)
    if len(value) < least:
        return _param_error(f"Length of param {path} must be greater than or equal to {least}")
    if _has_url(value):
        return _param_error(f"Param {path} cannot contain a URL")
    return _check_length(path, value, most)


def _check_feedback_template(path: str, payload: Mapping[str, Any]) -> GraphErrorSpec | None:
    error = (
        _check_keys(path, payload, FEEDBACK_TEMPLATE_KEYS)
        or _check_feedback_text(f"{path}[title]", payload.get("title"), FEEDBACK_TITLE_MAX_CHARS, required=True)
        or _check_feedback_text(f"{path}[subtitle]", payload.get("subtitle"), FEEDBACK_SUBTITLE_MAX_CHARS,
                                required=True)
        or _check_feedback_text(f"{path}[button_title]", payload.get("button_title"),
                                FEEDBACK_BUTTON_TITLE_MAX_CHARS, required=True)
    )
    if error:
        return error
    privacy = payload.get("business_privacy")
    if privacy is None:
        return _required(f"{path}[business_privacy]")
    if not isinstance(privacy, Mapping):
        return _param_error(f"param {path}[business_privacy] must be an object.")
    if privacy.get("url") is None:
        return _required(f"{path}[business_privacy][url]")
    error = _check_url(f"{path}[business_privacy][url]", privacy.get("url"))
    if error:
        return error
    expires = payload.get("expires_in_days")
    if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int)
                                or expires not in FEEDBACK_EXPIRES_DAYS):
        return _param_error(f"Param {path}[expires_in_days] must be an integer between 1 and 7")
    screens_path = f"{path}[feedback_screens]"
    screens = payload.get("feedback_screens")
    if screens is None:
        return _required(screens_path)
    error = _check_array(screens_path, screens, FEEDBACK_SCREENS_MAX)
    if error:
        return error
    screen = screens[0]
    if not isinstance(screen, Mapping):
        return _param_error(f"param {screens_path}[0] must be an object.")
    questions_path = f"{screens_path}[0][questions]"
    questions = screen.get("questions")
    if questions is None:
        return _required(questions_path)
    return _check_array(questions_path, questions, FEEDBACK_QUESTIONS_MAX) or _check_feedback_question(
        f"{questions_path}[0]", questions[0])


def _check_feedback_question(path: str, question: Any) -> GraphErrorSpec | None:
    if not isinstance(question, Mapping):
        return _param_error(f"param {path} must be an object.")
    error = _check_keys(path, question, FEEDBACK_QUESTION_KEYS)
    if error:
        return error
    question_id = question.get("id")
    if question_id is None:
        return _required(f"{path}[id]")
    if not isinstance(question_id, str) or not question_id or not all(
            char.isascii() and (char.isalnum() or char == "_") for char in question_id):
        return _param_error(f"Param {path}[id] must be alphanumeric (letters, digits and underscores)")
    error = _check_length(f"{path}[id]", question_id, FEEDBACK_QUESTION_ID_MAX_CHARS)
    if error:
        return error
    kind = question.get("type")
    if kind is None:
        return _required(f"{path}[type]")
    if not _is_one_of(kind, FEEDBACK_QUESTION_TYPES):
        return _enum_error(f"{path}[type]", FEEDBACK_QUESTION_TYPES)
    error = _check_feedback_text(f"{path}[title]", question.get("title"), FEEDBACK_QUESTION_TITLE_MAX_CHARS,
                                 required=False, least=FEEDBACK_QUESTION_TITLE_MIN_CHARS)
    if error:
        return error
    label = question.get("score_label")
    if label is not None and not _is_one_of(label, FEEDBACK_SCORE_LABELS):
        return _enum_error(f"{path}[score_label]", FEEDBACK_SCORE_LABELS)
    option = question.get("score_option")
    options = FEEDBACK_SCORE_OPTIONS.get(str(kind), frozenset())
    if option is not None and not _is_one_of(option, options):
        return _enum_error(f"{path}[score_option]", options) if options else _param_error(
            f"Param {path}[score_option] is not supported for a {kind} question")
    follow_up = question.get("follow_up")
    if follow_up is None:
        return None
    if not isinstance(follow_up, Mapping):
        return _param_error(f"param {path}[follow_up] must be an object.")
    if follow_up.get("type") is None:
        return _required(f"{path}[follow_up][type]")
    if follow_up.get("type") != "free_form":
        return _enum_error(f"{path}[follow_up][type]", frozenset({"free_form"}))
    return _check_feedback_text(f"{path}[follow_up][placeholder]", follow_up.get("placeholder"),
                                FEEDBACK_PLACEHOLDER_MAX_CHARS, required=False)


def _check_button_template(path: str, payload: Mapping[str, Any]) -> GraphErrorSpec | None:
    text = payload.get("text")
    if text is None:
        return _required(f"{path}[text]")
    if not _is_non_empty_string(text):
        return _not_non_empty_string(f"{path}[text]")
    error = _check_length(f"{path}[text]", text, BUTTON_TEMPLATE_TEXT_MAX_CHARS)
    if error:
        return error
    buttons = payload.get("buttons")
    if buttons is None:
        return _required(f"{path}[buttons]")
    return _check_buttons(f"{path}[buttons]", buttons, BUTTONS_MAX, empty_is_too_few=False)


def _check_generic_template(path: str, payload: Mapping[str, Any]) -> GraphErrorSpec | None:
    elements = payload.get("elements")
    if elements is None:
        return _required(f"{path}[elements]")
    return _check_array(f"{path}[elements]", elements, GENERIC_ELEMENTS_MAX) or _first(
        _check_generic_element(f"{path}[elements][{index}]", element) for index, element in enumerate(elements)
    )


def _check_generic_element(path: str, element: Any) -> GraphErrorSpec | None:
    if not isinstance(element, Mapping):
        return _param_error(f"param {path} must be an object.")
    error = _check_keys(path, element, ELEMENT_KEYS)
    if error:
        return error
    title = element.get("title")
    if title is None:
        return _required(f"{path}[title]")
    if not _is_non_empty_string(title):
        return _not_non_empty_string(f"{path}[title]")
    error = _check_length(f"{path}[title]", title, ELEMENT_TITLE_MAX_CHARS)
    if error:
        return error
    subtitle = element.get("subtitle")
    if subtitle is not None:
        if not isinstance(subtitle, str):
            return _param_error(f"Param {path}[subtitle] must be a UTF-8 encoded string")
        error = _check_length(f"{path}[subtitle]", subtitle, ELEMENT_SUBTITLE_MAX_CHARS)
        if error:
            return error
    if element.get("image_url") is not None:
        error = _check_url(f"{path}[image_url]", element["image_url"])
        if error:
            return error
    default_action = element.get("default_action")
    if default_action is not None:
        error = _check_default_action(f"{path}[default_action]", default_action)
        if error:
            return error
    buttons = element.get("buttons")
    if buttons is not None:
        error = _check_buttons(f"{path}[buttons]", buttons, ELEMENT_BUTTONS_MAX, empty_is_too_few=True)
        if error:
            return error
    if not any(element.get(key) for key in ("subtitle", "image_url", "buttons", "default_action")):
        return _param_error(
            "Incomplete element data: title and at least one other field (image url, subtitle or buttons) is "
            "required with non-empty value",
            SUBCODE_INCOMPLETE_ELEMENT,
        )
    return None


def _check_default_action(path: str, action: Any) -> GraphErrorSpec | None:
    if not isinstance(action, Mapping):
        return _param_error(f"param {path} must be an object.")
    if action.get("type") != "web_url":
        return _enum_error(f"{path}[type]", {"web_url"})
    if not _is_non_empty_string(action.get("url")):
        return _param_error("Web url cannot be empty for url type button", SUBCODE_EMPTY_WEB_URL)
    return _check_url(f"{path}[url]", action["url"])


def _check_media_template(path: str, payload: Mapping[str, Any]) -> GraphErrorSpec | None:
    elements = payload.get("elements")
    if elements is None:
        return _required(f"{path}[elements]")
    return _check_array(f"{path}[elements]", elements, MEDIA_TEMPLATE_ELEMENTS_MAX) or _first(
        _check_media_element(f"{path}[elements][{index}]", element) for index, element in enumerate(elements)
    )


def _check_media_element(path: str, element: Any) -> GraphErrorSpec | None:
    if not isinstance(element, Mapping):
        return _param_error(f"param {path} must be an object.")
    error = _check_keys(path, element, MEDIA_ELEMENT_KEYS)
    if error:
        return error
    media_type = element.get("media_type")
    if media_type is None:
        return _required(f"{path}[media_type]")
    if not _is_one_of(media_type, MEDIA_TEMPLATE_MEDIA_TYPES):
        return _enum_error(f"{path}[media_type]", MEDIA_TEMPLATE_MEDIA_TYPES)
    error = _check_media_source(path, element)
    if error:
        return error
    buttons = element.get("buttons")
    if buttons is None:
        return None
    return _check_buttons(f"{path}[buttons]", buttons, ELEMENT_BUTTONS_MAX, empty_is_too_few=True)


# --- buttons -------------------------------------------------------------------------------


def _check_buttons(path: str, buttons: Any, most: int, *, empty_is_too_few: bool) -> GraphErrorSpec | None:
    if not _is_array(buttons):
        return _param_error(f"param {path} must be an array.")
    if not buttons and not empty_is_too_few:
        return _param_error(f"param {path} must be non-empty.")
    return _check_array(path, buttons, most) or _first(
        _check_button(f"{path}[{index}]", button) for index, button in enumerate(buttons)
    )


def _check_button(path: str, button: Any) -> GraphErrorSpec | None:
    if not isinstance(button, Mapping):
        return _param_error(f"param {path} must be an object.")
    error = _check_keys(path, button, BUTTON_KEYS)
    if error:
        return error
    kind = button.get("type")
    if kind is None:
        return _required(f"{path}[type]")
    if not _is_one_of(kind, BUTTON_TYPES):
        return _enum_error(f"{path}[type]", BUTTON_TYPES)
    title = button.get("title")
    if title is None:
        return _param_error("Element button title cannot be empty.", SUBCODE_EMPTY_BUTTON_TITLE)
    if not _is_non_empty_string(title):
        return _not_non_empty_string(f"{path}[title]")
    error = _check_length(f"{path}[title]", title, BUTTON_TITLE_MAX_CHARS)
    if error:
        return error
    if kind == "web_url":
        url = button.get("url")
        if not _is_non_empty_string(url):
            return _param_error("Web url cannot be empty for url type button", SUBCODE_EMPTY_WEB_URL)
        return _check_url(f"{path}[url]", url)
    payload = button.get("payload")
    if kind == "postback":
        if payload is None or payload == "":
            return _param_error("Payload cannot be empty for postback type button", SUBCODE_EMPTY_POSTBACK_PAYLOAD)
        if not isinstance(payload, str):
            return _param_error(f"Param {path}[payload] must be a UTF-8 encoded string")
        return _check_length(f"{path}[payload]", payload, PAYLOAD_MAX_CHARS)
    # phone_number: the payload is the number to call, "+" then the country code and number.
    if not _is_non_empty_string(payload):
        return _param_error("Payload cannot be empty for phone_number type button")
    digits = payload[1:].replace(" ", "")
    if not (payload.startswith("+") and digits.isdigit() and 6 <= len(digits) <= 15):
        return _param_error(f"Param {path}[payload] must be a phone number in the format +<country code><number>")
    return None


# --- the Graph API's generic parameter errors -----------------------------------------------


def _param_error(message: str, subcode: int | None = None, code: int = INVALID_PARAMETER) -> GraphErrorSpec:
    return GraphErrorSpec(message=f"(#{code}) {message}", code=code, error_subcode=subcode)


def _required(path: str) -> GraphErrorSpec:
    return _param_error(f"The parameter {path} is required")


def _not_non_empty_string(path: str) -> GraphErrorSpec:
    return _param_error(f"Param {path} must be a non-empty UTF-8 encoded string")


def _is_one_of(value: Any, allowed: frozenset[str]) -> bool:
    """An enum field: one of Meta's strings (a list or an object there is refused like any other wrong value)."""
    return isinstance(value, str) and value in allowed


def _enum_error(path: str, allowed: frozenset[str] | set[str]) -> GraphErrorSpec:
    choices = ", ".join(sorted(value.upper() for value in allowed))
    return _param_error(f"Param {path} must be one of {{{choices}}}")


def _check_length(path: str, value: str, most: int) -> GraphErrorSpec | None:
    if len(value) > most:
        return _param_error(f"Length of param {path} must be less than or equal to {most}")
    return None


def _check_array(path: str, value: Any, most: int) -> GraphErrorSpec | None:
    if not _is_array(value):
        return _param_error(f"param {path} must be an array.")
    if not value:
        return _param_error(f"param {path} has too few elements.", code=TOO_FEW_ELEMENTS)
    if len(value) > most:
        return _param_error(f"param {path} has too many elements.")
    return None


def _check_keys(path: str, value: Mapping[str, Any], allowed: frozenset[str]) -> GraphErrorSpec | None:
    unknown = [str(key) for key in value if key not in allowed]
    if unknown:
        keys = ", ".join(f'"{key}"' for key in unknown)
        return _param_error(f'Invalid keys {keys} were found in param "{path}".')
    return None


def _check_url(path: str, value: Any) -> GraphErrorSpec | None:
    if not _is_http_url(value):
        return _param_error(f"{path} should represent a valid URL")
    return None


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str) or not value or any(char.isspace() for char in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _is_array(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes))


def _is_non_empty_string(value: Any) -> TypeGuard[str]:
    return isinstance(value, str) and bool(value.strip())


def _first(errors: Any) -> GraphErrorSpec | None:
    for error in errors:
        if error is not None:
            return error
    return None
