"""Webhook signature check: Meta signs the raw body with the app secret (HMAC-SHA256)."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Hub-Signature-256"
_PREFIX = "sha256="


def sign(body: bytes, app_secret: str) -> str:
    """The header value Meta would send for `body`; used by the sandbox chat and tests."""
    digest = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return _PREFIX + digest


def is_valid_signature(body: bytes, header_value: str | None, app_secret: str) -> bool:
    """Constant-time comparison; a missing or malformed header is simply invalid."""
    if not header_value or not header_value.startswith(_PREFIX):
        return False
    expected = sign(body, app_secret)
    return hmac.compare_digest(expected.encode("ascii"), header_value.strip().encode("ascii", "replace"))


def is_valid_verify_token(given: str, expected: str) -> bool:
    """Meta's subscription check (`hub.verify_token`), compared in constant time."""
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
