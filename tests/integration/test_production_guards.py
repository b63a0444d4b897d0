"""Guards an operator relies on, each against the real thing over real HTTP, so a test fails when a guard breaks:

- production (`BOT_ENV=production`): the service token cannot write to a customer (`/internal/handoff/reply` is
  403 `human_sender_required`) while the console's logged-in agent can, and the other processes' internal calls
  still work; no API docs, no Graph sandbox, no demo users, a `Secure` session cookie;
- several pages in one deployment: a message to page B is answered with page B's token, never page A's (the
  connector's replies and the app's agent replies), against a Graph API on this machine that records every token;
- the idle auto-resume as the app runs it: a paused conversation nobody touches goes back to the bot by the
  app's own background loop, and the console hears of it.

The production app runs in-process (`serve_asgi`) with production settings and no Rasa: nothing in it may
need one. The multi-page stack (real Rasa, action server, app) is shared by this module.
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from actions.handoff import HANDOFF_TEXTS
from bot.app import create_app
from bot.stack import Stack
from console.auth import SESSION_COOKIE, Authenticator
from console.store import ConsoleStore
from core.settings import DEMO_APP_SECRET, DEMO_RASA_TOKEN, DEMO_SERVICE_TOKEN, Settings, load_settings
from handoff.model import PauseReason, conversation_id_of
from handoff.rasa_api import rasa_auth_headers
from handoff.service import AUTO_RESUME_BY, AUTO_RESUME_NOTE, HandoffStore, auto_resume_interval
from outbox.model import MessageFilter, SenderKind
from outbox.store import open_store
from sandbox import graph as sandbox
from sandbox import simulate
from tests.conftest import require_or_skip
from tests.support.console_client import ConsoleSession, EventListener
from tests.support.servers import RunningServer, free_socket, serve_asgi
from tests.support.stack import rasa_available, start_stack

PAGE_A, PAGE_B = "200000000000001", "200000000000002"
TOKEN_A, TOKEN_B = "page-a-token-" + "a" * 20, "page-b-token-" + "b" * 20
IDLE_RESUME_MINUTES = 0.05  # three seconds: the app looks every 0.75 s (`auto_resume_interval`)
AGENT, AGENT_PASSWORD = "ana", "ana-clave-larga-1"


def new_user(tag: str) -> str:
    return f"psid-{tag}-{uuid.uuid4().hex[:10]}"


def wait_for(condition: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def closed_port() -> int:
    """A local port nobody listens on (bound, never listened, then released)."""
    with free_socket() as sock:
        return int(sock.getsockname()[1])


# --- production --------------------------------------------------------------------------------------------


def production_env(data_dir: Path, page_id: str, page_token: str) -> dict[str, str]:
    """Every secret production asks for, long and distinct; no Rasa and no Graph API answer on their ports (the
    guards must hold without them, and nothing may reach Meta from a test)."""
    return {
        "BOT_ENV": "production",
        "BOT_DATA_DIR": str(data_dir),
        "MESSENGER_APP_SECRET": secrets.token_hex(16),
        "MESSENGER_VERIFY_TOKEN": secrets.token_urlsafe(24),
        "MESSENGER_APP_ID": "123456789012345",
        "MESSENGER_PAGES": f"{page_id}:{page_token}",
        "BOT_SERVICE_TOKEN": secrets.token_urlsafe(32),
        "RASA_API_TOKEN": secrets.token_urlsafe(32),
        "ACTION_SERVER_TOKEN": secrets.token_urlsafe(32),
        "ANSWERS_SECRET": secrets.token_urlsafe(32),
        "GRAPH_API_BASE": f"https://127.0.0.1:{closed_port()}",
        "RASA_URL": f"http://127.0.0.1:{closed_port()}",
    }


@dataclass
class ProductionApp:
    server: RunningServer
    settings: Settings

    def url(self, path: str) -> str:
        return self.server.url(path)

    @property
    def service(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.service_token}"}

    def human_messages(self, user_id: str) -> list[Any]:
        store = open_store(self.settings.outbox_store_url)
        try:
            found = store.find(MessageFilter(recipient_id=user_id, limit=100))
        finally:
            store.close()
        return [message for message in found if message.sender is SenderKind.HUMAN]


@pytest.fixture(scope="module")
def production(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProductionApp]:
    data_dir = Path(tmp_path_factory.mktemp("production"))
    settings = load_settings(production_env(data_dir, PAGE_A, TOKEN_A))  # refuses to load if anything is unsafe
    assert settings.is_production
    console_store = ConsoleStore(settings.console_db_path)
    Authenticator(console_store, settings).add_user(AGENT, "agent", AGENT_PASSWORD, "Ana")
    console_store.close()
    with serve_asgi(create_app(settings)) as server:
        yield ProductionApp(server, settings)


def customer_wrote(app: ProductionApp, user_id: str, at: datetime) -> None:
    """What the connector records for every message a customer writes (the reply window starts there)."""
    store = open_store(app.settings.outbox_store_url)
    try:
        store.record_user_message(PAGE_A, user_id, at)
    finally:
        store.close()


def test_in_production_the_service_token_cannot_reply_to_a_customer_but_a_logged_in_agent_can(
    production: ProductionApp,
) -> None:
    user = new_user("prod")
    conversation_id = conversation_id_of(PAGE_A, user)
    customer_wrote(production, user, datetime.now(timezone.utc) - timedelta(minutes=5))
    http = httpx.Client(timeout=30)

    # The action server's pause (service token) still works in production.
    paused = http.post(production.url("/internal/handoff/pause"), headers=production.service, json={
        "page_id": PAGE_A, "user_id": user, "reason": PauseReason.USER_ASKED.value, "paused_by": "bot",
        "rasa_already_paused": True,
    })
    assert paused.status_code == 200, paused.text
    assert paused.json()["conversation"]["state"] == "paused"
    state = http.get(production.url("/internal/handoff/state"), headers=production.service,
                     params={"page_id": PAGE_A, "user_id": user})
    assert state.status_code == 200 and state.json()["conversation"]["id"] == conversation_id

    # The service token writing to the customer: refused, said plainly, and nothing queued.
    reply = {"conversation_id": conversation_id, "agent": "script", "text": "Hola desde un script"}
    refused = http.post(production.url("/internal/handoff/reply"), headers=production.service, json=reply)
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["reason_code"] == "human_sender_required"
    assert "console" in error["message"] and "logged-in person" in error["message"]
    assert production.human_messages(user) == []
    anonymous = http.post(production.url("/internal/handoff/reply"), json=reply)
    assert anonymous.status_code == 401, anonymous.text
    assert production.human_messages(user) == []

    # The route's legitimate caller, a person logged in to the console, still replies.
    login = http.post(production.url("/api/console/login"), json={"username": AGENT, "password": AGENT_PASSWORD})
    assert login.status_code == 200, login.text
    session = login.cookies.get(SESSION_COOKIE)
    assert session and "secure" in login.headers["set-cookie"].lower(), "production session cookies are Secure"
    # A Secure cookie is not sent back over plain HTTP by a client: send it by hand (as the TLS proxy would pass it).
    headers = {"Cookie": f"{SESSION_COOKIE}={session}", "X-CSRF-Token": login.json()["csrf_token"]}
    sent = httpx.post(production.url(f"/api/console/conversations/{conversation_id}/reply"), headers=headers,
                      json={"text": "Hola, soy Ana."}, timeout=30)
    assert sent.status_code == 201, sent.text
    [message] = production.human_messages(user)
    assert (message.sender_name, message.message) == (AGENT, {"text": "Hola, soy Ana."})
    http.close()


def test_in_production_no_docs_no_graph_sandbox_no_sandbox_chat_and_no_demo_users(production: ProductionApp) -> None:
    with httpx.Client(base_url=production.server.base_url, timeout=30) as http:
        assert http.get("/health").json() == {"status": "ok", "sandbox": False}
        for path in ("/docs", "/redoc", "/openapi.json", "/sandbox/sent", "/sandbox/chat"):
            assert http.get(path).status_code == 404, path
        send = http.post(f"/v21.0/{PAGE_A}/messages", params={"access_token": TOKEN_A},
                         json={"recipient": {"id": "x"}, "message": {"text": "hola"}})
        assert send.status_code == 404, "the app must never answer the Send API in production"
        for username, password in (("admin", "admin-demo"), ("agente", "agente-demo"), ("editor", "editor-demo")):
            login = http.post("/api/console/login", json={"username": username, "password": password})
            assert login.status_code == 401, (username, login.text)


def test_outside_production_the_same_service_token_reply_is_accepted(tmp_path: Path) -> None:
    """The contrast that makes the production test mean something: the guard is the mode, not a broken route."""
    settings = load_settings({"BOT_DATA_DIR": str(tmp_path), "RASA_URL": f"http://127.0.0.1:{closed_port()}"})
    user = new_user("dev")
    store = open_store(settings.outbox_store_url)
    store.record_user_message(settings_page(settings), user, datetime.now(timezone.utc) - timedelta(minutes=1))
    store.close()
    auth = {"Authorization": f"Bearer {DEMO_SERVICE_TOKEN}"}
    with serve_asgi(create_app(settings)) as server, httpx.Client(timeout=30) as http:
        paused = http.post(server.url("/internal/handoff/pause"), headers=auth, json={
            "page_id": settings_page(settings), "user_id": user, "reason": "user_asked", "paused_by": "bot",
            "rasa_already_paused": True})
        assert paused.status_code == 200, paused.text
        reply = http.post(server.url("/internal/handoff/reply"), headers=auth, json={
            "conversation_id": conversation_id_of(settings_page(settings), user), "agent": "script", "text": "Hola"})
        assert reply.status_code == 200, reply.text
        assert reply.json()["message"]["sender"] == "human"


def settings_page(settings: Settings) -> str:
    [page_id] = settings.page_tokens
    return page_id


# --- a Graph API on this machine that records every token ----------------------------------------------------


class TokenTap:
    """ASGI middleware: remembers the page in the path and the access token of every Graph request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[tuple[str, str, str | None]] = []  # (path, page id, access token)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path = scope["path"]
            token = parse_qs(scope.get("query_string", b"").decode()).get("access_token", [None])[0]
            parts = path.strip("/").split("/")
            self.seen.append((path, parts[1] if len(parts) > 1 else "", token))
        await self.app(scope, receive, send)


