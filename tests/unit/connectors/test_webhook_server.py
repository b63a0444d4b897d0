"""The webhook process's ASGI app (connectors/webhook_server.py), driven in-process with a real SQLite journal.

Signature, size cap before the body (Content-Length and a running count), bad JSON, Meta's verification, health,
the route table, and a fuzz of bodies and headers: every answer is 200 or a 4xx, never a 500, and nothing unsigned
is stored.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.ingest import PENDING, IngestStore
from connectors.webhook_server import HEALTH_PATH, ROUTES, WEBHOOK_PATH, WebhookApp, declared_length, verify_answer
from meta.delivery import MAX_BODY_BYTES
from meta.signature import SIGNATURE_HEADER, sign
from sandbox import simulate
from tests.support.webhook_fuzz import random_byte_bodies, random_json_bodies, shaped_bodies, signed_or_not

SECRET = "webhook-server-test-secret-0123456789"
VERIFY = "verify-token-for-the-webhook-tests"
PAGE = "100000000000001"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[IngestStore]:
    journal = IngestStore(tmp_path / "messenger.sqlite3")
    yield journal
    journal.close()


@pytest.fixture
def app(store: IngestStore) -> WebhookApp:
    return WebhookApp(store, app_secret=SECRET, verify_token=VERIFY, app_id="own-app")


class Call:
    """One ASGI request: what the app sent back and how many body chunks it asked for."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.reads = 0
        self.messages: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        self.reads += 1
        if not self.chunks:
            return {"type": "http.disconnect"}
        chunk = self.chunks.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(self.chunks)}

    async def send(self, message: dict[str, Any]) -> None:
        self.messages.append(message)

    @property
    def status(self) -> int:
        return int(self.messages[0]["status"])

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.messages if m["type"] == "http.response.body")


def request(app: WebhookApp, method: str, path: str, chunks: list[bytes] | None = None,
            headers: dict[str, str] | None = None, query: bytes = b"") -> Call:
    call = Call(chunks if chunks is not None else [b""])
    scope = {
        "type": "http", "method": method, "path": path, "query_string": query,
        "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()],
    }
    asyncio.run(app(scope, call.receive, call.send))
    return call


def signed(raw: bytes, secret: str = SECRET) -> dict[str, str]:
    return {SIGNATURE_HEADER: sign(raw, secret), "content-type": "application/json",
            "content-length": str(len(raw))}


def text_body(user: str, text: str, mid: str | None = None) -> bytes:
    item = simulate.text_message(PAGE, user, text)
    if mid:
        item["message"]["mid"] = mid
    return json.dumps(simulate.webhook_body(PAGE, [item])).encode()


def test_a_signed_delivery_is_recorded_before_the_200(app: WebhookApp, store: IngestStore) -> None:
    raw = text_body("u1", "hola")
    call = request(app, "POST", WEBHOOK_PATH, [raw], signed(raw))
    assert (call.status, call.body) == (200, b"EVENT_RECEIVED")
    [row] = store.pending()
    assert (row.event.user_id, row.event.text, row.status) == ("u1", "hola", PENDING)


def test_a_redelivery_is_answered_200_and_stored_once(app: WebhookApp, store: IngestStore) -> None:
    raw = text_body("u1", "hola", mid="m.same")
    assert request(app, "POST", WEBHOOK_PATH, [raw], signed(raw)).status == 200
    assert request(app, "POST", WEBHOOK_PATH, [raw], signed(raw)).status == 200
    assert store.counts_by_status() == {PENDING: 1}


@pytest.mark.parametrize("signature", [None, "sha256=" + "0" * 64, "sha1=abc", "garbage"])
def test_a_wrong_or_missing_signature_is_403_and_nothing_is_stored(
    app: WebhookApp, store: IngestStore, signature: str | None
) -> None:
    raw = text_body("u1", "hola")
    headers = {"content-length": str(len(raw))}
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    assert request(app, "POST", WEBHOOK_PATH, [raw], headers).status == 403
    assert request(app, "POST", WEBHOOK_PATH, [raw], signed(raw, "another-secret")).status == 403
    assert store.counts_by_status() == {}


def test_a_declared_length_over_the_cap_is_413_before_one_byte_is_read(app: WebhookApp, store: IngestStore) -> None:
    call = request(app, "POST", WEBHOOK_PATH, [b"x" * 10], {"content-length": str(MAX_BODY_BYTES + 1)})
    assert call.status == 413
    assert call.reads == 0, "the body was not read"
    assert (b"connection", b"close") in call.messages[0]["headers"]


def test_a_body_without_a_length_is_counted_and_cut_at_the_cap(app: WebhookApp) -> None:
    chunk = b"x" * (256 * 1024)
    call = request(app, "POST", WEBHOOK_PATH, [chunk] * 10, {"transfer-encoding": "chunked"})
    assert call.status == 413
    assert call.reads == 5, "reading stopped at the chunk that passed 1 MiB"


@pytest.mark.parametrize("length", ["abc", "-1", "1, 2", ""])
def test_a_bad_content_length_is_400(app: WebhookApp, length: str) -> None:
    assert request(app, "POST", WEBHOOK_PATH, [b"{}"], {"content-length": length}).status == 400


