"""Shared parts of the fault tests: processes started and killed on loopback, and the counting that
decides whether a message was lost or sent twice.

Every count is by (recipient, text) on what the Graph sandbox accepted, compared with what the
outbox holds; the tests give each message a text of its own where they can, so a duplicate is
never a legitimate second message. That comparison cannot see a reply queued twice (under two
keys): `repeated_replies` counts, per inbound event, what was queued under all its reply keys.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bot.stack import Ports, Stack, build_stack
from core.settings import ROOT
from tests.support.stack import free_port

SERVICE_TOKEN = "demo-service-token"  # the development default of BOT_SERVICE_TOKEN


def start_app(data_dir: Path, extra_env: dict[str, str] | None = None) -> Stack:
    """Only the app (console, outbox API and worker, Graph sandbox) as its own process, the way the
    stack starts it; `stack.stop()` ends it. Rasa and the action server are not started."""
    stack = build_stack(Ports(free_port(), free_port(), free_port()), data_dir, Path("unused"), extra_env)
    try:
        stack.start_app()
    except BaseException:
        stack.stop()
        raise
    return stack


def start_worker(env: dict[str, str], name: str, log: Path) -> subprocess.Popen:
    """`python -m outbox worker --id <name>`, its own process group (so kill -9 reaches only it)."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "outbox", "worker", "--id", name],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def kill_9(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait()


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            kill_9(process)


