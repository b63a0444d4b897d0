"""The Messenger channel (`connectors/messenger.py`) driven in-process, inside Rasa's environment (Python 3.10).

Real: Rasa's agent (loaded once per run from the trained model in models/, with an SQL tracker store on SQLite as
endpoints.yml configures it, and the project's action server as its own process, started from .venv the way the
stack starts it); the channel's ingest journal, outbox and outbox worker (SQLite files in the test's tmp_path);
a Sanic server on a free port serving the channel's blueprint, registered the way `rasa run` registers it
(`rasa.core.channels.channel.register`: the handler is the agent's `handle_message`). Fake: the Graph API
(`FakeGraph`, a small aiohttp server answering the Send API as Meta does and recording every request) and the
app (a closed port; the behaviours tested here never call it).

Everything here runs on the test's event loop, as the channel does inside Rasa: waits are `await`ed
(`eventually`), never `time.sleep`, or the channel would stand still while the test waits for it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from sanic import Sanic

from connectors.dispatch import JournalFeeder
from connectors.ingest import IngestStore
from connectors.messenger import MessengerInput
from core.settings import DEMO_APP_SECRET, SANDBOX_PAGE_ID, Settings
from outbox.outbox import Outbox
from outbox.policy_file import load_policy
from outbox.store import SQLiteOutboxStore
from sandbox import simulate

PAGE_ID = SANDBOX_PAGE_ID


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def eventually(condition: Callable[[], bool], what: str, timeout: float = 60.0, every: float = 0.05) -> None:
    """Poll `condition` without blocking the event loop the channel runs on."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(every)


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    """`app` served on a free local port: its runner (`cleanup()` stops it) and its base URL. The fakes of Meta and of
    the app run this way."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    await web.SockSite(runner, sock).start()
    return runner, f"http://127.0.0.1:{sock.getsockname()[1]}"


class FakeEndpoint:
    """One `POST path` of a fake service on a free local port (`url`), answered by the subclass's `answer`."""

    path = ""

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self.url = ""

    async def answer(self, request: web.Request) -> web.Response:
        raise NotImplementedError

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(self.path, self.answer)
        self._runner, self.url = await serve(app)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


