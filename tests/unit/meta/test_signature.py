"""X-Hub-Signature-256: Meta signs the raw body with the app secret; anything else is rejected."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from meta import signature
from meta.signature import SIGNATURE_HEADER, is_valid_signature, sign
from tests.support import meta_payloads as meta

APP_SECRET = "9f3c1a7e5b2d4c6e8f0a1b3c5d7e9f11"
BODY = json.dumps(meta.webhook(meta.entry([meta.text_message(text="¿Tienen café? ☕")])), ensure_ascii=False).encode()


def header_as_meta_sends(body: bytes, secret: str) -> str:
    """Computed independently of the module: `sha256=` and the lowercase hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_header_name_is_the_sha256_one() -> None:
    assert SIGNATURE_HEADER == "X-Hub-Signature-256"


def test_sign_produces_what_meta_sends() -> None:
    value = sign(BODY, APP_SECRET)

    assert value == header_as_meta_sends(BODY, APP_SECRET)
    digest = value.removeprefix("sha256=")
    assert len(digest) == 64 and digest == digest.lower()


def test_valid_signature_is_accepted() -> None:
    assert is_valid_signature(BODY, header_as_meta_sends(BODY, APP_SECRET), APP_SECRET) is True


def test_signature_made_with_another_secret_is_rejected() -> None:
    assert is_valid_signature(BODY, header_as_meta_sends(BODY, "another-apps-secret"), APP_SECRET) is False


@pytest.mark.parametrize("position", [0, len(BODY) // 2, len(BODY) - 1])
def test_body_changed_by_one_byte_is_rejected(position: int) -> None:
    header = header_as_meta_sends(BODY, APP_SECRET)
    tampered = bytearray(BODY)
    tampered[position] ^= 0x01

    assert is_valid_signature(bytes(tampered), header, APP_SECRET) is False


@pytest.mark.parametrize("header", [None, ""])
def test_missing_header_is_rejected(header: str | None) -> None:
    assert is_valid_signature(BODY, header, APP_SECRET) is False


def test_bare_hex_without_sha256_prefix_is_rejected() -> None:
    bare = header_as_meta_sends(BODY, APP_SECRET).removeprefix("sha256=")

    assert is_valid_signature(BODY, bare, APP_SECRET) is False


def test_legacy_sha1_header_is_rejected() -> None:
    legacy = "sha1=" + hmac.new(APP_SECRET.encode(), BODY, hashlib.sha1).hexdigest()

    assert is_valid_signature(BODY, legacy, APP_SECRET) is False


def test_sha256_digest_under_a_sha1_prefix_is_rejected() -> None:
    digest = header_as_meta_sends(BODY, APP_SECRET).removeprefix("sha256=")

    assert is_valid_signature(BODY, "sha1=" + digest, APP_SECRET) is False


@pytest.mark.parametrize(
    "header",
    [
        "sha256=" + "é" * 64,
        "sha256=ñandú",
        "sha256=" + "0" * 63 + "\u00e9",
        "sha256=👍",
    ],
)
def test_non_ascii_header_is_rejected_without_raising(header: str) -> None:
    assert is_valid_signature(BODY, header, APP_SECRET) is False


def test_non_ascii_header_next_to_a_valid_digest_is_rejected() -> None:
    assert is_valid_signature(BODY, header_as_meta_sends(BODY, APP_SECRET) + "é", APP_SECRET) is False


def test_uppercase_hex_is_rejected_because_meta_sends_lowercase() -> None:
    """Meta's header is lowercase hex; the check compares exactly, so an uppercased digest is not Meta's."""
    digest = header_as_meta_sends(BODY, APP_SECRET).removeprefix("sha256=")
    assert digest != digest.upper()  # a SHA-256 hex digest with no letter is astronomically unlikely

    assert is_valid_signature(BODY, "sha256=" + digest.upper(), APP_SECRET) is False


def test_uppercase_prefix_is_rejected() -> None:
    digest = header_as_meta_sends(BODY, APP_SECRET).removeprefix("sha256=")

    assert is_valid_signature(BODY, "SHA256=" + digest, APP_SECRET) is False


@pytest.mark.parametrize("cut", [1, 32, 63])
def test_truncated_digest_is_rejected(cut: int) -> None:
    header = header_as_meta_sends(BODY, APP_SECRET)

    assert is_valid_signature(BODY, header[:-cut], APP_SECRET) is False


def test_digest_with_extra_characters_is_rejected() -> None:
    assert is_valid_signature(BODY, header_as_meta_sends(BODY, APP_SECRET) + "00", APP_SECRET) is False


def test_trailing_whitespace_of_the_header_is_tolerated() -> None:
    assert is_valid_signature(BODY, header_as_meta_sends(BODY, APP_SECRET) + "\r\n", APP_SECRET) is True


def test_empty_body_signature_is_checked_like_any_other() -> None:
    assert is_valid_signature(b"", header_as_meta_sends(b"", APP_SECRET), APP_SECRET) is True
    assert is_valid_signature(b"", header_as_meta_sends(BODY, APP_SECRET), APP_SECRET) is False


@pytest.mark.parametrize("valid", [True, False])
def test_comparison_goes_through_hmac_compare_digest(monkeypatch: pytest.MonkeyPatch, valid: bool) -> None:
    """A regression to `==` (timing leak) makes this fail: the constant-time function must decide."""
    real_compare_digest = hmac.compare_digest
    calls: list[tuple[bytes, bytes]] = []

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real_compare_digest(a, b)

    monkeypatch.setattr(signature.hmac, "compare_digest", spy)
    header = header_as_meta_sends(BODY, APP_SECRET if valid else "wrong-secret")

    assert is_valid_signature(BODY, header, APP_SECRET) is valid
    assert calls == [(header_as_meta_sends(BODY, APP_SECRET).encode(), header.encode())]


@given(body=st.binary(max_size=2048), secret=st.text(min_size=1, max_size=64), flip=st.integers(min_value=0))
def test_any_body_verifies_with_its_own_signature_and_not_after_a_one_byte_change(
    body: bytes, secret: str, flip: int
) -> None:
    header = header_as_meta_sends(body, secret)
    assert is_valid_signature(body, header, secret) is True

    if body:
        tampered = bytearray(body)
        tampered[flip % len(body)] ^= 0xFF
        assert is_valid_signature(bytes(tampered), header, secret) is False
    else:
        assert is_valid_signature(b"\x00", header, secret) is False