def wait_until(condition: Callable[[], bool], timeout: float, what: str, every: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def sqlite_rows(path: Path, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
    """A read on a fresh connection (the processes under test write concurrently; WAL lets us read)."""
    with closing(sqlite3.connect(str(path), timeout=10)) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql, tuple(params)).fetchall()


def sandbox_sent(http: httpx.Client, app_url: str, recipient_id: str | None = None) -> list[dict[str, Any]]:
    """Accepted Send API requests with a `message` (sender actions left out), oldest first."""
    params = {"recipient_id": recipient_id} if recipient_id else {}
    answer = http.get(app_url + "/sandbox/sent", params=params)
    answer.raise_for_status()
    return [item for item in answer.json() if "message" in item["body"]]


def delivered(records: Iterable[dict[str, Any]]) -> collections.Counter[tuple[str, str]]:
    """(recipient, text) → how many times the Send API accepted it."""
    return collections.Counter(
        (item["body"]["recipient"]["id"], item["body"]["message"].get("text", "")) for item in records
    )


def sent_twice(counts: collections.Counter[tuple[str, str]], expected: collections.Counter[tuple[str, str]]) -> dict:
    """What reached the Send API more often than the outbox holds it: the duplicates."""
    return {key: counts[key] - expected[key] for key in counts if counts[key] > expected[key]}


def event_reply_prefix(page_id: str, dedup_key: str) -> str:
    """What every outbox key of a reply to one inbound event starts with: `reply:<page>:<event>:<n>` for its turn,
    `reply:<page>:<event>:revert<k>:<n>` for the turn re-run after its k-th revert (connectors/messenger.py)."""
    return f"reply:{page_id}:{dedup_key}:"


def repeated_replies(events: Iterable[Any], outgoing: Iterable[Any]) -> dict[tuple[str, str], int]:
    """The queue-level duplicates that `sent_twice` cannot see (it counts against the outbox, so a reply queued twice
    under two keys looks expected): per inbound event (rows with `page_id`, `dedup_key`, `reverted_turns`), each
    message queued under its reply keys, whatever the key prefix, more often than allowed. Allowed: once, plus once
    per turn undone after a failed action call (the documented case: what the undone turn said before the failing
    call, such as the automation notice, may be said again). A crash or a failed write replays the same turn under
    the same keys, so it allows nothing. Returns (dedup key, text) → how many times too many."""
    rows = [(row["idempotency_key"] or "", _canonical(row["message"])) for row in outgoing]
    too_many: dict[tuple[str, str], int] = {}
    for event in events:
        prefix = event_reply_prefix(event["page_id"], event["dedup_key"])
        queued = collections.Counter(message for key, message in rows if key.startswith(prefix))
        allowed = 1 + int(event["reverted_turns"] or 0)
        for message, count in queued.items():
            if count > allowed:
                too_many[(event["dedup_key"], json.loads(message).get("text", message))] = count - allowed
    return too_many


def _canonical(message: str | dict[str, Any]) -> str:
    return json.dumps(json.loads(message) if isinstance(message, str) else message, sort_keys=True, ensure_ascii=False)


def per_recipient_order(records: Iterable[dict[str, Any]]) -> dict[str, list[str]]:
    """Each recipient's texts in the order the Send API accepted them, a repeat counted at its first send."""
    order: dict[str, list[str]] = collections.defaultdict(list)
    for item in records:
        order[item["body"]["recipient"]["id"]].append(item["body"]["message"].get("text", ""))
    return {recipient: list(dict.fromkeys(texts)) for recipient, texts in order.items()}


class GraphTap:
    """A recording reverse proxy in front of the app, on its own port in the test process: the stack is told
    the app lives there (`BOT_APP_URL`), so the app still serves its Graph sandbox (it does only when sends go
    to its own address) and every Send API request, from Rasa's worker or the app's, passes through the tap.

    The sandbox keeps its log in the app's memory, so a kill -9 of the app forgets what it accepted; the tap
    remembers every Send API request the sandbox accepted (200), in the record shape of `/sandbox/sent`.
    While the app is down it answers as an unreachable Graph API does, 503 with a transient error (code 2),
    so the outbox must retry. Set `upstream` to the app's real address once it is known."""

    def __init__(self) -> None:
        self.upstream: str | None = None
        self._lock = threading.Lock()
        self._accepted: list[dict[str, Any]] = []
        self.refused_while_down = 0
        self.app = self._build_app()

    def accepted(self, recipient_id: str | None = None) -> list[dict[str, Any]]:
        """Accepted Send API requests with a `message`, oldest first."""
        with self._lock:
            records = list(self._accepted)
        return [
            item
            for item in records
            if "message" in item["body"]
            and (recipient_id is None or item["body"]["recipient"].get("id") == recipient_id)
        ]

    def _build_app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.requests import Request
        from starlette.responses import JSONResponse, Response
        from starlette.routing import Route

        client = httpx.AsyncClient(timeout=30)

        async def forward(request: Request) -> Response:
            raw = await request.body()
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
            try:
                answer = await client.request(
                    request.method,
                    f"{self.upstream}{request.url.path}",
                    params=request.query_params,
                    content=raw,
                    headers=headers,
                )
            except httpx.TransportError:
                with self._lock:
                    self.refused_while_down += 1
                error = {"message": "the Graph API is unreachable (the app is down)", "code": 2, "is_transient": True}
                return JSONResponse({"error": error}, status_code=503)
            if request.method == "POST" and request.url.path.endswith("/messages") and answer.status_code == 200:
                body = json.loads(raw)
                body.pop("access_token", None)
                with self._lock:
                    self._accepted.append({"body": body, "response": answer.json()})
            passed = {k: v for k, v in answer.headers.items() if k.lower() in ("content-type", "retry-after")}
            return Response(answer.content, status_code=answer.status_code, headers=passed)

        @contextlib.asynccontextmanager
        async def lifespan(_app: Any) -> AsyncIterator[None]:
            yield
            await client.aclose()

        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        return Starlette(routes=[Route("/{path:path}", forward, methods=methods)], lifespan=lifespan)


@dataclass
class StackFiles:
    """A fault test's own stack, with the two SQLite files its verdicts read."""

    stack: Stack

    @property
    def journal(self) -> Path:
        """The ingest journal: every inbound event and its verdict."""
        return self.stack.data_dir / "messenger.sqlite3"

    @property
    def outbox(self) -> Path:
        return self.stack.data_dir / "outbox.sqlite3"
