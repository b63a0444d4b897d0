"""The one mapping from Graph API answers (Meta's error bodies) to the connector's error hierarchy."""

from __future__ import annotations

from typing import Any

import pytest

from meta.errors import (
    GraphError,
    MessengerError,
    PermanentGraphError,
    PolicyViolationError,
    RateLimitedError,
    RecipientUnavailableError,
    TokenInvalidError,
    TransientGraphError,
    UnknownPageError,
    classify_graph_error,
)


def meta_error(code: int | str | None, subcode: int | None = None, message: str = "", **extra: Any) -> dict[str, Any]:
    """Meta's error body: {"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}."""
    error: dict[str, Any] = {
        "message": message or f"error {code}",
        "type": "OAuthException",
        "fbtrace_id": "AbCdEfGh123",
        **extra,
    }
    if code is not None:
        error["code"] = code
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": error}


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (200, {"recipient_id": "7012345678901234", "message_id": "m_AG5Hz2Uq7tuwNEhXfYYKj8mJ"}),
        (200, {"recipient_id": "7012345678901234"}),  # sender actions answer without a message id
        (200, None),
        (204, ""),
        (201, {"error": None}),
    ],
)
def test_success_is_none(status: int, body: Any) -> None:
    assert classify_graph_error(status, body) is None


def test_error_body_with_http_200_is_still_an_error() -> None:
    error = classify_graph_error(200, meta_error(100, message="(#100) Param recipient[id] must be a valid ID string"))

    assert isinstance(error, PermanentGraphError)
    assert error.status == 200 and error.code == 100


def test_token_invalid_keeps_meta_fields() -> None:
    body = meta_error(190, 463, "Error validating access token: Session has expired")

    error = classify_graph_error(400, body)

    assert type(error) is TokenInvalidError
    assert (error.message, error.status, error.code, error.subcode, error.fbtrace_id) == (
        "Error validating access token: Session has expired",
        400,
        190,
        463,
        "AbCdEfGh123",
    )
    assert "190/463" in str(error) and "HTTP 400" in str(error)


def test_recipient_unavailable() -> None:
    error = classify_graph_error(400, meta_error(551, 1545041, "This person isn't available right now."))

    assert type(error) is RecipientUnavailableError
    assert (error.code, error.subcode) == (551, 1545041)


@pytest.mark.parametrize(
    ("code", "subcode"),
    [
        (10, 2018278),  # "Message sent outside of allowed window"
        (10, 2018065),  # outside the window without the permission to use a tag
        (10, None),
        (2018278, None),  # the window code given as `code`
        (100, 2018278),  # the window subcode under another code
        (200, 2018278),
    ],
)
def test_outside_the_window_is_a_policy_violation(code: int, subcode: int | None) -> None:
    error = classify_graph_error(400, meta_error(code, subcode))

    assert type(error) is PolicyViolationError
    assert (error.code, error.subcode) == (code, subcode)


@pytest.mark.parametrize("code", [4, 17, 32, 613])
def test_rate_limit_codes_carry_retry_after(code: int) -> None:
    error = classify_graph_error(400, meta_error(code), {"Retry-After": "30"})

    assert type(error) is RateLimitedError
    assert error.code == code
    assert error.retry_after_seconds == 30


def test_http_429_without_a_code_is_rate_limited() -> None:
    error = classify_graph_error(429, {"error": {"message": "Too Many Requests"}}, {"Retry-After": "7"})

    assert type(error) is RateLimitedError
    assert error.retry_after_seconds == 7
    assert error.code is None


@pytest.mark.parametrize("name", ["Retry-After", "retry-after", "RETRY-AFTER", "Retry-after"])
def test_retry_after_header_name_is_case_insensitive(name: str) -> None:
    """HTTP header names are case-insensitive and the transport hands over a plain dict."""
    error = classify_graph_error(429, meta_error(613), {"Content-Type": "application/json", name: "12"})

    assert isinstance(error, RateLimitedError)
    assert error.retry_after_seconds == 12


@pytest.mark.parametrize("headers", [None, {}, {"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, {"Retry-After": ""}])
def test_rate_limited_without_a_usable_retry_after(headers: dict[str, str] | None) -> None:
    error = classify_graph_error(400, meta_error(4), headers)

    assert isinstance(error, RateLimitedError)
    assert error.retry_after_seconds is None


def test_rate_limited_is_retryable() -> None:
    assert issubclass(RateLimitedError, TransientGraphError)
    assert not issubclass(RateLimitedError, PermanentGraphError)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, meta_error(2, message="An unexpected error has occurred. Please retry your request later.")),
        (400, meta_error(1, message="An unknown error occurred")),
        (500, meta_error(None, message="Internal Server Error")),
        (503, {"error": {"message": "Service Unavailable"}}),
        (400, meta_error(1200, message="Temporary send message failure. Please try again later", is_transient=True)),
    ],
)
def test_transient_errors(status: int, body: Any) -> None:
    assert type(classify_graph_error(status, body)) is TransientGraphError


def test_html_502_from_a_proxy_is_transient_and_keeps_a_short_message() -> None:
    html = "<html><head><title>502 Bad Gateway</title></head><body>" + "x" * 2000 + "</body></html>"

    error = classify_graph_error(502, html)

    assert type(error) is TransientGraphError
    assert error.status == 502 and error.code is None
    assert error.message.startswith("<html><head><title>502 Bad Gateway")
    assert len(error.message) == 500


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (400, meta_error(100, message="(#100) The parameter recipient is required")),
        (400, meta_error(100, 2018001, "No matching user found")),
        (403, meta_error(200, message="(#200) Permissions error")),
        (400, meta_error("100")),  # a code sent as a string is still read as a number
    ],
)
def test_permanent_errors(status: int, body: Any) -> None:
    error = classify_graph_error(status, body)

    assert type(error) is PermanentGraphError
    assert error.code == int(body["error"]["code"])


def test_empty_4xx_body_is_permanent_and_says_so() -> None:
    error = classify_graph_error(400, None)

    assert type(error) is PermanentGraphError
    assert error.message == "HTTP 400 without an error body"


def test_string_code_190_is_still_token_invalid() -> None:
    assert type(classify_graph_error(400, meta_error("190"))) is TokenInvalidError


def test_every_error_is_a_messenger_error() -> None:
    for cls in (
        GraphError,
        TransientGraphError,
        RateLimitedError,
        PermanentGraphError,
        PolicyViolationError,
        TokenInvalidError,
        RecipientUnavailableError,
        UnknownPageError,
    ):
        assert issubclass(cls, MessengerError), cls
    for cls in (PolicyViolationError, TokenInvalidError, RecipientUnavailableError):
        assert issubclass(cls, PermanentGraphError), cls
        assert not issubclass(cls, TransientGraphError), cls


def test_classified_errors_can_be_raised_and_caught_as_the_root() -> None:
    error = classify_graph_error(400, meta_error(551))
    assert error is not None

    with pytest.raises(MessengerError) as caught:
        raise error
    assert caught.value is error