def test_declared_length() -> None:
    assert declared_length([]) is None
    assert declared_length([(b"content-length", b"12")]) == 12
    assert declared_length([(b"content-length", b"12"), (b"content-length", b"12")]) == "bad"


@pytest.mark.parametrize("raw", [b"not json", b"{", b"[]", b'{"object": "user"}', b'{"object": "page", "entry": 5}',
                                 "\ud800".encode("utf-8", "surrogatepass")])
def test_signed_bad_json_or_shape_is_400(app: WebhookApp, store: IngestStore, raw: bytes) -> None:
    call = request(app, "POST", WEBHOOK_PATH, [raw], signed(raw))
    assert call.status == 400, call.body
    assert "error" in json.loads(call.body)
    assert store.counts_by_status() == {}


def test_the_verification_answers_the_challenge_for_the_right_token_only(app: WebhookApp) -> None:
    good = f"hub.mode=subscribe&hub.verify_token={VERIFY}&hub.challenge=42".encode()
    ok = request(app, "GET", WEBHOOK_PATH, query=good)
    assert (ok.status, ok.body) == (200, b"42")
    wrong = b"hub.mode=subscribe&hub.verify_token=no&hub.challenge=4"
    assert request(app, "GET", WEBHOOK_PATH, query=wrong).status == 403
    assert request(app, "GET", WEBHOOK_PATH, query=f"hub.mode=other&hub.verify_token={VERIFY}".encode()).status == 403
    assert request(app, "GET", WEBHOOK_PATH).status == 403
    assert verify_answer(b"x" * 5000, VERIFY)[0] == 414
    assert verify_answer(b"hub.mode=%ff", VERIFY)[0] in (400, 403)


def test_health_and_unknown_routes(app: WebhookApp) -> None:
    health = request(app, "GET", HEALTH_PATH)
    assert health.status == 200 and json.loads(health.body)["status"] == "ok"
    assert request(app, "GET", "/webhooks/rest/webhook").status == 404
    assert request(app, "GET", "/").status == 404
    assert request(app, "DELETE", WEBHOOK_PATH).status == 405
    assert request(app, "POST", HEALTH_PATH).status == 405


def test_the_route_table_is_what_the_app_serves(app: WebhookApp) -> None:
    """Every (method, path) the app answers with something other than 404/405 is in ROUTES, and only those."""
    candidates = [(m, p) for m in ("GET", "POST", "PUT", "DELETE", "PATCH")
                  for p in (WEBHOOK_PATH, HEALTH_PATH, "/", "/webhooks/messenger/", "/webhooks/rest/webhook")]
    served = {(m, p) for m, p in candidates if request(app, m, p, [b""]).status not in (404, 405)}
    assert served == set(ROUTES)


def test_a_journal_that_cannot_be_written_is_503_so_meta_delivers_again(tmp_path: Path) -> None:
    class Broken(IngestStore):
        async def record_async(self, events: Any, own_app_id: str = "") -> Any:
            raise OSError("disk full")

    broken = Broken(tmp_path / "broken.sqlite3")
    try:
        app = WebhookApp(broken, app_secret=SECRET, verify_token=VERIFY)
        raw = text_body("u1", "hola")
        assert request(app, "POST", WEBHOOK_PATH, [raw], signed(raw)).status == 503
    finally:
        broken.close()


FUZZ = settings(deadline=None, database=None, max_examples=300, suppress_health_check=list(HealthCheck))
HEADER_VALUES = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=80)


@FUZZ
@given(
    st.one_of(
        signed_or_not(random_byte_bodies, "bytes", SECRET),
        signed_or_not(random_json_bodies, "json", SECRET),
        signed_or_not(shaped_bodies(), "shaped", SECRET),
    ),
    st.dictionaries(st.sampled_from(["content-length", "content-type", "transfer-encoding",
                                     SIGNATURE_HEADER.lower(), "x-forwarded-for", "expect"]),
                    HEADER_VALUES, max_size=4),
    st.integers(min_value=1, max_value=4),
)
def test_fuzzed_bodies_and_headers_are_answered_200_or_4xx(tmp_path_factory: Any, body: Any,
                                                           extra: dict[str, str], pieces: int) -> None:
    """Bodies (random bytes, random JSON, Meta-shaped) signed or not, with fuzzed headers, split in chunks."""
    journal = IngestStore(tmp_path_factory.mktemp("fuzz") / "messenger.sqlite3")
    try:
        app = WebhookApp(journal, app_secret=SECRET, verify_token=VERIFY)
        headers = {**extra}
        if body.signature is not None and SIGNATURE_HEADER.lower() not in extra:
            headers[SIGNATURE_HEADER.lower()] = body.signature
        size = max(1, len(body.raw) // pieces + 1)
        chunks = [body.raw[i:i + size] for i in range(0, len(body.raw), size)] or [b""]
        call = request(app, "POST", WEBHOOK_PATH, chunks, headers)
        assert call.status == 200 or 400 <= call.status < 500, (call.status, call.body[:200])
        if headers.get(SIGNATURE_HEADER.lower()) != sign(body.raw, SECRET):
            assert call.status in (400, 403, 413), "nothing unsigned is accepted"
            assert not journal.counts_by_status(), "nothing unsigned is stored"
    finally:
        journal.close()
