"""Errors of the Messenger connector and the one catalogue of Meta's Graph API error codes.

`META_ERRORS` says, per (code, subcode), what kind of failure Meta means (so whether a retry can help), with Meta's
own wording and HTTP status. The Graph client's mapping (`classify_graph_error`) and the Graph sandbox's failure
injection (`sandbox.graph.graph_error`) both read it, so the sandbox answers what the client expects of Meta.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any


class Kind(str, Enum):
    """What a Graph API error means for the sender."""

    RATE_LIMITED = "rate_limited"  # wait (Retry-After, usage headers), then retry
    OUTSIDE_WINDOW = "outside_window"  # the messaging window or the tag forbids it: never retried
    TOKEN_INVALID = "token_invalid"  # the page's token expired or was revoked: pause that page
    RECIPIENT_UNAVAILABLE = "recipient_unavailable"  # the person can't be reached now
    TRANSIENT = "transient"  # Meta's own hiccup: retry
    PERMANENT = "permanent"  # the same request fails the same way


@dataclass(frozen=True)
class MetaErrorCode:
    """One row of the catalogue. `is_transient` is the flag Meta writes in its error body (it is false on some
    rate limits); `retry` is our decision."""

    kind: Kind
    message: str  # Meta's wording
    http_status: int = 400
    is_transient: bool = False
    type: str = "OAuthException"

    @property
    def retry(self) -> bool:
        return self.kind in (Kind.RATE_LIMITED, Kind.TRANSIENT)


META_ERRORS: Mapping[tuple[int, int | None], MetaErrorCode] = {
    (1, None): MetaErrorCode(Kind.TRANSIENT, "An unknown error has occurred.", 500, True),
    (2, None): MetaErrorCode(
        Kind.TRANSIENT, "An unexpected error has occurred. Please retry your request later.", 500, True
    ),
    (4, None): MetaErrorCode(Kind.RATE_LIMITED, "(#4) Application request limit reached", 403, True),
    (10, None): MetaErrorCode(Kind.OUTSIDE_WINDOW, "(#10) Application does not have permission for this action"),
    (10, 2018278): MetaErrorCode(
        Kind.OUTSIDE_WINDOW,
        "(#10) This message is sent outside of allowed window. Learn more about the new policy here: "
        "https://developers.facebook.com/docs/messenger-platform/policy-overview",
    ),
    (17, None): MetaErrorCode(Kind.RATE_LIMITED, "(#17) User request limit reached", 403, True),
    (32, None): MetaErrorCode(Kind.RATE_LIMITED, "(#32) Page request limit reached", 403, True),
    (100, None): MetaErrorCode(Kind.PERMANENT, "(#100) Invalid parameter"),
    (100, 2018001): MetaErrorCode(Kind.PERMANENT, "(#100) No matching user found"),
    (190, None): MetaErrorCode(Kind.TOKEN_INVALID, "Invalid OAuth access token."),
    (551, None): MetaErrorCode(Kind.RECIPIENT_UNAVAILABLE, "(#551) This person isn't available right now."),
    (551, 1545041): MetaErrorCode(Kind.RECIPIENT_UNAVAILABLE, "(#551) This person isn't available right now."),
    (613, None): MetaErrorCode(Kind.RATE_LIMITED, "(#613) Calls to this api have exceeded the rate limit."),
    # Private replies (recipient.comment_id): one per comment, within 7 days of it. 10903 is also what Meta answers
    # for a comment older than that (and for a commenter who cannot be messaged): never retried.
    (10900, None): MetaErrorCode(Kind.PERMANENT, "(#10900) Activity already replied to"),
    (10903, None): MetaErrorCode(Kind.PERMANENT, "(#10903) This user can't reply to this activity"),
    (1200, None): MetaErrorCode(
        Kind.TRANSIENT, "Temporary send message failure. Please try again later.", 500, True
    ),
    (80006, None): MetaErrorCode(
        Kind.RATE_LIMITED,
        "(#80006) There have been too many messages requests to this Page. Wait a while before trying again.",
    ),
}
# A bare code that Meta only ever sends on the Send API with this subcode.
DEFAULT_SUBCODES: Mapping[int, int] = {10: 2018278, 551: 1545041}
# A subcode given where a code is expected (`{"code": 2018278}`) means that (code, subcode).
SUBCODE_ALIASES: Mapping[int, tuple[int, int]] = {
    2018278: (10, 2018278),
    2018001: (100, 2018001),
    1545041: (551, 1545041),
}


def meta_error(code: int | None, subcode: int | None = None) -> MetaErrorCode | None:
    """The catalogue's row for a code and subcode: the exact pair, a subcode that names its own pair (2018278 is
    outside the window whatever code carries it), a code that is really a subcode, then the bare code."""
    if code is None:
        return None
    return (
        META_ERRORS.get((code, subcode))
        or (META_ERRORS.get(SUBCODE_ALIASES[subcode]) if subcode is not None and subcode in SUBCODE_ALIASES else None)
        or (META_ERRORS.get(SUBCODE_ALIASES[code]) if code in SUBCODE_ALIASES else None)
        or META_ERRORS.get((code, None))
    )


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
    known = meta_error(code, subcode)
    kind = known.kind if known is not None else None
    if kind is Kind.RATE_LIMITED or status == 429:
        # Header names are case-insensitive; the transport hands over a plain dict.
        retry_after = _int_or_none(next((v for k, v in (headers or {}).items() if k.lower() == "retry-after"), None))
        return RateLimitedError(**fields, retry_after_seconds=retry_after)
    if kind is Kind.TOKEN_INVALID:
        return TokenInvalidError(**fields)
    if kind is Kind.RECIPIENT_UNAVAILABLE:
        return RecipientUnavailableError(**fields)
    if kind is Kind.OUTSIDE_WINDOW:
        return PolicyViolationError(**fields)
    if kind is Kind.TRANSIENT or status >= 500 or error.get("is_transient"):
        return TransientGraphError(**fields)
    return PermanentGraphError(**fields)
