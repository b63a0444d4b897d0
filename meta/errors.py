"""Errors of the Messenger connector and the central mapping of Graph API failures."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80006})
OUTSIDE_WINDOW_CODES = frozenset({10, 2018278})
OUTSIDE_WINDOW_SUBCODES = frozenset({2018278})
TOKEN_INVALID_CODE = 190
PERSON_UNAVAILABLE_CODE = 551
TEMPORARY_CODES = frozenset({1, 2})


class MessengerError(Exception):
    """Root of everything this package raises."""


class UnknownPageError(MessengerError):
    """No access token is configured for the page."""


@dataclass(eq=False)
class GraphError(MessengerError):
    """A Send API call failed; `code`/`subcode` are Meta's, `status` the HTTP status (0: no answer)."""

    message: str
    status: int = 0
    code: int | None = None
    subcode: int | None = None
    fbtrace_id: str | None = None

    def __str__(self) -> str:
        return f"Graph API error {self.code}/{self.subcode} (HTTP {self.status}): {self.message}"


class TransientGraphError(GraphError):
    """Worth retrying: 5xx, timeouts, connection errors, code 1/2."""


@dataclass(eq=False)
class RateLimitedError(TransientGraphError):
    retry_after_seconds: float | None = None


class PermanentGraphError(GraphError):
    """Retrying the same request will fail the same way."""


class PolicyViolationError(PermanentGraphError):
    """Outside the messaging window or a tag not allowed (codes 10, 2018278)."""


class TokenInvalidError(PermanentGraphError):
    """Code 190: the page's token expired or was revoked; that page's sends must pause."""


class RecipientUnavailableError(PermanentGraphError):
    """Code 551: this person isn't available right now."""


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def classify_graph_error(status: int, body: Any, headers: Mapping[str, str] | None = None) -> GraphError | None:
    """Map an HTTP answer of the Graph API to an error, or None for a success (2xx without `error`)."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if 200 <= status < 300 and not error:
        return None
    if not isinstance(error, Mapping):
        error = {"message": str(body)[:500] if body else f"HTTP {status} without an error body"}
    code = _int_or_none(error.get("code"))
    subcode = _int_or_none(error.get("error_subcode"))
    fields: dict[str, Any] = {
        "message": str(error.get("message") or ""),
        "status": status,
        "code": code,
        "subcode": subcode,
        "fbtrace_id": error.get("fbtrace_id"),
    }
    if code in RATE_LIMIT_CODES or status == 429:
        # Header names are case-insensitive; the transport hands over a plain dict.
        retry_after = _int_or_none(next((v for k, v in (headers or {}).items() if k.lower() == "retry-after"), None))
        return RateLimitedError(**fields, retry_after_seconds=retry_after)
    if code == TOKEN_INVALID_CODE:
        return TokenInvalidError(**fields)
    if code == PERSON_UNAVAILABLE_CODE:
        return RecipientUnavailableError(**fields)
    if code in OUTSIDE_WINDOW_CODES or subcode in OUTSIDE_WINDOW_SUBCODES:
        return PolicyViolationError(**fields)
    if code in TEMPORARY_CODES or status >= 500 or error.get("is_transient"):
        return TransientGraphError(**fields)
    return PermanentGraphError(**fields)