@dataclass
class RecordingGraph:
    server: RunningServer
    tap: TokenTap
    sandbox: sandbox.GraphSandbox

    def sent(self, recipient_id: str) -> list[dict[str, Any]]:
        """Accepted Send API requests to this user (the sandbox answers as Meta does)."""
        return self.sandbox.sent(recipient_id=recipient_id)

    def texts(self, recipient_id: str) -> list[str]:
        return [item["body"]["message"].get("text", "") for item in self.sent(recipient_id)
                if "message" in item["body"]]

    def tokens_for(self, page_id: str) -> set[str | None]:
        return {token for _path, page, token in self.tap.seen if page == page_id}


def recording_graph_app(page_tokens: dict[str, str]) -> tuple[ASGIApp, TokenTap, sandbox.GraphSandbox]:
    """The app's own Send API sandbox (Meta's checks: a token acts for its own page only), behind the tap."""
    app = FastAPI()
    graph = sandbox.GraphSandbox(page_tokens)
    app.state.sandbox = graph
    app.include_router(sandbox.router)
    tap = TokenTap(app)
    return tap, tap, graph


@dataclass
class MultiPageStack:
    stack: Stack
    graph: RecordingGraph

    def deliver(self, body: dict[str, Any]) -> None:
        raw, headers = simulate.signed_request(body, DEMO_APP_SECRET)
        answer = httpx.post(self.stack.webhook_url, content=raw, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text

    def say(self, page_id: str, user_id: str, text: str) -> None:
        self.deliver(simulate.webhook_body(page_id, [simulate.text_message(page_id, user_id, text)]))


@pytest.fixture(scope="module")
def multi_page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MultiPageStack]:
    """Two pages, `BOT_ENV=test` (a page token outside production only against a loopback Graph API), a short
    idle time before a paused conversation goes back to the bot."""
    require_or_skip(rasa_available(), "the Rasa environment (.venv-rasa; run `make install`)")
    tokens = {PAGE_A: TOKEN_A, PAGE_B: TOKEN_B}
    app, tap, graph = recording_graph_app(tokens)
    with serve_asgi(app) as server:
        env = {
            "BOT_ENV": "test",
            "MESSENGER_PAGES": ",".join(f"{page}:{token}" for page, token in tokens.items()),
            "GRAPH_API_BASE": server.base_url,
            "HANDOFF_IDLE_RESUME_MINUTES": str(IDLE_RESUME_MINUTES),
        }
        stack = start_stack(Path(tmp_path_factory.mktemp("multi-page")), env)
        try:
            yield MultiPageStack(stack, RecordingGraph(server, tap, graph))
        finally:
            stack.stop()


