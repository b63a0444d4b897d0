"""The webhook process: Meta's deliveries in, the ingest journal out, 200 once they are durable.

`python -m connectors.webhook_server [--host H] [--port P]` (Python 3.11; no Rasa here). Rasa's turns are CPU-bound,
so the webhook has its own process and event loop: a burst of deliveries is answered in milliseconds while Rasa is
busy, and the Rasa channel (connectors/messenger.py) is fed from the journal (`IngestStore.claim_pending`).

Routes (the same path the Rasa channel had, so Meta's setting only changes host and port):
- `GET /webhooks/messenger/webhook`: Meta's verification (`hub.mode=subscribe`, `hub.verify_token`, `hub.challenge`);
- `POST /webhooks/messenger/webhook`: a delivery. The size is capped before the body is read (`Content-Length`,
  then a running count for a body without one): 413. Then `meta.delivery.judge_delivery` (403 bad signature, 400
  malformed), the events recorded with the journal's group commit (`IngestStore.record_async`: concurrent
  deliveries share one fsync), the delivery's `feed` changes (comments on the page's posts, `meta.feed`) in the
  comment journal (`comments.journal`, one commit per delivery, in its own thread), then 200. A journal that cannot
  be written is 503, so Meta delivers again (what was recorded already is a no-op then);
- `GET /health`: `{"status": "ok"}`.
Anything else is 404 (405 for a known path with another method). Bad input is a 4xx, never a 500.

Unsigned clients cannot hold the process: at most `MAX_CONNECTIONS` connections at once (uvicorn's
`limit_concurrency`: a request beyond them is answered 503), an idle keep-alive connection is closed after
`KEEP_ALIVE_SECONDS`, and a body must arrive within `BODY_READ_SECONDS` of the request (else 408 and the connection
closes: uvicorn has no read deadline of its own), so a slow sender holds its 1 MiB for seconds, not forever.

A minimal ASGI app on uvicorn (httptools parser, uvloop when installed, no access log): no framework on the path.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime, timezone
from typing import Any
from urllib.parse import parse_qs

from comments.journal import CommentJournal, open_comment_journal
from connectors.ingest import ROLE_WEBHOOK, IngestJournal, open_ingest_store
from core.exposure import STARTUP_CHECKS
from core.settings import Settings, SettingsError, load_settings
from meta.delivery import MAX_BODY_BYTES, DeliveryVerdict, judge_delivery
from meta.signature import SIGNATURE_HEADER, is_valid_verify_token

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/webhooks/messenger/webhook"
HEALTH_PATH = "/health"
# Every route of this process and who may call it: Meta (signed deliveries, the verify token), anyone (health).
# tests/unit/connectors/test_webhook_server.py holds the app to this table.
ROUTES: dict[tuple[str, str], str] = {
    ("GET", WEBHOOK_PATH): "meta: the verify token",
    ("POST", WEBHOOK_PATH): "meta: X-Hub-Signature-256 with the app secret",
    ("GET", HEALTH_PATH): "public",
}
_SIGNATURE = SIGNATURE_HEADER.lower().encode("latin-1")
MAX_QUERY_BYTES = 4096  # a verification's query string is a few dozen bytes
MAX_CONNECTIONS = 512  # uvicorn's limit_concurrency: connections (or tasks) beyond it are answered 503
KEEP_ALIVE_SECONDS = 5  # an idle keep-alive connection is closed after this
BODY_READ_SECONDS = 10.0  # a delivery's whole body must arrive within this (Meta sends its few KB at once)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class BodyTooLarge(Exception):
    """The body passed `MAX_BODY_BYTES` while it streamed in."""




def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None | str:
    """`Content-Length` as a number, None when absent, "bad" when it is not one number (→ 400)."""
    values = [value for name, value in headers if name == b"content-length"]
    if not values:
        return None
    if len(values) > 1 or not values[0].strip().isdigit():
        return "bad"
    return int(values[0])


def header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


def verify_answer(query_string: bytes, verify_token: str) -> tuple[int, bytes]:
    """Meta's subscription check (pure): the challenge back for the right token, else 403."""
    if len(query_string) > MAX_QUERY_BYTES:
        return 414, b"query string too long"
    try:
        query = parse_qs(query_string.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        return 400, b"bad query string"
    mode = (query.get("hub.mode") or [""])[0]
    token = (query.get("hub.verify_token") or [""])[0]
    challenge = (query.get("hub.challenge") or [""])[0]
    if mode == "subscribe" and is_valid_verify_token(token, verify_token):
        return 200, challenge.encode("utf-8")
    return 403, b"forbidden"


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, counted as it streams: past `limit` it stops reading (`BodyTooLarge`)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionResetError("the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def answer(send: Send, status: int, body: bytes, content_type: bytes = b"text/plain; charset=utf-8",
                 close: bool = False) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def answer_json(send: Send, status: int, payload: dict[str, Any], close: bool = False) -> None:
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    await answer(send, status, body, b"application/json", close)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class WebhookApp:
    """The ASGI app. `store` is the ingest journal (its `record_async` commits concurrent deliveries together);
    `comments` the comment journal (`feed` changes; without one they are logged and left out); `app_id` tells our
    own echoes from a person's (MESSENGER_APP_ID); `body_deadline` bounds a slow body."""

    def __init__(self, store: IngestJournal, *, app_secret: str, verify_token: str, app_id: str = "",
                 body_deadline: float = BODY_READ_SECONDS, comments: CommentJournal | None = None,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.store = store
        self.comments = comments
        self.clock = clock
        self.body_deadline = body_deadline  # seconds for the whole body to arrive (408 after)
        self.app_secret = app_secret
        self.verify_token = verify_token
        self.app_id = app_id
        self.received = 0  # deliveries recorded (health, tests)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # websockets: not served (uvicorn closes the connection)
        path, method = scope.get("path", ""), scope.get("method", "")
        if path == WEBHOOK_PATH:
            if method == "POST":
                await self._receive(scope, receive, send)
            elif method in ("GET", "HEAD"):
                status, body = verify_answer(scope.get("query_string", b""), self.verify_token)
                await answer(send, status, body)
            else:
                await answer_json(send, 405, {"error": "method not allowed"})
        elif path == HEALTH_PATH:
            if method in ("GET", "HEAD"):
                await answer_json(send, 200, {"status": "ok", "received": self.received})
            else:
                await answer_json(send, 405, {"error": "method not allowed"})
        else:
            await answer_json(send, 404, {"error": "not found"})

    async def _receive(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = scope.get("headers", [])
        length = declared_length(headers)
        if length == "bad":
            await answer_json(send, 400, {"error": "bad Content-Length"}, close=True)
            return
        if isinstance(length, int) and length > MAX_BODY_BYTES:  # refused before one byte is read
            await answer_json(send, 413, {"error": "body larger than 1 MiB"}, close=True)
            return
        try:
            raw = await asyncio.wait_for(read_body(receive, MAX_BODY_BYTES), self.body_deadline)
        except TimeoutError:  # a slow (or stalled) sender: it does not keep its connection and buffer
            await answer_json(send, 408, {"error": "the body did not arrive in time"}, close=True)
            return
        except BodyTooLarge:
            await answer_json(send, 413, {"error": "body larger than 1 MiB"}, close=True)
            return
        except ConnectionResetError:
            return
        verdict = judge_delivery(raw, header(headers, _SIGNATURE), self.app_secret)
        if not verdict.accepted:
            if verdict.status == 403:
                logger.warning("webhook rejected: missing or wrong %s", SIGNATURE_HEADER)
            elif verdict.status == 400:
                logger.warning("webhook refused: %s", verdict.error)
            await answer_json(send, verdict.status, {"error": verdict.error})
            return
        for skipped in verdict.skipped:  # signed by Meta but unusable: left out, said out loud
            logger.warning(
                "webhook item skipped: %s", skipped.reason,
                extra={"entry": skipped.entry_index, "list": skipped.list_name, "item": skipped.item_index},
            )
        if verdict.events:
            try:  # durable before the 200: the group commit waits for its fsync
                await self.store.record_async(list(verdict.events), self.app_id)
            except Exception:  # the journal cannot be written (disk full, locked): Meta delivers again later
                logger.exception("recording a webhook delivery failed")
                await answer_json(send, 503, {"error": "the journal is unavailable; deliver again"})
                return
        if verdict.changes and not await self._record_changes(verdict):
            await answer_json(send, 503, {"error": "the comment journal is unavailable; deliver again"})
            return
        self.received += 1
        await answer(send, 200, b"EVENT_RECEIVED")

    async def _record_changes(self, verdict: DeliveryVerdict) -> bool:
        """The delivery's feed changes, durable before the 200 (False: the comment journal cannot be written)."""
        if self.comments is None:
            logger.warning("feed changes not recorded: this webhook process has no comment journal",
                           extra={"changes": len(verdict.changes)})
            return True
        return await self.comments.record_delivery(list(verdict.changes), self.clock())

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await asyncio.get_running_loop().run_in_executor(None, self.store.close)
                if self.comments is not None:
                    await asyncio.get_running_loop().run_in_executor(None, self.comments.close)
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_app(settings: Settings | None = None, store: IngestJournal | None = None) -> WebhookApp:
    settings = settings or load_settings()
    journal = store or open_ingest_store(settings.ingest_store_url, role=ROLE_WEBHOOK)
    return WebhookApp(journal, app_secret=settings.app_secret, verify_token=settings.verify_token,
                      app_id=settings.app_id, comments=open_comment_journal(settings.store_url("comment_journal")))


def server_config(app: WebhookApp, host: str, port: int, loop: str = "asyncio") -> Any:
    """How uvicorn serves the app (a `uvicorn.Config`): httptools, no access log, and the limits that keep unsigned
    clients from holding the process (`MAX_CONNECTIONS`, `KEEP_ALIVE_SECONDS`; the body deadline is the app's)."""
    import uvicorn

    return uvicorn.Config(app, host=host, port=port, loop=loop, http="httptools", access_log=False,
                          log_level="warning", lifespan="on", server_header=False,
                          limit_concurrency=MAX_CONNECTIONS, timeout_keep_alive=KEEP_ALIVE_SECONDS)


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m connectors.webhook_server", description=__doc__.split("\n")[0])
    parser.add_argument("--host", help="listen here (default WEBHOOK_HOST, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="listen here (default WEBHOOK_PORT, 5006)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        host = args.host or settings.webhook_host
        for check in STARTUP_CHECKS["webhook"]:
            check(dataclasses.replace(settings, webhook_host=host))
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    try:
        import uvloop  # noqa: F401

        loop = "uvloop"
    except ImportError:
        loop = "asyncio"
    uvicorn.Server(server_config(app, host, args.port or settings.webhook_port, loop)).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