class FakeGraph:
    """The Send API (`POST /{version}/{page}/messages`) as Meta answers it: 200 with a message id, every request
    recorded. `hold_sender_actions`, when cleared, holds every sender action (mark_seen, typing) until set: a
    turn can be parked at a known point, before Rasa runs it."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.hold_sender_actions = asyncio.Event()
        self.hold_sender_actions.set()
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{version}/{node}/messages", self._messages)
        self._runner, self.base_url = await serve(app)

    async def close(self) -> None:
        self.hold_sender_actions.set()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.append(body)
        if "sender_action" in body:
            await self.hold_sender_actions.wait()
            return web.json_response({"recipient_id": body["recipient"]["id"]})
        number = len(self.requests)
        return web.json_response({"recipient_id": body["recipient"]["id"], "message_id": f"m_fake_{number}"})

    def sender_actions(self, user: str, action: str) -> int:
        return sum(1 for body in self.requests if body["recipient"].get("id") == user
                   and body.get("sender_action") == action)

    def texts(self, user: str) -> list[str]:
        """The texts sent to a user, in the order they reached the Send API."""
        return [body["message"].get("text", "") for body in self.requests
                if body["recipient"].get("id") == user and "message" in body]


class ActionTap:
    """A forwarding proxy between Rasa and the action server, on a thread of its own (so it may block without
    stopping the channel's loop): `before_action(name)`, when set, runs before a call of that action is passed on.
    Health checks and every call are forwarded as they are."""

    def __init__(self, upstream: str) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.upstream = upstream.rstrip("/")
        self.before_action: Callable[[str], None] | None = None
        tap = self

        class Forward(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._forward(None)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                name = json.loads(body or b"{}").get("next_action")
                hook = tap.before_action
                if hook is not None and isinstance(name, str):
                    hook(name)
                self._forward(body)

            def _forward(self, body: bytes | None) -> None:
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
                request = urllib.request.Request(tap.upstream + self.path, data=body, headers=headers,
                                                 method=self.command)
                try:
                    with urllib.request.urlopen(request, timeout=60) as answer:
                        status, payload = answer.status, answer.read()
                except urllib.error.HTTPError as exc:
                    status, payload = exc.code, exc.read()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Forward)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, name="action-tap", daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class WriteLock:
    """Another connection holding SQLite's write lock (`BEGIN IMMEDIATE`), taken and released from any thread:
    readers go on, every writer waits for its busy timeout, then fails with "database is locked"."""

    def __init__(self, database: Path) -> None:
        self._conn = sqlite3.connect(str(database), timeout=10, isolation_level=None, check_same_thread=False)
        self.held = False
        self.taken = 0

    def take(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")
        self.held, self.taken = True, self.taken + 1

    def release(self) -> None:
        if self.held:
            self._conn.execute("ROLLBACK")
            self.held = False

    def close(self) -> None:
        self.release()
        self._conn.close()


def with_short_outbox_busy_timeout(channel: MessengerInput, busy_timeout_ms: int = 1000) -> None:
    """The channel's own outbox store and worker, on the same file, with a 1 s busy timeout instead of 10 s: a test
    that holds the outbox's write lock sees each refused write in a second."""
    channel.outbox.close()
    store = SQLiteOutboxStore(channel.settings.data_dir / "outbox.sqlite3", busy_timeout_ms=busy_timeout_ms)
    channel.outbox = Outbox(store, channel.client, load_policy(), page_rate=channel.settings.outbox_page_rate,
                            lease_seconds=channel.settings.outbox_lease_seconds)


class RecoveryGatedIngestStore(IngestStore):
    """The real ingest journal, whose first claim (the feeder's round at start-up: the recovery after a restart)
    waits for `recovery_gate`: a webhook can then be made to arrive while the recovery is still reading."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(path)
        self.recovery_gate = asyncio.Event()
        self.recovery_reading = asyncio.Event()
        self.claims = 0

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if getattr(fn, "__func__", None) is JournalFeeder._claim_and_read_journal:
            self.claims += 1
            if self.claims == 1:
                self.recovery_reading.set()
                await self.recovery_gate.wait()
        return await super().run(fn, *args)


def channel_settings(data_dir: Path, graph_url: str, action_server_url: str, action_server_token: str) -> Settings:
    return Settings(
        data_dir=data_dir,
        graph_api_base=graph_url,
        app_url=f"http://127.0.0.1:{free_port()}",  # closed: nothing tested here calls the app
        action_server_url=action_server_url,
        action_server_token=action_server_token,
        action_outage_seconds=10.0,
        action_timeout_seconds=20.0,
        outbox_in_rasa=True,  # no app here: the channel's own worker sends
        messenger_feeder="rasa",  # the channel feeds itself here (test_feeder_process.py: a feeder beside it)
    )


class ChannelServer:
    """`MessengerInput` on a Sanic server of its own, started in the steps `rasa run` goes through: listening,
    then the `after_server_start` listeners (the channel's worker, upkeep and recovery of pending events), which
    `start()` runs as a task so a test can act while they run."""

    def __init__(self, channel: MessengerInput, agent: Any) -> None:
        from rasa.core.channels.channel import register

        self.channel = channel
        self.agent = agent
        # Sanic's switch for several apps in one process (each test has its own): without it the second app's
        # start-up fails rewriting Sanic's methods a second time (TouchUp).
        Sanic.test_mode = True
        self.app = Sanic(f"channel_test_{id(self)}")
        # Rasa runs the channel on uvloop (Sanic's default); here the test runner's own asyncio loop runs it, and
        # Sanic must not switch the policy under the runner (its loops would then be uvloop's from the next test).
        self.app.config.USE_UVLOOP = False
        self.app.ctx.agent = agent
        register([channel], self.app, route="/webhooks/")
        self.port = free_port()
        self.server: Any = None
        self.http: aiohttp.ClientSession | None = None
        self.closers: list[Callable[[], Any]] = []  # coroutine functions run first at `close` (a test's feeder)

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/webhooks/messenger/webhook"

    async def listen(self) -> None:
        self.server = await self.app.create_server(
            host="127.0.0.1", port=self.port, return_asyncio_server=True, access_log=False
        )
        await self.server.startup()
        await self.server.before_start()
        self.http = aiohttp.ClientSession()

    def start(self) -> asyncio.Task:
        return asyncio.get_running_loop().create_task(self.server.after_start())

    async def close(self) -> None:
        for closer in self.closers:
            await closer()
        if self.http is not None:
            await self.http.close()
        if self.server is not None:
            await self.server.before_stop()
            self.server.close()
            await self.server.wait_closed()
            await self.server.after_stop()
        self.channel.store.close()
        self.channel.outbox.close()

    async def deliver(self, body: dict[str, Any]) -> int:
        """A signed delivery, as Meta sends it; the webhook's status."""
        assert self.http is not None
        raw, headers = simulate.signed_request(body, DEMO_APP_SECRET)
        async with self.http.post(self.webhook_url, data=raw, headers=headers) as answer:
            return answer.status

    async def say(self, user: str, text: str) -> int:
        return await self.deliver(simulate.webhook_body(PAGE_ID, [simulate.text_message(PAGE_ID, user, text)]))

    def send_log(self, user: str) -> list[dict[str, Any]]:
        """The user's rows of the channel's send log (what could not be queued or sent directly), oldest first."""
        with closing(sqlite3.connect(str(self.channel.settings.ingest_db_path), timeout=10)) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(
                "SELECT status, request_json, error_message FROM send_log WHERE user_id = ? ORDER BY id", (user,)
            ).fetchall()
        return [dict(row) for row in rows]

    def journal(self, user: str) -> list[dict[str, Any]]:
        """The user's rows of the ingest journal (`messenger.sqlite3`), oldest first."""
        with closing(sqlite3.connect(str(self.channel.settings.ingest_db_path), timeout=10)) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute(
                "SELECT kind, status, attempts, last_error, event_json FROM inbound_events WHERE user_id = ?"
                " ORDER BY id", (user,),
            ).fetchall()
        return [dict(row) for row in rows]

    @property
    def outbox_path(self) -> Path:
        return self.channel.settings.data_dir / "outbox.sqlite3"

    def outbox_rows(self, user: str) -> list[tuple[str, str]]:
        """(idempotency key, status) of what the outbox holds for the user, oldest first."""
        with closing(sqlite3.connect(str(self.outbox_path), timeout=10)) as conn:
            rows = conn.execute(
                "SELECT idempotency_key, status FROM messages WHERE recipient_id = ? ORDER BY id", (user,)
            ).fetchall()
        return [(row[0], row[1]) for row in rows]

    def outbox_keys(self, user: str) -> list[str]:
        return [key for key, _status in self.outbox_rows(user)]

    async def user_texts_in_tracker(self, user: str) -> list[str]:
        """Every user message Rasa's tracker holds for the user (its raw event list: a replay would show twice)."""
        from rasa.shared.core.events import UserUttered

        tracker = await self.agent.tracker_store.retrieve(user)
        return [event.text for event in tracker.events if isinstance(event, UserUttered)] if tracker else []


async def pause_in_tracker(agent: Any, user: str) -> None:
    """What the handoff service's pause does to the tracker: `ConversationPaused` appended under Rasa's lock."""
    from rasa.shared.core.events import ConversationPaused

    async with agent.lock_store.lock(user):
        tracker = await agent.tracker_store.retrieve(user)
        tracker.update(ConversationPaused())
        await agent.tracker_store.save(tracker)


def event_json(row: dict[str, Any]) -> dict[str, Any]:
    return dict(json.loads(row["event_json"]))