def test_each_page_is_answered_with_its_own_token_even_in_one_delivery(multi_page: MultiPageStack) -> None:
    user_a, user_b = new_user("a"), new_user("b")
    # Meta batches entries of several pages in one delivery: one entry per page.
    body = simulate.webhook_body(PAGE_A, [simulate.text_message(PAGE_A, user_a, "hola")])
    body["entry"] += simulate.webhook_body(PAGE_B, [simulate.text_message(PAGE_B, user_b, "hola")])["entry"]
    multi_page.deliver(body)
    graph = multi_page.graph
    for user in (user_a, user_b):
        wait_for(lambda user=user: graph.texts(user), 90, f"the bot's reply to {user}")  # type: ignore[misc]

    for user, page in ((user_a, PAGE_A), (user_b, PAGE_B)):
        pages = {item["page_id"] for item in graph.sent(user)}
        assert pages == {page}, (user, pages)
    refused = [item for item in graph.sandbox.requests() if not item["accepted"]]
    assert refused == [], "no Send API request was refused (a token for the wrong page is refused as by Meta)"
    assert graph.tokens_for(PAGE_B) == {TOKEN_B}, "page B's sends carry page B's token, never page A's"
    assert graph.tokens_for(PAGE_A) == {TOKEN_A}


def test_an_agent_reply_on_the_second_page_goes_out_with_that_page_s_token(multi_page: MultiPageStack) -> None:
    user = new_user("agent-b")
    graph = multi_page.graph
    multi_page.say(PAGE_B, user, "hola")
    wait_for(lambda: graph.texts(user), 90, "the bot's reply on page B")
    before = len(graph.tap.seen)
    conversation_id = conversation_id_of(PAGE_B, user)
    reply = httpx.post(multi_page.stack.app_url + "/internal/handoff/reply", timeout=30,
                       headers={"Authorization": f"Bearer {DEMO_SERVICE_TOKEN}"},
                       json={"conversation_id": conversation_id, "agent": "ana", "text": "Hola, soy Ana (página B)."})
    assert reply.status_code == 200, reply.text
    wait_for(lambda: "Hola, soy Ana (página B)." in graph.texts(user), 60, "the agent's reply on page B")
    [agent_send] = [item for item in graph.sent(user) if item["body"].get("message", {}).get("text") ==
                    "Hola, soy Ana (página B)."]
    assert agent_send["page_id"] == PAGE_B
    new_tokens = {token for _path, page, token in graph.tap.seen[before:] if page == PAGE_B}
    assert new_tokens == {TOKEN_B}, new_tokens
    assert all(token != TOKEN_A for _path, page, token in graph.tap.seen if page == PAGE_B)


# --- the idle auto-resume, as the app runs it -----------------------------------------------------------------


def rasa_events(stack: Stack, user: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{stack.rasa_url}/conversations/{user}/tracker", params={"include_events": "ALL"},
                       headers=rasa_auth_headers(DEMO_RASA_TOKEN), timeout=30)
    assert answer.status_code == 200, answer.text
    return list(answer.json()["events"])


@pytest.mark.parametrize(("idle_minutes", "every_seconds"), [
    (240, 60), (4, 60), (1, 15), (IDLE_RESUME_MINUTES, 0.75), (0.001, 0.5), (0, 60),
])
def test_the_app_looks_for_idle_conversations_often_enough_for_the_idle_time(
    idle_minutes: float, every_seconds: float
) -> None:
    """A minute at most, a quarter of a short idle time (a conversation is resumed at most that late)."""
    assert auto_resume_interval(idle_minutes) == pytest.approx(every_seconds)


def test_a_paused_conversation_left_idle_goes_back_to_the_bot_by_the_app_s_own_loop(
    multi_page: MultiPageStack,
) -> None:
    stack, graph = multi_page.stack, multi_page.graph
    console_store = ConsoleStore(Path(stack.env["BOT_DATA_DIR"]) / "console.sqlite3")
    Authenticator(console_store, load_settings(stack.env)).add_user(AGENT, "agent", AGENT_PASSWORD)
    console_store.close()
    session = ConsoleSession(stack.app_url, AGENT, AGENT_PASSWORD)
    listener = EventListener(session).start()
    user = new_user("idle")
    conversation_id = conversation_id_of(PAGE_A, user)
    try:
        # The customer asks for a person: the bot says so and pauses (the action, through the app).
        multi_page.say(PAGE_A, user, "quiero hablar con una persona")
        wait_for(lambda: HANDOFF_TEXTS[PauseReason.USER_ASKED] in graph.texts(user), 90, "the handoff notice")
        listener.wait_for(lambda e: e.kind == "paused" and e.conversation_id == conversation_id, 30, "the pause")
        told, texts = len(graph.sent(user)), len(graph.texts(user))

        # Nobody touches it: the app's loop resumes it, with the note, and the console hears it.
        resumed = listener.wait_for(lambda e: e.kind == "resumed" and e.conversation_id == conversation_id, 60,
                                    "the automatic resume")
        assert (resumed.data["by"], resumed.data["closing_note"]) == (AUTO_RESUME_BY, AUTO_RESUME_NOTE)
        assert conversation_id not in {c["id"] for c in session.conversations()}
        assert session.conversation(conversation_id)["state"] == "bot"
        events = rasa_events(stack, user)
        pause = max(e["timestamp"] for e in events if e["event"] == "pause")
        resume = max(e["timestamp"] for e in events if e["event"] == "resume")
        # Not before the idle time (the app's pause record is a moment older than Rasa's event: 1 s of slack).
        assert resume - pause >= IDLE_RESUME_MINUTES * 60 - 1, (pause, resume)
        history = HandoffStore(Path(stack.env["BOT_DATA_DIR"]) / "handoff.sqlite3")
        try:
            log = [(entry.action, entry.by, entry.closing_note) for entry in history.log(conversation_id)]
        finally:
            history.close()
        assert log == [("paused", "bot", None), ("resumed", AUTO_RESUME_BY, AUTO_RESUME_NOTE)]
        # The customer is not messaged when the bot takes over again; the bot answers their next message.
        assert len(graph.sent(user)) == told
        multi_page.say(PAGE_A, user, "hola")
        wait_for(lambda: len(graph.texts(user)) > texts, 90, "the bot answering again")
    finally:
        listener.stop()
        session.close()
